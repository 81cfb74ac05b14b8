"""Blobs, trees and commits written straight into the object store, without a work tree.

Nothing here moves a ref: objects that no ref reaches are invisible and git's gc removes them, so a
crash between writing objects and updating a ref loses nothing and corrupts nothing.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from gitdb.base import IStream

from generator.core.errors import GenError
from generator.deliver.git.repo import GitError, Repo, wrapped

FILE_MODE = "100644"


@dataclass(frozen=True)
class Identity:
    """Who a commit says wrote it (author and committer alike)."""

    name: str
    email: str

    @classmethod
    def parse(cls, text: str) -> Identity:
        """``Name <email>`` as an identity; a GenError if it is not of that form."""
        name, _, rest = text.partition("<")
        if not rest.endswith(">") or not name.strip() or not rest[:-1].strip():
            raise GenError(f"{text!r} is not of the form 'Name <email>'")
        return cls(name.strip(), rest[:-1].strip())

    def env(self) -> dict[str, str]:
        """The git environment variables that set this identity."""
        return {
            "GIT_AUTHOR_NAME": self.name,
            "GIT_AUTHOR_EMAIL": self.email,
            "GIT_COMMITTER_NAME": self.name,
            "GIT_COMMITTER_EMAIL": self.email,
        }


def hash_files(repo: Repo, paths: Sequence[Path]) -> list[str]:
    """Store each file as a blob; their ids in the same order (one git process for all of them)."""
    if not paths:
        return []
    listing = "".join(f"{p}\n" for p in paths).encode()
    return repo.text("hash-object", "-w", "--no-filters", "--stdin-paths", input=listing).split(
        "\n"
    )


def hash_bytes(repo: Repo, data: bytes) -> str:
    """Store ``data`` as a blob and return its id."""
    with wrapped(repo.git_dir, "the object store (writing a blob)"):
        stored = repo.handle.odb.store(IStream("blob", len(data), io.BytesIO(data)))
    sha: bytes = stored.hexsha
    return sha.decode()


def write_tree(repo: Repo, blobs: Mapping[str, str]) -> str:
    """A tree holding ``{relative/path: blob id}`` (directories created as needed); its id.

    Built in a temporary index file, so it never touches the repository's own index or work tree.
    """
    lines = "".join(f"{FILE_MODE} {blob}\t{path}\n" for path, blob in sorted(blobs.items()))
    fd, index = tempfile.mkstemp(prefix="gen-index-")
    os.close(fd)
    os.unlink(index)  # git wants to create the index itself
    env = {"GIT_INDEX_FILE": index}
    try:
        repo.run("update-index", "--add", "--index-info", input=lines.encode(), env=env)
        return repo.text("write-tree", env=env)
    finally:
        Path(index).unlink(missing_ok=True)


def flat_tree(repo: Repo, blobs: Mapping[str, str]) -> str:
    """A tree of ``{name: blob id}`` without subdirectories (one ``git mktree``)."""
    lines = "".join(f"{FILE_MODE} blob {blob}\t{name}\n" for name, blob in sorted(blobs.items()))
    return repo.text("mktree", input=lines.encode())


def commit_tree(
    repo: Repo,
    tree: str,
    parents: Sequence[str],
    message: str,
    identity: Identity | None = None,
    signing_key: Path | None = None,
) -> str:
    """A commit of ``tree`` with ``parents``; SSH-signed (``gpg.format=ssh``) when
    ``signing_key`` is given.

    Without ``identity`` git's own configuration (``user.name``/``user.email``) decides.
    """
    args: list[str] = []
    if signing_key is not None:
        args = ["-c", "gpg.format=ssh", "-c", f"user.signingKey={signing_key}", "commit-tree", "-S"]
    else:
        args = ["commit-tree"]
    for parent in parents:
        args += ["-p", parent]
    args += ["-F", "-", tree]
    return repo.text(*args, input=message.encode(), env=identity.env() if identity else None)


def tree_of(repo: Repo, commit: str) -> str:
    """The id of a commit's tree."""
    with wrapped(repo.git_dir, f"the tree of {commit[:12]}"):
        return repo.handle.commit(commit).tree.hexsha


def read_blob(repo: Repo, commit: str, path: str) -> bytes:
    """The content of ``path`` in ``commit``'s tree."""
    with wrapped(repo.git_dir, f"{path} of {commit[:12]}"):
        try:
            item = repo.handle.commit(commit).tree / path
        except KeyError:
            raise GitError(f"{repo.git_dir}: {commit[:12]} has no file {path}") from None
        data: bytes = item.data_stream.read()
        return data
