"""``gen publish``: each site's ``compiled/<site>/`` becomes a signed commit on its own deploy
branch.

The deploy branch ``refs/heads/deploy/<site>`` holds that site's files and nothing else (its tree
is ``compiled/<site>/`` itself), so handing a site its branch can never show it another customer's
configuration. Commits are built from the files straight into the deploy repository's object store
(no work tree, no checkout), signed with an SSH key (``gpg.format=ssh``), and the branch is moved
with an old-value check. Nothing changed, nothing committed.

Every deploy commit is a release (``deliver/releases.py``): the next number on the site's branch,
an optional name, the source commit and a summary of what changed, in trailers and a summary
paragraph of its message. ``gen rollback`` (``deliver/rollback.py``) adds releases the same way.

Before anything is written the site's files are checked against its ``index.json``, and the
source repository must have them committed (the message names the source commit, which would
otherwise not describe what is published) unless ``allow_dirty`` says otherwise.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from generator.core import layout, release
from generator.core.errors import GenError
from generator.deliver import releases
from generator.deliver.git import plumbing
from generator.deliver.git.plumbing import Identity
from generator.deliver.git.repo import ZERO, RefUpdate, Repo, open_repo, run_git, wrapped

BRANCH_PREFIX = "refs/heads/deploy/"


@dataclass(frozen=True)
class Settings:
    """Where and how to publish."""

    deploy_repo: Path
    """The deploy repository (a local path; created as a bare repository if it does not exist)."""
    signing_key: Path
    """SSH private key that signs the commits (or its ``.pub`` when the key is in ssh-agent).
    Keep it outside every repository: only its signatures are stored."""
    identity: Identity | None = None
    """Author and committer of deploy commits; None uses git's ``user.name``/``user.email``."""
    allow_dirty: bool = False
    """Publish even if ``compiled/<site>/`` differs from the source commit (the message says so)."""
    name: str = ""
    """The name of the releases made (``--name``), "" for none."""
    summarize: releases.Summarize | None = None
    """Writes the summary of a release from the files that changed (the CLI passes ``gen diff``'s
    summary); None: how many files were added, changed and removed."""

    def __post_init__(self) -> None:
        releases.check_name_option(self.name)


@dataclass(frozen=True)
class Source:
    """The source repository's state: its HEAD commit and which compiled sites differ from it."""

    commit: str | None
    dirty: frozenset[str]


@dataclass(frozen=True)
class Published:
    """What publishing one site did."""

    site: str
    branch: str
    commit: str
    """The branch's commit after publishing (the previous one when nothing changed)."""
    changes: tuple[str, ...] = ()
    """``+ path``, ``~ path``, ``- path`` for every file that changed; empty when nothing did."""
    release: int | None = None
    """The number of the release made, or of the branch's tip when nothing changed."""
    summary: str = ""
    """The summary written into the release's message (its first line: the headline)."""

    @property
    def changed(self) -> bool:
        return bool(self.changes)


def branch(site: str) -> str:
    """The deploy branch of a site."""
    return f"{BRANCH_PREFIX}{site}"


def publish(root: Path, sites: Sequence[str], settings: Settings) -> list[Published]:
    """Commit every selected site (all of ``compiled/`` when ``sites`` is empty) to its deploy
    branch.

    Every site is checked before any branch moves; each branch then moves on its own, so a failure
    part-way leaves each site either published or as it was.
    """
    compiled = root / "compiled"
    names = select(compiled, sites)
    source = read_source(root, names)
    if not settings.signing_key.is_file():
        raise GenError(
            f"signing key {settings.signing_key} does not exist (--signing-key / GEN_SIGNING_KEY)"
        )
    for name in names:
        _check_publishable(compiled / name, name, source, settings)
    repo = open_repo(settings.deploy_repo, create=True)
    return [publish_site(repo, compiled / name, name, source, settings) for name in names]


def select(compiled: Path, wanted: Sequence[str]) -> list[str]:
    """The compiled sites to publish, in name order;
    an unknown one is an error naming those there are."""
    if not compiled.is_dir():
        raise GenError(f"{compiled}: no compiled tree; run `gen compile` first")
    present = sorted(
        p.name for p in compiled.iterdir() if p.is_dir() and not p.name.startswith(".")
    )
    missing = sorted(set(wanted) - set(present))
    if missing:
        raise GenError(
            f"{compiled}: no compiled site {', '.join(missing)}; "
            f"sites: {', '.join(present) or 'none'}"
        )
    return sorted(set(wanted)) if wanted else present


def read_source(root: Path, sites: Sequence[str]) -> Source:
    """HEAD of the repository holding ``root`` and which ``compiled/<site>`` differ from it."""
    head = run_git(["rev-parse", "--verify", "--quiet", "HEAD^{commit}"], cwd=root)
    if head.returncode != 0:
        return Source(None, frozenset(sites))
    dirty = frozenset(site for site in sites if _differs(root, f"compiled/{site}"))
    return Source(head.stdout.decode().strip(), dirty)


def _differs(root: Path, path: str) -> bool:
    status = run_git(["status", "--porcelain", "--untracked-files=all", "--", path], cwd=root)
    return status.returncode != 0 or bool(status.stdout.strip())


def _check_publishable(directory: Path, site: str, source: Source, settings: Settings) -> None:
    if site in source.dirty and not settings.allow_dirty:
        where = "is not in a git repository" if source.commit is None else "has uncommitted changes"
        raise GenError(
            f"compiled/{site} {where}: the deploy commit names its source commit, so commit "
            "compiled/ first (or pass --allow-dirty to publish anyway, noted in the message)"
        )
    check_index(directory, site)


def check_index(directory: Path, site: str) -> None:
    """Raise unless the site's files are exactly those its ``index.json`` lists,
    with those hashes."""
    try:
        index = layout.parse((directory / layout.INDEX).read_bytes(), f"compiled/{site}")
    except OSError as e:
        raise GenError(
            f"compiled/{site}/{layout.INDEX}: unreadable ({e}); run `gen compile`"
        ) from e
    except layout.LayoutError as e:
        raise GenError(f"{e}; run `gen compile`") from e
    digests = {
        rel: hashlib.sha256((directory / rel).read_bytes()).hexdigest() for rel in _files(directory)
    }
    problems = layout.mismatches(index, digests)
    if problems:
        raise GenError(f"compiled/{site}/{problems[0]} (edited by hand?); run `gen compile`")


def publish_site(
    repo: Repo, directory: Path, site: str, source: Source, settings: Settings
) -> Published:
    """Commit one site's directory to its branch if its content differs from the branch's tip."""
    ref = branch(site)
    parent = repo.resolve(ref)
    files = _files(directory)
    blobs = dict(
        zip(files, plumbing.hash_files(repo, [directory / rel for rel in files]), strict=True)
    )
    old = tree_blobs(repo, parent) if parent else {}
    changes = _changes(old, blobs)
    previous = releases.latest(repo, ref)
    if parent and not changes:
        return Published(site, ref, parent, release=previous.number if previous else None)
    tree = plumbing.write_tree(repo, blobs)
    summary = _summary(repo, directory, site, old, blobs, changes, settings)
    made = release.Release(
        previous.number + 1 if previous else 1, settings.name, None, source.commit or ""
    )
    message = _message(site, source, changes, site in source.dirty, made, summary)
    commit = plumbing.commit_tree(
        repo, tree, [parent] if parent else [], message, settings.identity, settings.signing_key
    )
    repo.update_refs([RefUpdate(ref, commit, parent or ZERO)])
    return Published(site, ref, commit, tuple(changes), made.number, summary)


def _summary(
    repo: Repo,
    directory: Path,
    site: str,
    old: Mapping[str, str],
    new: Mapping[str, str],
    changes: list[str],
    settings: Settings,
) -> str:
    if settings.summarize is None:
        return releases.file_summary(changes)
    paths = [c[2:] for c in changes]
    before = {p: read_blob(repo, old[p]) for p in paths if p in old}
    after = {p: (directory / p).read_bytes() for p in paths if p in new}
    return settings.summarize(site, before, after)


def read_blob(repo: Repo, blob: str) -> bytes:
    """The content of a blob by its id (through gitpython's running ``cat-file``)."""
    with wrapped(repo.git_dir, f"blob {blob[:12]}"):
        data: bytes = repo.handle.odb.stream(bytes.fromhex(blob)).read()
    return data


def _files(directory: Path) -> list[str]:
    out = []
    for base, dirs, names in os.walk(directory):
        dirs.sort()
        for name in sorted(names):
            out.append(os.path.relpath(os.path.join(base, name), directory).replace(os.sep, "/"))
    return sorted(out)


def tree_blobs(repo: Repo, commit: str) -> dict[str, str]:
    """Path -> blob id of every file in a commit's tree."""
    out = repo.run("ls-tree", "-r", "-z", "--full-tree", commit).decode("utf-8", "replace")
    blobs = {}
    for entry in filter(None, out.split("\0")):
        meta, path = entry.split("\t", 1)
        blobs[path] = meta.split()[2]
    return blobs


def _changes(old: dict[str, str], new: dict[str, str]) -> list[str]:
    changes = [f"+ {p}" for p in new if p not in old]
    changes += [f"~ {p}" for p in new if p in old and old[p] != new[p]]
    changes += [f"- {p}" for p in old if p not in new]
    return sorted(changes, key=lambda c: c[2:])


def _message(
    site: str,
    source: Source,
    changes: list[str],
    dirty: bool,
    made: release.Release,
    summary: str,
) -> str:
    origin = source.commit[:12] if source.commit else "a source outside git"
    count = f"{len(changes)} file{'s' if len(changes) != 1 else ''}"
    extra = (
        [
            "Source-Dirty: yes (compiled/ differed from the source commit; "
            "published with --allow-dirty)"
        ]
        if dirty
        else []
    )
    return releases.message(f"deploy {site}: {count} from {origin}", summary, changes, made, extra)
