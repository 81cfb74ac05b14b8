"""An append-only journal kept as a chain of commits on one ref (``refs/ferry/...``).

Each entry is a commit whose tree holds a few small files and whose subject says what happened;
its parent is the previous entry. Appending writes the commit first and moves the ref last, with
an old-value check, so the journal is always either the old chain or the new one, and two writers
racing cannot both append the same entry. Journal commits carry a fixed identity and are not
signed: they are local records, never deployed.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from generator.deliver.git import plumbing
from generator.deliver.git.repo import Repo, wrapped

IDENTITY = plumbing.Identity("gen ferry", "gen-ferry@localhost")


@dataclass(frozen=True)
class Entry:
    """One journal entry: its commit, subject line and when it was written."""

    commit: str
    subject: str
    time: datetime


def write(repo: Repo, files: Mapping[str, bytes], message: str, parent: str | None) -> str:
    """Store an entry's commit (after ``parent``, the current head, if any);
    the ref is not moved."""
    blobs = {name: plumbing.hash_bytes(repo, content) for name, content in files.items()}
    tree = plumbing.flat_tree(repo, blobs)
    return plumbing.commit_tree(repo, tree, [parent] if parent else [], message, IDENTITY)


def entries(repo: Repo, ref: str) -> Iterator[Entry]:
    """Every entry, newest first (nothing for an empty journal)."""
    if repo.resolve(ref) is None:
        return
    with wrapped(repo.git_dir, f"the journal {ref}"):
        for commit in repo.handle.iter_commits(ref, first_parent=True):
            when = datetime.fromtimestamp(commit.committed_date, UTC)
            yield Entry(commit.hexsha, str(commit.summary), when)


def read(repo: Repo, commit: str, name: str) -> bytes:
    """A file of an entry."""
    return plumbing.read_blob(repo, commit, name)
