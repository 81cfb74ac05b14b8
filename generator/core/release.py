"""Releases: the numbers ``gen publish`` and ``gen rollback`` write into signed deploy commits, and
the agent reports.

A release is a deploy commit on ``deploy/<site>`` whose message carries git trailers (the last
paragraph, ``Key: value`` lines, as ``git interpret-trailers`` reads them)::

    Release: 7
    Release-Name: spring-upgrade        (optional)
    Rollback-To: 3                      (only on a rollback: this release's tree equals release 3)
    Source-Commit: 0123abcd...

Numbers start at 1 on each site's branch and grow by one per deploy commit. A deploy commit made
before releases existed has no ``Release`` trailer; ``parse`` gives None for it and readers number
it by its position on the branch (the first commit is 1). The commit is signed, so the number is
as trustworthy as the content: the agent can report it and re-apply an earlier release it holds
without any new trust.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

RELEASE = "Release"
NAME = "Release-Name"
ROLLBACK_TO = "Rollback-To"
SOURCE_COMMIT = "Source-Commit"

_TRAILER = re.compile(r"^([A-Za-z0-9][A-Za-z0-9-]*): ?(.*)$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


class ReleaseError(ValueError):
    """A release number, name or trailer that is not well formed."""


@dataclass(frozen=True)
class Release:
    """What a deploy commit's trailers say about it."""

    number: int
    name: str = ""
    rollback_to: int | None = None
    """The release whose tree this one restores (a rollback), or None."""
    source_commit: str = ""

    def __post_init__(self) -> None:
        if self.number < 1:
            raise ReleaseError(f"release number {self.number}: numbers start at 1")
        if self.name:
            check_name(self.name)
        if self.rollback_to is not None and not 1 <= self.rollback_to < self.number:
            raise ReleaseError(
                f"release {self.number} rolls back to {self.rollback_to}: "
                "only an earlier release can be restored"
            )

    @property
    def label(self) -> str:
        """How people say it: ``7`` or ``7 (spring-upgrade)``."""
        return f"{self.number} ({self.name})" if self.name else str(self.number)

    def trailers(self) -> list[str]:
        """The trailer lines for a deploy commit message, in a fixed order."""
        lines = [f"{RELEASE}: {self.number}"]
        if self.name:
            lines.append(f"{NAME}: {self.name}")
        if self.rollback_to is not None:
            lines.append(f"{ROLLBACK_TO}: {self.rollback_to}")
        return lines


def check_name(name: str) -> str:
    """Return ``name`` if it can name a release (letters, digits, ``.``, ``_``, ``-``, ≤ 63)."""
    if not _NAME.match(name):
        raise ReleaseError(
            f"release name {name!r}: use letters, digits, '.', '_' and '-' "
            "(starting with a letter or digit, at most 63 characters)"
        )
    return name


def trailers(message: str) -> dict[str, str]:
    """The trailers of a commit message: ``Key: value`` lines of its last paragraph (the last
    value wins when a key repeats)."""
    paragraphs = [p for p in message.strip().split("\n\n") if p.strip()]
    if not paragraphs:
        return {}
    out: dict[str, str] = {}
    for line in paragraphs[-1].splitlines():
        m = _TRAILER.match(line.strip())
        if m is None:
            return {}
        out[m.group(1)] = m.group(2).strip()
    return out


def parse(message: str) -> Release | None:
    """The release a deploy commit message records, or None when it has no ``Release`` trailer
    (published before releases existed). A malformed trailer is a ReleaseError."""
    found = trailers(message)
    if RELEASE not in found:
        return None
    number = _number(found[RELEASE], RELEASE)
    back = found.get(ROLLBACK_TO)
    return Release(
        number,
        found.get(NAME, ""),
        _number(back, ROLLBACK_TO) if back is not None else None,
        found.get(SOURCE_COMMIT, ""),
    )


def _number(text: str, key: str) -> int:
    if not text.isdigit():
        raise ReleaseError(f"trailer {key}: {text!r} is not a release number")
    return int(text)
