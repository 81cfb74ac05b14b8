"""``gen ferry status``: per site,
the last envelope sent or imported and where its branch stands."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from generator.deliver import publish
from generator.deliver.ferry.ledger import IMPORTED, SENT, Ledger
from generator.deliver.git.repo import Repo, open_repo


@dataclass(frozen=True)
class SiteStatus:
    """One site's last recorded envelope on one side of the gatekeeper."""

    site: str
    side: str
    """``imported`` (inside repository) or ``sent`` (deploy repository)."""
    sequence: int
    tip: str
    time: datetime
    """When it was imported (or packed)."""
    full: bool
    branch: str
    """Where the deploy branch stands relative to
    ``tip``: at tip, ahead, behind, missing, diverged."""


def status(repo_path: Path) -> list[SiteStatus]:
    """Every site recorded in the repository's import journals, then its send journals."""
    repo = open_repo(repo_path)
    out = []
    for side, prefix in (("imported", IMPORTED), ("sent", SENT)):
        ledger = Ledger(repo, prefix)
        for site in ledger.sites():
            record = ledger.last(site)
            if record is not None:
                m = record.manifest
                out.append(
                    SiteStatus(
                        site,
                        side,
                        m.sequence,
                        m.tip,
                        record.time,
                        m.full,
                        _branch(repo, site, m.tip),
                    )
                )
    return out


def _branch(repo: Repo, site: str, tip: str) -> str:
    current = repo.resolve(publish.branch(site))
    if current is None:
        return "missing"
    if current == tip:
        return "at tip"
    if repo.resolve(tip) and repo.is_ancestor(tip, current):
        return f"ahead ({current[:12]})"
    if repo.resolve(tip) and repo.is_ancestor(current, tip):
        return f"behind ({current[:12]}; run import to finish)"
    return f"diverged ({current[:12]})"
