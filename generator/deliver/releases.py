"""The releases of a site: the deploy commits of ``deploy/<site>``, numbered by their ``Release``
trailer (``core/release.py``), read back for ``gen releases``, ``gen rollback`` and ``gen fleet``,
and the message every new release is written with.

A release's message::

    deploy cn-east-1: 3 files from 0123abcd4567           (subject)

    Summary: 1 object added, 1 changed                    (the site's ``gen diff`` summary)
      + Deployment app/web
      ~ StatefulSet app/db: spec.replicas

    + manifests/app/deployment-web.yaml                   (every file that changed)
    ~ index.json

    Release: 4                                            (trailers, core/release.py)
    Release-Name: spring
    Source-Commit: 0123abcd...

A commit without a ``Release`` trailer (published before releases existed) is numbered by its
position on the branch, the first commit being 1; its summary is its subject's tail.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from generator.core import release
from generator.core.errors import GenError
from generator.deliver.git.repo import Repo, wrapped

SUMMARY = "Summary: "
"""How the summary paragraph of a release message starts."""
MAX_DETAILS = 20
"""Summary lines kept in a message (the rest are counted)."""

Summarize = Callable[[str, Mapping[str, bytes], Mapping[str, bytes]], str]
"""``(site, old files, new files) -> text``: a headline, then one line per object or file. Only the
files that differ are passed, by path relative to the site. The CLI passes ``gen diff``'s summary
(``review/summary.py``): the delivery layer itself does not compare manifests."""


@dataclass(frozen=True)
class Info:
    """One release of a site as its deploy commit records it."""

    number: int
    commit: str
    time: datetime
    """When the deploy commit was made (committer time, UTC)."""
    name: str = ""
    rollback_to: int | None = None
    source_commit: str = ""
    summary: str = ""
    """The summary's headline (for a commit without one: its subject's tail)."""
    details: tuple[str, ...] = ()
    numbered: bool = True
    """False: the commit has no ``Release`` trailer and is numbered by its position."""

    @property
    def label(self) -> str:
        """``7`` or ``7 (spring-upgrade)``."""
        return f"{self.number} ({self.name})" if self.name else str(self.number)

    def as_json(self) -> dict[str, object]:
        return {
            "release": self.number,
            "name": self.name or None,
            "commit": self.commit,
            "time": format_time(self.time),
            "source_commit": self.source_commit or None,
            "summary": self.summary,
            "details": list(self.details),
            "rollback_to": self.rollback_to,
            "numbered": self.numbered,
        }


def check_name_option(name: str) -> None:
    """Refuse a ``--name`` that cannot name a release (a user error naming the option)."""
    if name:
        try:
            release.check_name(name)
        except release.ReleaseError as e:
            raise GenError(f"--name: {e}") from None


def format_time(when: datetime) -> str:
    """``2026-03-01T12:00:00Z``."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def history(repo: Repo, ref: str) -> list[Info]:
    """Every release on ``ref`` (first parents), newest first; nothing if the ref does not exist.

    A malformed ``Release`` trailer is a GenError naming the commit."""
    if repo.resolve(ref) is None:
        return []
    with wrapped(repo.git_dir, f"the releases on {ref}"):
        commits = list(repo.handle.iter_commits(ref, first_parent=True))
    out = []
    for position, commit in enumerate(reversed(commits), start=1):
        message = str(commit.message)
        try:
            found = release.parse(message)
        except release.ReleaseError as e:
            raise GenError(f"{repo.git_dir}: {ref} commit {commit.hexsha[:12]}: {e}") from None
        headline, details = _summary(message)
        out.append(
            Info(
                found.number if found else position,
                commit.hexsha,
                datetime.fromtimestamp(commit.committed_date, UTC),
                found.name if found else "",
                found.rollback_to if found else None,
                found.source_commit
                if found
                else release.trailers(message).get("Source-Commit", ""),
                headline,
                details,
                found is not None,
            )
        )
    return out[::-1]


def latest(repo: Repo, ref: str) -> Info | None:
    """The newest release on ``ref``, or None before the first (reads the tip alone when it has a
    ``Release`` trailer, so publishing costs the same on a long branch)."""
    tip = repo.resolve(ref)
    if tip is None:
        return None
    with wrapped(repo.git_dir, f"the tip of {ref}"):
        message = str(repo.handle.commit(tip).message)
    try:
        found = release.parse(message)
    except release.ReleaseError as e:
        raise GenError(f"{repo.git_dir}: {ref} commit {tip[:12]}: {e}") from None
    if found is None:
        return history(repo, ref)[0]  # numbered by position: count them
    with wrapped(repo.git_dir, f"the tip of {ref}"):
        commit = repo.handle.commit(tip)
        when = datetime.fromtimestamp(commit.committed_date, UTC)
    headline, details = _summary(message)
    return Info(
        found.number,
        tip,
        when,
        found.name,
        found.rollback_to,
        found.source_commit,
        headline,
        details,
    )


def find(releases: Iterable[Info], number: int) -> Info | None:
    """The release with ``number`` (the newest such, should a branch repeat one)."""
    return next((r for r in releases if r.number == number), None)


def of_commit(releases: Iterable[Info], commit: str) -> Info | None:
    """The release a commit is (None if it is not on the branch)."""
    return next((r for r in releases if r.commit == commit), None)


def message(
    subject: str,
    summary: str,
    changes: Iterable[str],
    made: release.Release,
    extra_trailers: Iterable[str] = (),
) -> str:
    """A release's commit message: subject, summary paragraph, changed files, trailers."""
    lines = [line.rstrip() for line in summary.splitlines() if line.strip()]
    headline = lines[0].strip() if lines else "no change"
    details = [f"  {line.strip()}" for line in lines[1:]]
    if len(details) > MAX_DETAILS:
        details = [*details[:MAX_DETAILS], f"  ... and {len(details) - MAX_DETAILS} more"]
    out = [subject, "", SUMMARY + headline, *details, ""]
    files = list(changes)
    if files:
        out += [*files, ""]
    out += made.trailers()
    out.append(f"{release.SOURCE_COMMIT}: {made.source_commit or 'none'}")
    out += list(extra_trailers)
    return "\n".join(out) + "\n"


def file_summary(changes: Iterable[str]) -> str:
    """The summary when nothing better is known: how many files were added, changed, removed."""
    counts = {"+": 0, "~": 0, "-": 0}
    for change in changes:
        counts[change[:1]] = counts.get(change[:1], 0) + 1
    parts = [
        f"{n} {word}"
        for sign, word in (("+", "added"), ("~", "changed"), ("-", "removed"))
        if (n := counts[sign])
    ]
    total = sum(counts.values())
    return f"{total} file{'s' if total != 1 else ''}: {', '.join(parts) or 'none'}"


def _summary(text: str) -> tuple[str, tuple[str, ...]]:
    paragraphs = text.strip().split("\n\n")
    for paragraph in paragraphs[1:]:
        if paragraph.startswith(SUMMARY):
            first, *rest = paragraph.splitlines()
            return first[len(SUMMARY) :].strip(), tuple(line.strip() for line in rest)
    subject = paragraphs[0].splitlines()[0] if paragraphs and paragraphs[0] else ""
    return subject.partition(": ")[2] or subject, ()
