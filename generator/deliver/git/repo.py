"""A git repository: where git is opened, where git commands run and where their errors enter.

Reads (refs, commits, ancestry, objects) go through gitpython (``Repo.handle``, a ``git.Repo``
whose ``odb`` keeps one ``cat-file --batch`` running); writes that git must do itself (atomic
``update-ref --stdin`` transactions, signed ``commit-tree``, ``fetch``, ``bundle``) run the git
binary. Either way the repository is named explicitly: git never discovers one by walking up from
a directory, so a mistyped path can never reach the project's own repository. Variables that would
redirect git elsewhere (``GIT_DIR``, ``GIT_INDEX_FILE``, ...) are removed from the environment of
the git binary unless the caller sets them on purpose, and pinned for gitpython's processes.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import BinaryIO

import git
from git.exc import BadName, BadObject

from generator.core.errors import OperationalError

ZERO = "0" * 40
"""The null object id: as an old value in a ref update it means "the ref must not exist yet"."""

_REDIRECTING = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_NAMESPACE",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_QUARANTINE_PATH",
    "GIT_PREFIX",
)


class GitError(OperationalError):
    """A git command failed; the message names the repository, the command and git's own words."""


GITPYTHON_ERRORS = (
    git.GitCommandError,
    BadName,
    BadObject,
    git.InvalidGitRepositoryError,
    git.NoSuchPathError,
    ValueError,
)
"""What gitpython raises for a failed command, an unknown name or object, or a path that is not a
repository (and ValueError: what it raises for an object id that ``cat-file`` reports missing);
each is wrapped into a GitError where it enters, naming the repository and what was read."""


@contextmanager
def wrapped(where: object, what: str) -> Iterator[None]:
    """Turn gitpython's errors in the block into a
    GitError: ``<where>: reading <what> failed: ...``."""
    try:
        yield
    except GITPYTHON_ERRORS as e:
        raise GitError(f"{where}: reading {what} failed: {_gitpython_message(e)}") from e


def _gitpython_message(e: Exception) -> str:
    if isinstance(e, git.GitCommandError):
        text = e.stderr.strip().removeprefix("stderr:").strip(" '\n") if e.stderr else ""
        return text or f"git exit status {e.status}"
    return f"{type(e).__name__}: {e}"


@dataclass(frozen=True)
class RefUpdate:
    """One step of an atomic ref transaction.

    ``new`` None deletes the ref; ``old`` None means "whatever it is now", ``ZERO`` "must not
    exist".
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

    @cached_property
    def handle(self) -> git.Repo:
        """The repository opened by gitpython (once; its cat-file processes live as long as it)."""
        with wrapped(self.git_dir, "the repository"):
            handle = git.Repo(self.git_dir)
        # gitpython's own git processes inherit os.environ: pin them to this repository.
        handle.git.update_environment(
            GIT_DIR=str(self.git_dir), GIT_OBJECT_DIRECTORY=str(self.git_dir / "objects")
        )
        return handle

    def close(self) -> None:
        """Stop gitpython's cat-file processes now (they would otherwise last until the garbage
        collector finds the repository): for repositories opened again and again by a loop."""
        handle = self.__dict__.pop("handle", None)
        if handle is not None:
            handle.close()

    def run(
        self, *args: str, input: bytes | None = None, env: Mapping[str, str] | None = None
    ) -> bytes:
        """Run ``git <args>`` on this repository and return its stdout;
        raise GitError on failure."""
        proc = self.call(*args, input=input, env=env)
        if proc.returncode != 0:
            raise GitError(f"{self.git_dir}: git {_short(args)} failed: {_stderr(proc)}")
        return proc.stdout

    def call(
        self, *args: str, input: bytes | None = None, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[bytes]:
        """Run ``git <args>`` and return the finished process whatever its exit status."""
        return run_git(["--git-dir", str(self.git_dir), *args], input=input, env=env)

    def text(
        self, *args: str, input: bytes | None = None, env: Mapping[str, str] | None = None
    ) -> str:
        """Like ``run``, decoded, without the trailing newline."""
        return self.run(*args, input=input, env=env).decode("utf-8", "replace").rstrip("\n")

    def resolve(self, rev: str) -> str | None:
        """The commit id ``rev`` names, or None if it names no commit in this repository.

        ``rev`` is a ref, a commit id or one of those with ``^``/``~`` suffixes (what gen itself
        names; gitpython parses them without a git process).
        """
        if not rev or rev.startswith("-") or rev == ZERO:
            return None  # gitpython takes the null id for a commit without looking
        try:
            return self.handle.rev_parse(f"{rev}^{{commit}}").hexsha
        except (BadName, BadObject, ValueError, IndexError):
            return None

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        """Whether ``ancestor`` is ``descendant`` or one of its ancestors (both must exist)."""
        with wrapped(self.git_dir, f"whether {ancestor[:12]} is an ancestor of {descendant[:12]}"):
            handle = self.handle
            return handle.is_ancestor(handle.commit(ancestor), handle.commit(descendant))

    def refs(self, prefix: str) -> dict[str, str]:
        """Every ref under ``prefix`` (e.g. ``refs/ferry/sent/``) with the object it points at."""
        found: dict[str, str] = {}
        with wrapped(self.git_dir, f"the refs under {prefix}"):
            for ref in git.Reference.iter_items(self.handle, common_path=prefix.rstrip("/")):
                if ref.path.startswith(prefix):
                    found[ref.path] = git.Reference.dereference_recursive(self.handle, ref.path)
        return found

    def update_refs(self, updates: Sequence[RefUpdate]) -> None:
        """Apply every update or none
        (``git update-ref --stdin`` transaction with old-value checks)."""
        script = "start\n" + "".join(u.command() for u in updates) + "prepare\ncommit\n"
        self.run("update-ref", "--stdin", input=script.encode())

    def config(self, key: str) -> str | None:
        """A configuration value as git resolves it for this repository
        (global and system included)."""
        values = self.config_all(key)
        return values[-1] if values else None

    def config_all(self, key: str) -> list[str]:
        """Every value of a multi-valued configuration key (none when unset)."""
        # Through git itself, not gitpython's config_reader: that one ignores GIT_CONFIG_GLOBAL,
        # GIT_CONFIG_COUNT (``git -c``) and includeIf, so user.email could differ from git's.
        try:
            out: str = self.handle.git.config("--get-all", key)
        except git.GitCommandError as e:
            if e.status == 1:
                return []  # unset
            why = _gitpython_message(e)
            raise GitError(f"{self.git_dir}: reading config {key} failed: {why}") from e
        return out.split()

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
        with wrapped(path, "a new bare repository"):
            git.Repo.init(path, bare=True, mkdir=True).close()
    try:
        handle = git.Repo(path)  # never searches parent directories
    except git.NoSuchPathError:
        raise GitError(f"{path}: not a git repository (no such directory)") from None
    except git.InvalidGitRepositoryError:
        raise GitError(f"{path}: not a git repository") from None
    repo = Repo(Path(handle.git_dir))
    handle.close()
    return repo


def run_git(
    args: Sequence[str],
    input: bytes | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    stdin: BinaryIO | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run the git binary with a clean environment (plus ``env``), its standard input ``input``
    or the open file ``stdin`` (streamed, not read into memory); never raises for a failed
    command."""
    full_env = {k: v for k, v in os.environ.items() if k not in _REDIRECTING}
    full_env.update(env or {})
    try:
        return subprocess.run(
            ["git", *args],
            input=input,
            stdin=stdin,
            capture_output=True,
            env=full_env,
            cwd=cwd,
            check=False,
        )
    except FileNotFoundError as e:
        raise GitError("git is not installed (the git binary is needed on PATH)") from e


def _short(args: Sequence[str]) -> str:
    return " ".join(args[:4])


def _stderr(proc: subprocess.CompletedProcess[bytes]) -> str:
    lines = [
        line.strip() for line in proc.stderr.decode("utf-8", "replace").splitlines() if line.strip()
    ]
    text = "; ".join(lines)
    return (text[:600] + " ...") if len(text) > 600 else text or f"exit status {proc.returncode}"
