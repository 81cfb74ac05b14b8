"""Real keys, real repositories and a helper that plays both sides of the gatekeeper.

Keys are ed25519, made by ``ssh-keygen`` without a passphrase in a temporary directory. A source
project (this repository's ``compiled/``, committed in a fresh git repository) and a deploy
repository published from it are built once per session; each test works on its own copies.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

import pytest

from generator.core import layout
from generator.deliver import publish
from generator.deliver.ferry import pack as packer
from generator.deliver.ferry import receive
from generator.deliver.ferry.receive import Outcome, Report
from generator.deliver.git.plumbing import Identity
from tests.support.project import REPO

IDENTITY = Identity("Release Bot", "release@example.com")
SITE = "cn-east-1"
OTHER_SITE = "cn-north-2"


@dataclass(frozen=True)
class Key:
    """An SSH key pair on disk and the principal it stands for."""

    private: Path
    principal: str

    @property
    def public(self) -> str:
        return " ".join(Path(f"{self.private}.pub").read_text().split()[:2])


@dataclass(frozen=True)
class Keys:
    """The release key everyone trusts, a stranger's key,
    and an allowed signers file trusting the first."""

    release: Key
    stranger: Key
    allowed_signers: Path


def make_key(directory: Path, name: str, principal: str) -> Key:
    """A new ed25519 key pair ``directory/name`` (no passphrase)."""
    path = directory / name
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", principal, "-f", str(path)],
        check=True,
    )
    return Key(path, principal)


def write_allowed_signers(path: Path, *keys: Key) -> Path:
    """An allowed_signers file trusting ``keys`` for git commits and gen-ferry manifests."""
    path.write_text("".join(f'{k.principal} namespaces="git,gen-ferry" {k.public}\n' for k in keys))
    return path


def git(cwd: Path, *args: str) -> str:
    """Run git in a work tree with a fixed identity; its stdout."""
    env_args = [
        "-c",
        f"user.name={IDENTITY.name}",
        "-c",
        f"user.email={IDENTITY.email}",
        "-c",
        "commit.gpgsign=false",
    ]
    return subprocess.run(
        ["git", *env_args, *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout


def refs(repo: Path) -> dict[str, str]:
    """Every ref of a repository with its object id (to prove a refusal changed nothing)."""
    out = subprocess.run(
        ["git", "--git-dir", str(repo), "for-each-ref", "--format=%(refname) %(objectname)"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return dict(line.split(" ", 1) for line in out.splitlines())


def rev(repo: Path, name: str) -> str | None:
    """The commit a ref names in a repository, or None."""
    proc = subprocess.run(
        ["git", "--git-dir", str(repo), "rev-parse", "--verify", "--quiet", name],
        capture_output=True,
        text=True,
    )
    return proc.stdout.strip() or None


def edit_compiled(root: Path, site: str, rel: str, content: str | None) -> None:
    """Change (or, with None, remove) a compiled file and keep ``index.json`` consistent,
    then commit."""
    directory = root / "compiled" / site
    index_path = directory / layout.INDEX
    index = layout.parse(index_path.read_bytes(), f"compiled/{site}")
    entries = [e for e in index.files if e.path != rel]
    if content is None:
        (directory / rel).unlink()
    else:
        (directory / rel).parent.mkdir(parents=True, exist_ok=True)
        (directory / rel).write_text(content)
        data = content.encode()
        entries.append(layout.Entry(rel, hashlib.sha256(data).hexdigest(), len(data)))
    files = tuple(sorted(entries, key=lambda e: e.path))
    index_path.write_bytes(replace(index, files=files).dumps())
    git(root, "add", "-A", "compiled")
    git(root, "commit", "-q", "-m", f"change {site}/{rel}")


@dataclass
class World:
    """Both sides of the gatekeeper: source project, deploy repository, drop folder,
    inside repository."""

    root: Path
    deploy: Path
    drop: Path
    inside: Path
    keys: Keys
    changes: int = field(default=0)

    def publish_settings(self, allow_dirty: bool = False) -> publish.Settings:
        return publish.Settings(self.deploy, self.keys.release.private, IDENTITY, allow_dirty)

    def pack_settings(self, key: Key | None = None) -> packer.Settings:
        key = key or self.keys.release
        return packer.Settings(self.deploy, key.private, key.principal)

    def receive_settings(self, *sites: str) -> receive.Settings:
        return receive.Settings(self.inside, self.keys.allowed_signers, sites or (SITE,))

    def change(self, site: str = SITE) -> str:
        """Publish a one-file change of ``site``; the new deploy tip."""
        self.changes += 1
        edit_compiled(self.root, site, "images.txt", f"registry.local/changed:{self.changes}\n")
        publish.publish(self.root, [site], self.publish_settings())
        tip = rev(self.deploy, publish.branch(site))
        assert tip
        return tip

    def pack(
        self,
        site: str = SITE,
        out: Path | None = None,
        full: bool = False,
        since: int | None = None,
        now: datetime | None = None,
    ) -> Path:
        """Pack the next envelope of ``site`` into the drop folder (or ``out``); its path."""
        packed = packer.pack(
            packer.Request(site, full, since), out or self.drop, self.pack_settings(), now
        )
        assert packed.path is not None, packed.note
        return packed.path

    def receive(self, *sites: str, now: datetime | None = None) -> Report:
        return receive.receive(self.drop, self.receive_settings(*sites), now)

    # The method ``receive`` shadows the module inside the class body, hence the bare names.
    def outcome(self, report: Report, name: str) -> Outcome:
        return next(o for o in report.outcomes if o.name == name)


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    """The session's SSH keys (outside every repository)."""
    directory = tmp_path_factory.mktemp("keys")
    release = make_key(directory, "release", IDENTITY.email)
    stranger = make_key(directory, "stranger", "mallory@example.com")
    return Keys(release, stranger, write_allowed_signers(directory / "allowed_signers", release))


@pytest.fixture(scope="session")
def published(tmp_path_factory: pytest.TempPathFactory, keys: Keys) -> tuple[Path, Path]:
    """A committed source project (compiled/ of the reference platform) and a deploy repo
    published from it."""
    base = tmp_path_factory.mktemp("published")
    root = base / "source"
    shutil.copytree(REPO / "compiled", root / "compiled")
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "reference platform")
    deploy = base / "deploy.git"
    publish.publish(root, [], publish.Settings(deploy, keys.release.private, IDENTITY))
    return root, deploy


@pytest.fixture(scope="session")
def synced_template(
    tmp_path_factory: pytest.TempPathFactory, published: tuple[Path, Path], keys: Keys
) -> World:
    """A world whose first full envelope of SITE is packed and imported (copied by ``world``)."""
    w = _world(tmp_path_factory.mktemp("synced"), published[0], published[1], keys)
    w.pack()
    assert w.receive().ok
    return w


@pytest.fixture
def world(
    request: pytest.FixtureRequest, tmp_path: Path, published: tuple[Path, Path], keys: Keys
) -> World:
    """Private copies of the published source and deploy repositories, a drop folder and the inside.

    Parametrized indirectly with ``"synced"`` it starts from ``synced_template`` instead of nothing.
    """
    if getattr(request, "param", None) == "synced":
        template: World = request.getfixturevalue("synced_template")
        w = _world(tmp_path, template.root, template.deploy, keys)
        shutil.copytree(template.inside, w.inside, symlinks=True)
        shutil.copytree(template.drop, w.drop, symlinks=True, dirs_exist_ok=True)
        return w
    return _world(tmp_path, published[0], published[1], keys)


def _world(base: Path, source: Path, deploy: Path, keys: Keys) -> World:
    root, deploy_copy = base / "source", base / "deploy.git"
    shutil.copytree(source, root, symlinks=True)
    shutil.copytree(deploy, deploy_copy, symlinks=True)
    drop = base / "gatekeeper"
    drop.mkdir()
    return World(root, deploy_copy, drop, base / "inside.git", keys)


def verify_commit(
    git_dir: Path, rev: str, allowed_signers: Path
) -> subprocess.CompletedProcess[str]:
    """``git verify-commit`` of ``rev`` with ``allowed_signers`` trusted (its output in stderr)."""
    return subprocess.run(
        [
            "git",
            "--git-dir",
            str(git_dir),
            "-c",
            f"gpg.ssh.allowedSignersFile={allowed_signers}",
            "verify-commit",
            rev,
        ],
        capture_output=True,
        text=True,
    )
