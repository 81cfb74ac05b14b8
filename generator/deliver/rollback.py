"""``gen rollback``: a new release whose tree is an earlier release's.

History only moves forward: the rollback is one more signed commit on ``deploy/<site>``, child of
the current tip, whose tree is release N's tree, object for object (secrets included: they are
files of the tree, so their ciphertext comes back with them). Envelopes, import and the agent see
an ordinary new release and need nothing new. Its message carries ``Rollback-To: N`` and release
N's ``Source-Commit``.

``plan`` reads and checks everything and writes nothing (``--dry-run`` stops there); ``publish``
writes the commit and moves the branch with an old-value check, so a branch that moved meanwhile
makes it fail rather than lose a release.

A release is refused when this gen could not have made it: its ``index.json`` is missing, does not
parse with this gen's layout (a layout format it cannot read: ``core/layout.py``), or disagrees
with the files of its tree.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from generator.core import layout, release
from generator.core.errors import GenError
from generator.deliver import publish, releases
from generator.deliver.git import plumbing
from generator.deliver.git.plumbing import Identity
from generator.deliver.git.repo import RefUpdate, Repo, open_repo


class Incompatible(GenError):
    """Release N's compiled output was made by a gen whose layout this gen cannot apply."""


@dataclass(frozen=True)
class Settings:
    """How the rollback release is signed and named."""

    signing_key: Path
    identity: Identity | None = None
    name: str = ""
    summarize: releases.Summarize | None = None

    def __post_init__(self) -> None:
        releases.check_name_option(self.name)


@dataclass(frozen=True)
class Plan:
    """What rolling a site back to release ``target`` will do."""

    site: str
    ref: str
    current: releases.Info
    target: releases.Info
    number: int
    """The number the rollback release gets."""
    tree: str
    """Release ``target``'s tree: the new release's tree."""
    changes: tuple[str, ...]
    """``+ path``, ``~ path``, ``- path``: how the tree changes from the current release."""
    old: dict[str, bytes]
    """The current release's files that differ (path relative to the site)."""
    new: dict[str, bytes]
    """Release ``target``'s files that differ."""

    @property
    def changed(self) -> bool:
        return bool(self.changes)


@dataclass(frozen=True)
class Done:
    """The rollback release written (``commit`` None: nothing to change, nothing written)."""

    plan: Plan
    commit: str | None
    summary: str = ""


def plan(deploy_repo: Path, site: str, to: int) -> Plan:
    """Read the branch, find release ``to`` and check it can be restored; write nothing."""
    repo = open_repo(deploy_repo)
    ref = publish.branch(site)
    history = releases.history(repo, ref)
    if not history:
        raise GenError(f"{repo.git_dir}: no deploy branch for {site}; run `gen publish -t {site}`")
    current = history[0]
    target = releases.find(history, to)
    if target is None:
        raise GenError(
            f"{repo.git_dir}: {ref} has no release {to} (releases {_numbers(history)}); "
            f"see `gen releases -t {site}`"
        )
    where = f"{repo.git_dir}: {ref} release {target.label} ({target.commit[:12]})"
    wanted = publish.tree_blobs(repo, target.commit)
    check_compatible(repo, wanted, where)
    now = publish.tree_blobs(repo, current.commit)
    changes = tuple(_changes(now, wanted))
    paths = [c[2:] for c in changes]
    old = {p: publish.read_blob(repo, now[p]) for p in paths if p in now}
    new = {p: publish.read_blob(repo, wanted[p]) for p in paths if p in wanted}
    return Plan(
        site,
        ref,
        current,
        target,
        current.number + 1,
        plumbing.tree_of(repo, target.commit),
        changes,
        old,
        new,
    )


def check_compatible(repo: Repo, blobs: Mapping[str, str], where: str) -> layout.Index:
    """Raise Incompatible unless the tree (path -> blob id) is compiled output this gen can
    apply: an ``index.json`` this gen's layout reads, listing exactly the tree's files."""
    why = "its compiled output was made by an incompatible gen"
    if layout.INDEX not in blobs:
        raise Incompatible(
            f"{where}: cannot roll back: {why}: it has no {layout.INDEX} "
            "(not compiled output of this gen)"
        )
    try:
        index = layout.parse(publish.read_blob(repo, blobs[layout.INDEX]), where)
    except layout.LayoutError as e:
        detail = str(e).removeprefix(f"{where}: ")
        raise Incompatible(f"{where}: cannot roll back: {why}: {detail}") from None
    digests = {
        path: hashlib.sha256(publish.read_blob(repo, blob)).hexdigest()
        for path, blob in blobs.items()
        if path != layout.INDEX
    }
    problems = layout.mismatches(index, digests)
    if problems:
        raise Incompatible(
            f"{where}: cannot roll back: {why}: {problems[0]}"
            + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")
        )
    return index


def publish_plan(deploy_repo: Path, planned: Plan, settings: Settings) -> Done:
    """Write the rollback release of ``planned`` (signed) and move the branch, unless the current
    release already has the target's tree."""
    if not planned.changed:
        return Done(planned, None)
    if not settings.signing_key.is_file():
        raise GenError(
            f"signing key {settings.signing_key} does not exist (--signing-key / GEN_SIGNING_KEY)"
        )
    repo = open_repo(deploy_repo)
    target = planned.target
    if settings.summarize is not None:
        summary = settings.summarize(planned.site, planned.old, planned.new)
    else:
        summary = releases.file_summary(planned.changes)
    made = release.Release(planned.number, settings.name, target.number, target.source_commit)
    count = len(planned.changes)
    subject = (
        f"deploy {planned.site}: roll back to release {target.label} "
        f"({count} file{'s' if count != 1 else ''})"
    )
    message = releases.message(subject, summary, planned.changes, made)
    commit = plumbing.commit_tree(
        repo,
        planned.tree,
        [planned.current.commit],
        message,
        settings.identity,
        settings.signing_key,
    )
    repo.update_refs([RefUpdate(planned.ref, commit, planned.current.commit)])
    return Done(planned, commit, summary)


def _changes(old: Mapping[str, str], new: Mapping[str, str]) -> list[str]:
    changes = [f"+ {p}" for p in new if p not in old]
    changes += [f"~ {p}" for p in new if p in old and old[p] != new[p]]
    changes += [f"- {p}" for p in old if p not in new]
    return sorted(changes, key=lambda c: c[2:])


def _numbers(history: list[releases.Info]) -> str:
    numbers = sorted(r.number for r in history)
    if numbers == list(range(numbers[0], numbers[-1] + 1)):
        return f"{numbers[0]} to {numbers[-1]}" if len(numbers) > 1 else str(numbers[0])
    return ", ".join(map(str, numbers))
