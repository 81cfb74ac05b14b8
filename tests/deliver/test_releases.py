"""Releases and rollback: numbered signed deploy commits, listed, and an earlier one restored as a
new release (real git, real SSH signatures)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from generator.core import layout, release, yamlio
from generator.core.errors import GenError
from generator.deliver import publish, releases, rollback
from generator.deliver.git import plumbing
from generator.deliver.git.repo import open_repo
from generator.formats import age as crypto
from generator.formats import encrypted_secret
from generator.review import summary
from tests.support.ferry import IDENTITY, SITE, World, edit_compiled, refs, rev, verify_commit

BRANCH = publish.branch(SITE)
SECRET = "manifests/project/encryptedsecret-abc-service-secrets.yaml"


def show(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "--git-dir", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout


def tree(repo: Path, commit: str) -> str:
    return show(repo, "rev-parse", f"{commit}^{{tree}}").strip()


def objects(repo: Path) -> list[str]:
    """Every object file and pack of a repository (to prove nothing was written)."""
    return sorted(str(p.relative_to(repo)) for p in (repo / "objects").rglob("*") if p.is_file())


def history(world: World) -> list[releases.Info]:
    return releases.history(open_repo(world.deploy), BRANCH)


def three_releases(world: World) -> list[str]:
    """Releases 1 (the fixture's first publish), 2 and 3 of SITE; their commits, oldest first."""
    first = rev(world.deploy, BRANCH)
    assert first
    return [first, world.change(), world.change()]


def rollback_settings(world: World, name: str = "") -> rollback.Settings:
    return rollback.Settings(world.keys.release.private, IDENTITY, name, summary.summarize)


def test_each_publish_that_changes_a_site_makes_the_next_numbered_release(world: World) -> None:
    commits = three_releases(world)
    source = subprocess.run(
        ["git", "-C", str(world.root), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    found = history(world)
    assert [(r.number, r.commit) for r in found] == [
        (3, commits[2]),
        (2, commits[1]),
        (1, commits[0]),
    ]
    assert all(r.numbered and r.rollback_to is None for r in found)
    assert releases.latest(open_repo(world.deploy), BRANCH) == found[0]
    assert found[0].source_commit == source
    message = show(world.deploy, "log", "-1", "--format=%B", BRANCH)
    assert release.parse(message) == release.Release(3, "", None, source)
    assert "Summary: 2 files: 2 changed" in message  # no summarizer: files counted


def test_a_release_has_its_name_and_the_gen_diff_summary_of_the_site(world: World) -> None:
    edit_compiled(world.root, SITE, "images.txt", "registry.local/named:1\n")
    cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra\n  namespace: project\n"
    edit_compiled(world.root, SITE, "manifests/project/configmap-extra.yaml", cm)
    settings = publish.Settings(
        world.deploy,
        world.keys.release.private,
        IDENTITY,
        name="spring",
        summarize=summary.summarize,
    )
    [published] = publish.publish(world.root, [SITE], settings)
    assert published.release == 2
    [latest, *_] = history(world)
    assert (latest.number, latest.name, latest.label) == (2, "spring", "2 (spring)")
    assert latest.summary.startswith("1 changed, 1 added; derived: index.json")
    assert "+ ConfigMap project/extra" in latest.details and "~ images.txt" in latest.details
    [again] = publish.publish(world.root, [SITE], settings)
    assert not again.changed and again.release == 2


def test_a_bad_release_name_is_refused_before_anything_is_written(world: World) -> None:
    with pytest.raises(GenError, match="--name: release name 'no spaces'"):
        publish.Settings(world.deploy, world.keys.release.private, name="no spaces")


def test_commits_before_releases_are_numbered_by_their_position(world: World) -> None:
    repo = open_repo(world.deploy)
    tip = rev(world.deploy, BRANCH)
    assert tip
    old = plumbing.commit_tree(
        repo, plumbing.tree_of(repo, tip), [tip], "deploy x: 1 file from abc\n\n~ a\n", IDENTITY
    )
    repo.run("update-ref", BRANCH, old, tip)
    found = history(world)
    assert [(r.number, r.numbered, r.summary) for r in found] == [
        (2, False, "1 file from abc"),
        (1, True, found[1].summary),
    ]
    assert releases.latest(repo, BRANCH) == found[0]
    world.change()
    assert history(world)[0].number == 3


def test_rollback_publishes_a_signed_release_whose_tree_is_release_ns(world: World) -> None:
    commits = three_releases(world)
    planned = rollback.plan(world.deploy, SITE, 1)
    assert (planned.number, planned.current.number, planned.target.number) == (4, 3, 1)
    assert planned.changes == ("~ images.txt", "~ index.json")
    done = rollback.publish_plan(world.deploy, planned, rollback_settings(world, "back"))
    assert done.commit is not None and done.commit == rev(world.deploy, BRANCH)
    assert tree(world.deploy, done.commit) == tree(world.deploy, commits[0])
    assert show(world.deploy, "rev-parse", f"{done.commit}^").strip() == commits[2]
    found = history(world)
    assert [(r.number, r.rollback_to) for r in found] == [(4, 1), (3, None), (2, None), (1, None)]
    assert found[0].name == "back" and found[0].source_commit == found[3].source_commit
    assert found[0].summary.startswith("1 changed; derived: index.json")
    proc = verify_commit(world.deploy, BRANCH, world.keys.allowed_signers)
    assert proc.returncode == 0, proc.stderr


def test_a_plan_alone_writes_nothing(world: World) -> None:
    three_releases(world)
    before = (refs(world.deploy), objects(world.deploy))
    planned = rollback.plan(world.deploy, SITE, 1)
    assert planned.changed and planned.old["images.txt"] != planned.new["images.txt"]
    assert (refs(world.deploy), objects(world.deploy)) == before


def test_an_unknown_release_is_refused_naming_those_there_are(world: World) -> None:
    three_releases(world)
    with pytest.raises(GenError, match=r"deploy/cn-east-1 has no release 7 \(releases 1 to 3\)"):
        rollback.plan(world.deploy, SITE, 7)
    with pytest.raises(GenError, match="no deploy branch for nowhere"):
        rollback.plan(world.deploy, "nowhere", 1)


def test_rolling_back_to_the_current_tree_writes_nothing(world: World) -> None:
    three_releases(world)
    before = refs(world.deploy)
    done = rollback.publish_plan(
        world.deploy, rollback.plan(world.deploy, SITE, 3), rollback_settings(world)
    )
    assert done.commit is None and refs(world.deploy) == before


def _publish_tree(world: World, files: dict[str, bytes], number: int) -> str:
    """Sign a release of ``files`` on the branch, as another gen would have."""
    repo = open_repo(world.deploy)
    tip = rev(world.deploy, BRANCH)
    assert tip
    blobs = {p: plumbing.hash_bytes(repo, data) for p, data in files.items()}
    message = releases.message(
        f"deploy {SITE}: other gen", "", [], release.Release(number, "", None, "")
    )
    commit = plumbing.commit_tree(
        repo,
        plumbing.write_tree(repo, blobs),
        [tip],
        message,
        IDENTITY,
        world.keys.release.private,
    )
    repo.run("update-ref", BRANCH, commit, tip)
    return commit


@pytest.mark.parametrize(
    ("edit", "why"),
    [
        (
            lambda index: {**index, "layout": 2},
            "layout format 2, which this gen cannot read .*compiled by a newer gen; upgrade gen",
        ),
        (lambda index: {**index, "files": index["files"][1:]}, "is not listed in index.json"),
        (None, "it has no index.json"),
    ],
    ids=["newer layout", "index disagrees", "no index"],
)
def test_a_release_made_by_an_incompatible_gen_is_refused_saying_why(
    world: World, edit: object, why: str
) -> None:
    directory = world.root / "compiled" / SITE
    files = {
        p.relative_to(directory).as_posix(): p.read_bytes()
        for p in directory.rglob("*")
        if p.is_file()
    }
    if callable(edit):
        files[layout.INDEX] = json.dumps(edit(json.loads(files[layout.INDEX]))).encode()
    else:
        del files[layout.INDEX]
    _publish_tree(world, files, 2)
    world.change()
    before = refs(world.deploy)
    with pytest.raises(rollback.Incompatible, match=rf"release 2 \(.*cannot roll back: .*{why}"):
        rollback.plan(world.deploy, SITE, 2)
    assert refs(world.deploy) == before
    assert rollback.plan(world.deploy, SITE, 1).target.number == 1  # the others still can


def _secret_file(value: bytes, recipient: str) -> str:
    obj = encrypted_secret.build(
        "abc-service-secrets",
        "project",
        {"app": "abc-service"},
        "Opaque",
        {"REDIS_PASSWORD": crypto.encrypt(value, [recipient]).decode()},
    )
    return yamlio.dump(obj)


def test_secrets_roll_back_with_their_ciphertext(world: World, tmp_path: Path) -> None:
    identity, recipient = crypto.generate()
    (tmp_path / "site.key").write_text(crypto.identity_file(identity))
    keys = crypto.load_identities(tmp_path / "site.key")
    edit_compiled(world.root, SITE, SECRET, _secret_file(b"old-password", recipient))
    world.change()  # release 2: the old password
    old = show(world.deploy, "rev-parse", f"{BRANCH}:{SECRET}").strip()
    edit_compiled(world.root, SITE, SECRET, _secret_file(b"rotated-password", recipient))
    world.change()  # release 3: rotated
    assert show(world.deploy, "rev-parse", f"{BRANCH}:{SECRET}").strip() != old
    planned = rollback.plan(world.deploy, SITE, 2)
    assert f"~ {SECRET}" in planned.changes
    rollback.publish_plan(world.deploy, planned, rollback_settings(world))
    assert show(world.deploy, "rev-parse", f"{BRANCH}:{SECRET}").strip() == old
    restored = yamlio.load_rendered(show(world.deploy, "cat-file", "blob", old), SECRET)[0]
    armored = restored["spec"]["encryptedData"]["REDIS_PASSWORD"].encode()
    assert crypto.decrypt(armored, keys, "REDIS_PASSWORD") == b"old-password"
    detail = "\n".join(history(world)[0].details)
    assert "~ EncryptedSecret.secrets.gen-gitops.io project/abc-service-secrets: " in detail
    assert "old-password" not in show(world.deploy, "log", "-1", "--format=%B", BRANCH)
