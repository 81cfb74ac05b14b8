"""The git layer's repository: refs, commits and config read through gitpython, its errors wrapped
into GitError naming the repository and what was read."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from generator.deliver.git import journal, plumbing
from generator.deliver.git.repo import ZERO, GitError, RefUpdate, Repo, open_repo

IDENTITY = plumbing.Identity("Test", "test@example.com")


def git(repo: Repo, *args: str) -> str:
    done = subprocess.run(
        ["git", "--git-dir", str(repo.git_dir), *args], check=True, capture_output=True, text=True
    )
    return done.stdout.strip()


def commit(repo: Repo, files: dict[str, bytes], parent: str | None, message: str) -> str:
    blobs = {name: plumbing.hash_bytes(repo, data) for name, data in files.items()}
    tree = plumbing.flat_tree(repo, blobs)
    return plumbing.commit_tree(repo, tree, [parent] if parent else [], message, IDENTITY)


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    return open_repo(tmp_path / "repo.git", create=True)


def test_a_blob_written_through_gitpython_is_the_blob_git_reads(repo: Repo) -> None:
    oid = plumbing.hash_bytes(repo, b"kind: ConfigMap\n")
    assert oid == "51a34c6243e883df966c87100f12cddff0f6d3fd"  # `git hash-object` of the same bytes
    assert git(repo, "cat-file", "blob", oid) == "kind: ConfigMap"
    assert git(repo, "cat-file", "-t", oid) == "blob"


def test_resolve_names_commits_and_nothing_else(repo: Repo) -> None:
    first = commit(repo, {"a": b"1"}, None, "first")
    second = commit(repo, {"a": b"2"}, first, "second")
    repo.update_refs([RefUpdate("refs/heads/deploy/site-a", second)])
    assert repo.resolve("deploy/site-a") == second
    assert repo.resolve("refs/heads/deploy/site-a") == second
    assert repo.resolve(f"{second}^") == first
    assert repo.resolve(f"{first}^") is None  # the root commit has no parent
    assert repo.resolve(ZERO) is None
    assert repo.resolve("1234567890" * 4) is None
    assert repo.resolve("deploy/nothing") is None
    assert repo.resolve(plumbing.tree_of(repo, second)) is None  # a tree, not a commit


def test_ancestry_of_a_missing_commit_is_a_git_error_naming_the_repository(repo: Repo) -> None:
    first = commit(repo, {"a": b"1"}, None, "first")
    second = commit(repo, {"a": b"2"}, first, "second")
    assert repo.is_ancestor(first, second) and not repo.is_ancestor(second, first)
    with pytest.raises(GitError, match=rf"^{repo.git_dir}: reading whether 123456789012 is an "):
        repo.is_ancestor("1234567890" * 4, second)


def test_refs_lists_only_those_under_the_prefix(repo: Repo) -> None:
    first = commit(repo, {"a": b"1"}, None, "first")
    repo.update_refs(
        [
            RefUpdate("refs/ferry/sent/site-a", first),
            RefUpdate("refs/ferry/sentinel", first),
            RefUpdate("refs/heads/main", first),
        ]
    )
    git(repo, "pack-refs", "--all")
    repo.update_refs([RefUpdate("refs/ferry/sent/site-b", first)])  # one packed, one loose
    assert repo.refs("refs/ferry/sent/") == {
        "refs/ferry/sent/site-a": first,
        "refs/ferry/sent/site-b": first,
    }
    assert repo.refs("refs/ferry/none/") == {}


def test_config_is_read_as_git_resolves_it(repo: Repo) -> None:
    assert repo.config_all("ferry.site") == [] and repo.config("ferry.site") is None
    git(repo, "config", "--add", "ferry.site", "site-a")
    git(repo, "config", "--add", "ferry.site", "site-b")
    assert repo.config_all("ferry.site") == ["site-a", "site-b"]
    assert repo.config("ferry.site") == "site-b"  # the last value wins, as for `git config --get`


def test_a_file_missing_from_a_commit_is_a_git_error_naming_commit_and_file(repo: Repo) -> None:
    first = commit(repo, {"manifest.json": b"{}"}, None, "first")
    assert plumbing.read_blob(repo, first, "manifest.json") == b"{}"
    with pytest.raises(GitError, match=rf"^{repo.git_dir}: {first[:12]} has no file nothing.json$"):
        plumbing.read_blob(repo, first, "nothing.json")
    with pytest.raises(
        GitError, match=rf"^{repo.git_dir}: reading nothing.json of 123456789012 failed: "
    ):
        plumbing.read_blob(repo, "1234567890" * 4, "nothing.json")


def test_journal_entries_are_the_first_parent_chain_newest_first(repo: Repo) -> None:
    first = journal.write(repo, {"m": b"1"}, "imported site-a sequence 1\n\nbody\n", None)
    second = journal.write(repo, {"m": b"2"}, "imported site-a sequence 2\n", first)
    repo.update_refs([RefUpdate("refs/ferry/imported/site-a", second, ZERO)])
    found = list(journal.entries(repo, "refs/ferry/imported/site-a"))
    assert [(e.commit, e.subject) for e in found] == [
        (second, "imported site-a sequence 2"),
        (first, "imported site-a sequence 1"),
    ]
    assert found[0].time.tzinfo is not None
    assert journal.read(repo, first, "m") == b"1"
    assert list(journal.entries(repo, "refs/ferry/imported/site-b")) == []


def test_a_directory_that_is_not_a_repository_is_a_git_error(tmp_path: Path) -> None:
    with pytest.raises(GitError, match=rf"^{tmp_path}: not a git repository$"):
        open_repo(tmp_path)
    with pytest.raises(GitError, match=r": not a git repository \(no such directory\)$"):
        open_repo(tmp_path / "missing")


def cat_file_children() -> set[int]:
    """The live ``git cat-file`` processes this test process started."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == os.getpid() and fields[0] != "Z" and b"cat-file" in cmdline:
            found.add(int(stat.parent.name))
    return found


def test_close_stops_the_cat_file_processes_at_once(repo: Repo) -> None:
    first = commit(repo, {"a": b"1"}, None, "first")
    before = cat_file_children()
    assert repo.resolve(first) == first
    started = cat_file_children() - before
    assert started  # gitpython's persistent cat-file --batch(-check)
    repo.close()
    assert not started & cat_file_children()
    assert repo.resolve(first) == first  # reopened on demand
