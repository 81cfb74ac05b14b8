"""A git repository driven through the git binary: where git commands run and their errors enter.

Every command names its repository explicitly (``git --git-dir=...``): git never discovers a
repository by walking up from a directory, so a mistyped path can never reach the project's own
repository. Variables that would redirect git elsewhere (``GIT_DIR``, ``GIT_INDEX_FILE``, ...) are
removed from the environment unless the caller sets them on purpose.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from generator.core.errors import GenError

ZERO = "0" * 40
"""The null object id: as an old value in a ref update it means "the ref must not exist yet"."""

_REDIRECTING = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY", "GIT_NAMESPACE",
                "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_COMMON_DIR", "GIT_QUARANTINE_PATH", "GIT_PREFIX")


class GitError(GenError):
    """A git command failed; the message names the repository, the command and git's own words."""


@dataclass(frozen=True)
class RefUpdate:
    """One step of an atomic ref transaction.

    ``new`` None deletes the ref; ``old`` None means "whatever it is now", ``ZERO`` "must not exist".
    """

    ref: str
    new: str | None
    old: str | None = None

    def command(self) -> str:
        old = f" {self.old}" if self.old else ""
        if self.new is None:
            return f"delete {self.ref}{old}\n"
        return f"update {self.ref} {self.new}{old}\n"


@dataclass(frozen=True)
class Repo:
    """A repository (bare or not) by its git directory."""

    git_dir: Path

    def run(self, *args: str, input: bytes | None = None, env: Mapping[str, str] | None = None) -> bytes:
        """Run ``git <args>`` on this repository and return its stdout; raise GitError on failure."""
        proc = self.call(*args, input=input, env=env)
        if proc.returncode != 0:
            raise GitError(f"{self.git_dir}: git {_short(args)} failed: {_stderr(proc)}")
        return proc.stdout

    def call(self, *args: str, input: bytes | None = None,
             env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
        """Run ``git <args>`` and return the finished process whatever its exit status."""
        return run_git(["--git-dir", str(self.git_dir), *args], input=input, env=env)

    def text(self, *args: str, input: bytes | None = None, env: Mapping[str, str] | None = None) -> str:
        """Like ``run``, decoded, without the trailing newline."""
        return self.run(*args, input=input, env=env).decode("utf-8", "replace").rstrip("\n")

    def resolve(self, rev: str) -> str | None:
        """The commit id ``rev`` names, or None if it names no commit in this repository."""
        proc = self.call("rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}")
        return proc.stdout.decode().strip() if proc.returncode == 0 else None

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        """Whether ``ancestor`` is ``descendant`` or one of its ancestors (both must exist)."""
        proc = self.call("merge-base", "--is-ancestor", ancestor, descendant)
        if proc.returncode not in (0, 1):
            raise GitError(f"{self.git_dir}: cannot compare {ancestor[:12]} and {descendant[:12]}: {_stderr(proc)}")
        return proc.returncode == 0

    def refs(self, prefix: str) -> dict[str, str]:
        """Every ref under ``prefix`` (e.g. ``refs/ferry/sent/``) with the object it points at."""
        out = self.text("for-each-ref", "--format=%(objectname) %(refname)", prefix)
        return {ref: oid for oid, _, ref in (line.partition(" ") for line in out.splitlines() if line)}

    def update_refs(self, updates: Sequence[RefUpdate]) -> None:
        """Apply every update or none (``git update-ref --stdin`` transaction with old-value checks)."""
        script = "start\n" + "".join(u.command() for u in updates) + "prepare\ncommit\n"
        self.run("update-ref", "--stdin", input=script.encode())

    def config(self, key: str) -> str | None:
        """A configuration value as git resolves it for this repository (global and system included)."""
        proc = self.call("config", "--get", key)
        return proc.stdout.decode().strip() if proc.returncode == 0 else None

    def config_all(self, key: str) -> list[str]:
        """Every value of a multi-valued configuration key (none when unset)."""
        proc = self.call("config", "--get-all", key)
        return proc.stdout.decode().split() if proc.returncode == 0 else []

    def delete_ref(self, ref: str) -> None:
        """Remove a ref if it exists."""
        self.run("update-ref", "-d", ref)


def open_repo(path: Path, create: bool = False) -> Repo:
    """The repository at ``path`` (its ``.git`` if it has a work tree).

    With ``create``, a missing path becomes a new bare repository. A path that exists but is not a
    repository is an error, never a reason to look in a parent directory.
    """
    path = path.expanduser().resolve()
    if not path.exists() and create:
        run_checked(["init", "--quiet", "--bare", str(path)])
    for candidate in (path / ".git", path):
        if (candidate / "HEAD").is_file() and (candidate / "objects").is_dir():
            return Repo(candidate)
    raise GitError(f"{path}: not a git repository" + ("" if path.exists() else " (no such directory)"))


def run_git(args: Sequence[str], input: bytes | None = None, env: Mapping[str, str] | None = None,
            cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run the git binary with a clean environment (plus ``env``); never raises for a failed command."""
    full_env = {k: v for k, v in os.environ.items() if k not in _REDIRECTING}
    full_env.update(env or {})
    try:
        return subprocess.run(["git", *args], input=input, capture_output=True, env=full_env, cwd=cwd, check=False)
    except FileNotFoundError as e:
        raise GitError("git is not installed (the git binary is needed on PATH)") from e


def run_checked(args: Sequence[str], cwd: Path | None = None) -> bytes:
    """Run git and return stdout; raise GitError naming the command on failure."""
    proc = run_git(args, cwd=cwd)
    if proc.returncode != 0:
        raise GitError(f"git {_short(args)} failed: {_stderr(proc)}")
    return proc.stdout


def _short(args: Sequence[str]) -> str:
    return " ".join(args[:4])


def _stderr(proc: subprocess.CompletedProcess[bytes]) -> str:
    lines = [line.strip() for line in proc.stderr.decode("utf-8", "replace").splitlines() if line.strip()]
    text = "; ".join(lines)
    return (text[:600] + " ...") if len(text) > 600 else text or f"exit status {proc.returncode}"
