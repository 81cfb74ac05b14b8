"""A directory (``compiled/`` by default) as committed at a ref, read in two git processes.

``listing`` runs one ``git ls-tree -r -z`` and returns every file's blob id; ``read_blobs`` runs one
``git cat-file --batch`` for the blobs asked for. Callers compare blob ids first (``blob_id`` hashes
bytes the way git does) and read only the blobs that differ, so reading the base of a 200-site
``compiled/`` costs a few milliseconds when little changed.

Those reads, and the working tree's ids (``worktree``), are the hot path of ``gen diff`` and of the
agent, and run the git binary directly: through gitpython (the commit's trees walked and parsed in
Python, one ``odb.stream`` round trip per blob) the same reads cost 1.5 to 4.6 times as much
(bench/git_reads.py, bench/README.md "Git reads"). Everything else (finding the repository,
resolving refs, the merge base, the object format, ref names) goes through gitpython.

Every git failure becomes a ``GenError`` naming the repository and the ref.
"""

from __future__ import annotations

import functools
import hashlib
import os
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import git
from git.exc import BadName, BadObject

from generator.core import errors

DEFAULT_BRANCHES = ("main", "origin/main", "master", "origin/master")
"""Branches whose merge base with HEAD is the default base, first found wins;
HEAD if none exists."""


@dataclass(frozen=True)
class Ref:
    """A resolved commit and how the user would name it."""

    name: str
    """As given (``main``, ``HEAD~1``) or chosen (``merge-base(HEAD, origin/main)``)."""
    commit: str
    """The full commit id."""

    @property
    def short(self) -> str:
        return self.commit[:12]

    def __str__(self) -> str:
        return self.name if self.name.startswith(self.commit[:7]) else f"{self.name} ({self.short})"


def resolve(root: Path, ref: str) -> Ref:
    """The commit ``ref`` names in the repository holding ``root``."""
    # git's own rev-parse (through gitpython) rather than gitpython's: a user's --base may use any
    # revision syntax git knows (``main@{upstream}``, ``HEAD@{1}``, ``:/message``).
    try:
        commit = _open(root).git.rev_parse(
            "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}"
        )
    except git.GitCommandError:
        hint = (
            " (this clone is shallow: fetch the commit or clone deeper)" if _shallow(root) else ""
        )
        raise errors.OperationalError(
            f"git repository {_top(root)}: no commit {ref!r}{hint}"
        ) from None
    return Ref(ref, commit.strip())


def default_base(root: Path) -> Ref:
    """The merge base of HEAD with the first of ``DEFAULT_BRANCHES`` that exists, else HEAD."""
    head = resolve(root, "HEAD")
    repo = _open(root)
    for branch in DEFAULT_BRANCHES:
        path = f"refs/remotes/{branch}" if "/" in branch else f"refs/heads/{branch}"
        if not git.Reference(repo, path).is_valid():
            continue
        try:
            bases = repo.merge_base("HEAD", branch)
        except git.GitCommandError as e:
            if e.status != 1:  # 1: no common commit
                raise errors.OperationalError(
                    f"git repository {_top(root)}: the merge base of HEAD and "
                    f"{branch} failed: {e.stderr.strip()}"
                ) from e
            bases = []
        if bases and bases[0] is not None:
            return Ref(f"merge-base(HEAD, {branch})", bases[0].hexsha)
        if _shallow(root):
            raise errors.OperationalError(
                f"git repository {_top(root)}: HEAD and {branch} have no common commit in this "
                "shallow clone; fetch more history or pass --base"
            )
    return head


def listing(root: Path, ref: Ref, prefix: str = "compiled/") -> dict[str, str]:
    """Blob id of every file under ``prefix`` (relative to ``root``) at ``ref``,
    by path below ``prefix``."""
    out = _git(root, ["ls-tree", "-r", "-z", ref.commit, "--", prefix], str(ref))
    assert out is not None
    found: dict[str, str] = {}
    for record in out.split(b"\0"):
        if not record:
            continue
        meta, _, path = record.partition(b"\t")
        _, kind, oid = meta.split(b" ")
        name = os.fsdecode(path)
        if kind == b"blob" and name.startswith(prefix):
            found[name[len(prefix) :]] = oid.decode()
    return found


def read_blobs(root: Path, ids: Iterable[str]) -> dict[str, bytes]:
    """The content of each blob, by id, read through one ``git cat-file --batch``."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    out = _git(
        root,
        ["cat-file", "--batch"],
        "objects",
        stdin="".join(f"{oid}\n" for oid in wanted).encode(),
    )
    assert out is not None
    try:
        return split_batch(out, wanted)
    except LookupError as e:
        raise errors.OperationalError(
            f"git repository {_top(root)}: object {e} is missing"
        ) from None


def split_batch(out: bytes, oids: Iterable[str]) -> dict[str, bytes]:
    """The blobs in ``git cat-file --batch`` output for ``oids`` (in the order asked);
    raises LookupError(oid) for an object git reports missing."""
    blobs: dict[str, bytes] = {}
    pos = 0
    for oid in oids:
        end = out.index(b"\n", pos)
        header = out[pos:end].split(b" ")
        if len(header) != 3:
            raise LookupError(oid)
        size = int(header[2])
        blobs[oid] = out[end + 1 : end + 1 + size]
        pos = end + 1 + size + 1
    return blobs


def read(root: Path, ref: Ref, prefix: str = "compiled/") -> dict[str, bytes]:
    """Every file under ``prefix`` at ``ref`` with its content, by path below ``prefix``."""
    ids = listing(root, ref, prefix)
    blobs = read_blobs(root, ids.values())
    return {path: blobs[oid] for path, oid in ids.items()}


def worktree(root: Path, prefix: str = "compiled/") -> dict[str, str]:
    """Blob id of every file under ``prefix`` in the working tree (tracked or untracked, not
    ignored).

    Files git's index vouches for (tracked, unmodified by their stat data, as ``git status``
    decides) take their id from the index; the rest (modified, untracked, or only touched, as a
    compile that swaps a site's directory leaves them) are hashed by ``git hash-object``. Nothing is
    read by Python and nothing written; four git processes whatever the size.
    """
    staged = _git(root, ["ls-files", "--stage", "-z", "--", prefix], "the index")
    dirty = _git(
        root, ["diff-files", "--relative", "--name-status", "-z", "--", prefix], "the working tree"
    )
    untracked = _git(
        root, ["ls-files", "--others", "--exclude-standard", "-z", "--", prefix], "the working tree"
    )
    assert staged is not None and dirty is not None and untracked is not None
    # "-z" ends every field with NUL: the split leaves one empty field over (uneven pairs).
    status = dirty.split(b"\0")
    changed = {
        os.fsdecode(path): flag for flag, path in zip(status[0::2], status[1::2], strict=False)
    }
    found: dict[str, str] = {}
    unknown: list[str] = [os.fsdecode(raw) for raw in untracked.split(b"\0") if raw]
    for record in staged.split(b"\0"):
        meta, _, raw = record.partition(b"\t")
        path = os.fsdecode(raw)
        if not raw or changed.get(path) == b"D" or meta.startswith(b"160000"):
            continue
        if path in changed:
            unknown.append(path)
        else:
            found[path] = meta.split(b" ")[1].decode()
    found.update(_hash_files(root, unknown))
    return {path[len(prefix) :]: oid for path, oid in found.items() if path.startswith(prefix)}


def _hash_files(root: Path, paths: list[str]) -> dict[str, str]:
    """Blob ids of files (relative to ``root``), hashed by one ``git hash-object``
    (nothing written)."""
    if not paths:
        return {}
    out = _git(
        root,
        ["hash-object", "--stdin-paths"],
        "the working tree",
        stdin="".join(f"{path}\n" for path in paths).encode(),
    )
    assert out is not None
    return dict(zip(paths, out.decode().split(), strict=True))


def object_format(root: Path) -> str:
    """``sha1`` or ``sha256``: how the repository names its objects."""
    config = _open(root).config_reader("repository")
    return str(config.get_value("extensions", "objectformat", "sha1"))


def blob_id(data: bytes, fmt: str = "sha1") -> str:
    """The id git gives a blob with this content (what ``git hash-object`` prints)."""
    h = hashlib.new(fmt)
    h.update(b"blob %d\0" % len(data))
    h.update(data)
    return h.hexdigest()


def refs(root: Path) -> list[str]:
    """Branch, remote-branch and tag names (for shell completion); empty outside a repository."""
    try:
        found = _open(root).references
    except (errors.GenError, *_GITPYTHON_ERRORS):
        return []
    return sorted(ref.name for ref in found if ref.path.startswith(_COMPLETED))


def _git(
    root: Path, args: list[str], what: str, *, stdin: bytes | None = None, check: bool = True
) -> bytes | None:
    """Run git in ``root``; its stdout, or None on failure when not ``check``."""
    try:
        done = subprocess.run(
            ["git", "-C", str(root), *args],
            input=stdin,
            capture_output=True,
            env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"},
        )
    except OSError as e:
        raise errors.OperationalError(
            f"cannot run git ({e.strerror}); gen diff needs git on the PATH"
        ) from e
    if done.returncode == 0:
        return done.stdout
    message = done.stderr.decode(errors="replace").strip()
    if "not a git repository" in message:
        raise errors.OperationalError(
            f"{root} is not inside a git repository; gen diff compares with a commit"
        )
    if check:
        raise errors.OperationalError(
            f"git repository {_top(root)}: reading {what} failed: {message}"
        )
    return None


_COMPLETED = ("refs/heads/", "refs/remotes/", "refs/tags/")
_GITPYTHON_ERRORS = (git.GitCommandError, BadName, BadObject, ValueError)


@functools.lru_cache(maxsize=8)
def _open(root: Path) -> git.Repo:
    """The repository holding ``root`` (found as ``git -C root`` finds it), opened once."""
    try:
        return git.Repo(root, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise errors.OperationalError(
            f"{root} is not inside a git repository; gen diff compares with a commit"
        ) from None


def _top(root: Path) -> str:
    """The repository's top directory, for messages (``root`` itself if git cannot say)."""
    try:
        repo = _open(root)
    except errors.GenError:
        return str(root)
    return str(repo.working_tree_dir or root)


def _shallow(root: Path) -> bool:
    return (Path(_open(root).common_dir) / "shallow").is_file()
