"""No plaintext of any test secret in compiled/, a published deploy branch, a ferry envelope or
command output.

Each scan looks for every form a value could leak in: the plaintext, its base64 (a Secret's
``data``), and the exact ``data`` strings of the Secrets the site's key would materialize (the
registry's ``.dockerconfigjson``). Git objects are scanned decompressed (``cat-file
--batch-all-objects``), and the bundle is fetched into a fresh repository first: a scan of the
packed bytes would find nothing even if a value were there. A planted Secret proves every scan can
see one.
"""

from __future__ import annotations

import base64
import subprocess
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from generator.build import secret_store as store
from generator.deliver import publish
from generator.deliver.ferry import pack as packer
from generator.formats import age as crypto
from generator.formats import secret_refs as refs
from tests.support.ferry import IDENTITY, Key, edit_compiled, git, make_key
from tests.support.project import REPO
from tests.support.secrets import SITES, SecretProject, files_under


def needles(project: SecretProject) -> set[bytes]:
    """Every string that would give a test secret away."""
    found = set()
    for value in project.plaintexts():
        found |= {value, base64.b64encode(value)}
    for site in SITES:
        for secret in store.materialized(project.root, site, project.identities(site)):
            found |= {v.encode() for v in secret["data"].values()}
    return found


def leaks(blobs: Iterable[tuple[str, bytes]], secrets: set[bytes]) -> list[str]:
    """``where: which`` for every blob holding one of ``secrets``
    (never printing the secret itself)."""
    return [
        f"{name}: secret #{sorted(secrets).index(s)}"
        for name, data in blobs
        for s in secrets
        if s in data
    ]


def git_objects(git_dir: Path) -> Iterator[tuple[str, bytes]]:
    """Every object of a repository, decompressed (commits, trees, blobs, tags)."""
    out = subprocess.run(
        ["git", "--git-dir", str(git_dir), "cat-file", "--batch-all-objects", "--batch"],
        check=True,
        capture_output=True,
    ).stdout
    yield f"{git_dir} objects", out


def bundle_objects(envelope_dir: Path, scratch: Path) -> Iterator[tuple[str, bytes]]:
    """The raw envelope files, and every object of its bundle fetched into a fresh repository."""
    yield from ((f"{envelope_dir.name}/{name}", data) for name, data in files_under(envelope_dir))
    repo = scratch / "unbundled.git"
    subprocess.run(["git", "init", "-q", "--bare", str(repo)], check=True)
    subprocess.run(
        [
            "git",
            "--git-dir",
            str(repo),
            "fetch",
            "-q",
            str(envelope_dir / "bundle"),
            "refs/*:refs/*",
        ],
        check=True,
    )
    yield from git_objects(repo)


def release(project: SecretProject, key: Key, deploy: Path, drop: Path) -> dict[str, Path]:
    """Commit the project, publish every site and pack a full envelope of each; the envelopes."""
    if not (project.root / ".git").exists():
        git(project.root, "init", "-q")
    git(project.root, "add", "-A")
    git(project.root, "commit", "-q", "-m", "release", "--allow-empty")
    publish.publish(project.root, [], publish.Settings(deploy, key.private, IDENTITY))
    settings = packer.Settings(deploy, key.private, key.principal)
    envelopes = {}
    for site in SITES:
        packed = packer.pack(packer.Request(site, full=True), drop, settings)
        assert packed.path is not None
        envelopes[site] = packed.path
    return envelopes


@pytest.fixture
def release_key(tmp_path: Path) -> Key:
    keys = tmp_path / "release-keys"
    keys.mkdir()
    return make_key(keys, "release", IDENTITY.email)


def test_no_plaintext_in_compiled_the_deploy_branches_or_the_envelopes(
    secret_project: SecretProject, release_key: Key, tmp_path: Path
) -> None:
    secrets = needles(secret_project)
    assert len(secrets) == 2 * len(secret_project.values) + len(
        SITES
    )  # values, base64, each .dockerconfigjson
    envelopes = release(secret_project, release_key, tmp_path / "deploy.git", tmp_path / "drop")
    assert leaks(files_under(secret_project.root / "compiled"), secrets) == []
    assert leaks(git_objects(tmp_path / "deploy.git"), secrets) == []
    for site, envelope in envelopes.items():
        assert leaks(bundle_objects(envelope, tmp_path / site), secrets) == []
    assert (
        leaks(git_objects(secret_project.root / ".git"), secrets) == []
    )  # the source repo holds only ciphertext


def test_every_scan_finds_a_planted_secret(
    secret_project: SecretProject, release_key: Key, tmp_path: Path
) -> None:
    [secret] = [
        s
        for s in store.materialized(
            secret_project.root, "cn-east-1", secret_project.identities("cn-east-1")
        )
        if s["metadata"]["name"] == "abc-service-secrets"
    ]
    planted = f"apiVersion: v1\nkind: Secret\nmetadata: {{name: planted}}\ndata: {secret['data']}\n"
    secrets = needles(secret_project)
    git(secret_project.root, "init", "-q")
    edit_compiled(
        secret_project.root, "cn-east-1", "manifests/project/secret-planted.yaml", planted
    )
    envelopes = release(secret_project, release_key, tmp_path / "deploy.git", tmp_path / "drop")
    assert leaks(files_under(secret_project.root / "compiled"), secrets)
    assert leaks(git_objects(tmp_path / "deploy.git"), secrets)
    assert leaks(bundle_objects(envelopes["cn-east-1"], tmp_path / "east"), secrets)


def test_no_plaintext_in_what_the_commands_print(secret_project: SecretProject) -> None:
    project = secret_project
    secrets = needles(project) | {b"rotated-in-a-log-test"}
    key, config = str(project.keys["cn-east-1"]), project.root.parent / "kk-config.yaml"
    outputs = [
        project.gen("compile", "-v", "--no-cache"),
        project.gen(
            "secrets", "rotate", "-t", "cn-east-1", "redis/password", stdin=b"rotated-in-a-log-test"
        ),
        project.gen("compile", "-v", "--no-cache"),
        project.gen("compile", "--check", "-o", "json"),
        project.gen("secrets", "list", "-t", "cn-east-1"),
        project.gen("inventory", "-t", "cn-east-1"),
        project.gen(
            "secrets",
            "show",
            "-t",
            "cn-east-1",
            "redis/password",
            "-i",
            str(project.keys["cn-north-2"]),
        ),
        project.gen(
            "secrets", "materialize", "-t", "cn-east-1", "-i", str(project.keys["cn-north-2"])
        ),
        project.gen("secrets", "kubekey-config", "-t", "cn-east-1", "-i", key, "-o", str(config)),
    ]
    assert [r.exit_code for r in outputs] == [0, 0, 0, 0, 0, 0, 1, 1, 0]
    assert (
        leaks(((f"command {i}", r.output.encode()) for i, r in enumerate(outputs)), secrets) == []
    )
    # The one place the values are in clear: the operator's 0600 config for kk.
    assert project.values[("cn-east-1", "kubekey/ssh-password")] in config.read_bytes()
    assert config.stat().st_mode & 0o777 == 0o600


def test_the_reference_platform_compiles_to_ciphertext_only() -> None:
    """The repository's own compiled/: decrypt its secrets with the test keys and look for them."""
    secrets: set[bytes] = set()
    for site in SITES:
        keys = crypto.load_identities(REPO / "tests" / "fixtures" / "age" / f"{site}.key")
        for path in ("redis/password", "registry/password", "kubekey/ssh-password"):
            assert (REPO / refs.file_for(site, path)).is_file()
            value = store.show(REPO, site, path, keys)
            secrets |= {value, base64.b64encode(value)}
        secrets |= {
            v.encode() for s in store.materialized(REPO, site, keys) for v in s["data"].values()
        }
    assert leaks(files_under(REPO / "compiled"), secrets) == []
    assert leaks(files_under(REPO / "inventory"), secrets) == []
