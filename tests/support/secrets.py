"""Fixtures of the secrets tests: a copy of the reference platform with fresh keys and known test
values.

The copy's sites get new age key pairs (the recipients in its targets are replaced) and every secret
the inventory references is set again, through the library, to a value unique to this session, so
the leak scans know exactly which strings must never appear. A session template is compiled once;
each test works on its own copy. This module holds no tests.
"""

from __future__ import annotations

import re
import secrets as stdlib_secrets
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from generator.build import pipeline
from generator.build import secret_store as store
from generator.cli import app
from generator.formats import age as crypto
from generator.formats import secret_refs as refs
from tests.support.project import REPO

SITES = ("cn-east-1", "cn-north-2")
PATHS = (
    "redis/password",
    "registry/password",
    "kubekey/ssh-password",
    "monitoring/db-password",
    "monitoring/redis-password",
)
_RECIPIENT = re.compile(r"age1[02-9ac-hj-np-z]{58}")


@dataclass
class SecretProject:
    """A project root whose secrets are encrypted to keys made for the test session."""

    root: Path
    keys: dict[str, Path]
    """Site -> its private identity file (outside the project)."""
    values: dict[tuple[str, str], bytes]
    """(site, secret path) -> the plaintext stored."""

    def identities(self, site: str) -> crypto.Identities:
        return crypto.load_identities(self.keys[site])

    def gen(self, *args: str, stdin: bytes | None = None) -> Result:
        """``gen <args> --root <root>`` through the CLI, stdin given as bytes."""
        return CliRunner().invoke(app, [*args, "--root", str(self.root)], input=stdin)

    def compile(self, *targets: str) -> pipeline.Result:
        return pipeline.run(pipeline.Options(self.root, tuple(targets), use_cache=False))

    def file(self, site: str, path: str) -> Path:
        return self.root / refs.file_for(site, path)

    def plaintexts(self) -> list[bytes]:
        return list(self.values.values())


def unique_value(site: str, path: str) -> bytes:
    """A value no file of the repository can hold by chance."""
    return f"TEST-{site}-{path.replace('/', '-')}-{stdlib_secrets.token_hex(8)}".encode()


def copy_reference(root: Path) -> Path:
    """inventory/, components/ and schemas/ of this repository under ``root``
    (no secrets, no compiled/)."""
    for name in ("inventory", "components", "schemas"):
        shutil.copytree(REPO / name, root / name)
    return root


def rekey(root: Path, site: str, keys_dir: Path) -> Path:
    """Give ``site`` a fresh key pair: its target's recipients are replaced;
    the identity file's path."""
    keys_dir.mkdir(parents=True, exist_ok=True)
    key = keys_dir / f"{site}.key"
    public = store.keygen(key, f"test key of {site}")
    target = root / "inventory" / "targets" / f"{site}.yml"
    text, count = _RECIPIENT.subn(public, target.read_text())
    assert count, f"{target} lists no age recipient"
    target.write_text(text)
    return key


def build(
    root: Path, keys_dir: Path, sites: Iterable[str] = SITES, paths: Iterable[str] = PATHS
) -> SecretProject:
    """A reference-platform copy with fresh keys, every secret set to a test value, compiled."""
    copy_reference(root)
    keys = {site: rekey(root, site, keys_dir) for site in sites}
    values = {}
    for site in keys:
        for path in paths:
            values[(site, path)] = unique_value(site, path)
            store.set_value(root, site, path, values[(site, path)])
    project = SecretProject(root, keys, values)
    project.compile()
    return project


@pytest.fixture(scope="session")
def secret_template(tmp_path_factory: pytest.TempPathFactory) -> SecretProject:
    base = tmp_path_factory.mktemp("secret-template")
    return build(base / "project", base / "keys")


@pytest.fixture
def secret_project(secret_template: SecretProject, tmp_path: Path) -> SecretProject:
    """A private copy of the session's secret project (the keys are shared, read-only)."""
    root = tmp_path / "project"
    shutil.copytree(secret_template.root, root)
    return SecretProject(root, dict(secret_template.keys), dict(secret_template.values))


def files_under(directory: Path) -> Iterator[tuple[str, bytes]]:
    """Every file under ``directory`` as (relative path, bytes)."""
    for path in sorted(directory.rglob("*")):
        if path.is_file():
            yield path.relative_to(directory).as_posix(), path.read_bytes()
