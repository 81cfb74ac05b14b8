"""``gen fleet``: every site at a glance, from the outside.

Per site, from the deploy repository: the last release published (``deploy/<site>``), the last
release packed into an envelope and when (the send ledger, ``refs/ferry/sent/<site>``), how many
releases are published but not yet packed, and, given the outbox the envelopes are packed into
(a drop directory, or any ``Transport``), how many envelopes wait there to be carried. Nothing
comes back through the gatekeeper, so what a site runs is known only from status reports carried
out by hand (``gen agent report``): ``import_report`` verifies one and keeps it in the deploy
repository (a journal per site, ``refs/fleet/reports/<site>``), and the fleet shows each site's
newest.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from generator.core.errors import GenError
from generator.deliver import publish, releases
from generator.deliver.ferry import transport
from generator.deliver.ferry.ledger import SENT, Ledger
from generator.deliver.ferry.transport import Transport
from generator.deliver.git import journal, sign
from generator.deliver.git.repo import ZERO, RefUpdate, Repo, open_repo
from generator.formats import agent_report, envelope
from generator.formats.agent_report import Report

REPORTS = "refs/fleet/reports/"
"""Journal of the status reports imported for each site."""
REPORT_FILE = "report.json"
SIGNATURE_FILE = "report.json.sig"
_WAITING = re.compile(r"^(.+)-(\d{6,})$")


@dataclass(frozen=True)
class Packed:
    """The last envelope packed for a site."""

    sequence: int
    tip: str
    time: datetime
    release: releases.Info | None
    """The release at the envelope's tip (None if it is no longer on the branch)."""


@dataclass(frozen=True)
class Reported:
    """A site's newest imported status report."""

    report: Report
    imported: datetime


@dataclass(frozen=True)
class Site:
    """One line of the fleet."""

    site: str
    published: releases.Info | None
    packed: Packed | None
    unpacked: int
    """Releases published after the last one packed (all of them before the first envelope)."""
    waiting: int | None
    """Envelopes waiting in the outbox to be carried (None: no outbox given)."""
    reported: Reported | None

    def as_json(self) -> dict[str, Any]:
        p, k, r = self.published, self.packed, self.reported
        return {
            "site": self.site,
            "published": _release_json(p) if p else None,
            "packed": {
                "sequence": k.sequence,
                "tip": k.tip,
                "time": releases.format_time(k.time),
                "release": _release_json(k.release) if k.release else None,
            }
            if k
            else None,
            "unpacked": self.unpacked,
            "waiting": self.waiting,
            "report": {
                "time": agent_report.format_time(r.report.time),
                "imported": releases.format_time(r.imported),
                "signer": r.report.signer,
                "status": r.report.status,
                "line": status_line(r.report),
            }
            if r
            else None,
        }


def _release_json(info: releases.Info) -> dict[str, Any]:
    return {
        "release": info.number,
        "name": info.name or None,
        "commit": info.commit,
        "time": releases.format_time(info.time),
        "rollback_to": info.rollback_to,
    }


def fleet(deploy_repo: Path, outbox: Transport | Path | None = None) -> list[Site]:
    """Every site with a deploy branch, a send journal or a report, in name order."""
    repo = open_repo(deploy_repo)
    ledger = Ledger(repo, SENT)
    branches = {ref.removeprefix(publish.BRANCH_PREFIX) for ref in repo.refs(publish.BRANCH_PREFIX)}
    reports = {ref.removeprefix(REPORTS) for ref in repo.refs(REPORTS)}
    waiting = _waiting(transport.of(outbox)) if outbox is not None else None
    names = sorted(branches | set(ledger.sites()) | reports)
    return [_site(repo, ledger, name, waiting) for name in names]


def _site(repo: Repo, ledger: Ledger, name: str, waiting: dict[str, int] | None) -> Site:
    history = releases.history(repo, publish.branch(name))
    record = ledger.last(name)
    packed = None
    unpacked = len(history)
    if record is not None:
        at = releases.of_commit(history, record.manifest.tip)
        packed = Packed(record.manifest.sequence, record.manifest.tip, record.time, at)
        if at is not None:
            unpacked = history.index(at)
    return Site(
        name,
        history[0] if history else None,
        packed,
        unpacked,
        None if waiting is None else waiting.get(name, 0),
        last_report(repo, name),
    )


def _waiting(outbox: Transport) -> dict[str, int]:
    """Envelopes waiting in the outbox, by site (``<site>-<sequence>``, as pack names them)."""
    if not outbox.reachable():
        raise GenError(f"outbox {outbox.describe()} cannot be read (not mounted? mistyped?)")
    counts: dict[str, int] = {}
    for name in outbox.waiting():
        match = _WAITING.match(name)
        if match and envelope.envelope_name(match[1], int(match[2])) == name:
            counts[match[1]] = counts.get(match[1], 0) + 1
    return counts


def last_report(repo: Repo, site: str) -> Reported | None:
    """The newest report imported for ``site``."""
    for entry in journal.entries(repo, f"{REPORTS}{site}"):
        raw = journal.read(repo, entry.commit, REPORT_FILE)
        return Reported(agent_report.parse(raw, f"{REPORTS}{site}"), entry.time)
    return None


@dataclass(frozen=True)
class Imported:
    """What importing a report did."""

    report: Report
    new: bool
    """False: the same report was imported before (nothing written)."""


def import_report(deploy_repo: Path, data: bytes, allowed_signers: Path, where: str) -> Imported:
    """Verify a report file against ``allowed_signers`` (namespace ``gen-agent-report``, the
    principal it names) and keep it as its site's newest; a GenError saying why otherwise.

    A report older than the one kept is refused (a stale or replayed file); the same one again
    is a no-op."""
    document, signature = agent_report.split(data, where)
    report = agent_report.parse(document, where)
    verdict = sign.verify(
        document, signature, allowed_signers, agent_report.NAMESPACE, report.signer
    )
    if not verdict.ok:
        raise GenError(f"{where}: refused, the signature is not trusted: {verdict.reason}")
    repo = open_repo(deploy_repo)
    ref = f"{REPORTS}{report.site}"
    head = repo.resolve(ref)
    kept = last_report(repo, report.site)
    if kept is not None:
        if kept.report.to_json() == document:
            return Imported(report, False)
        if kept.report.time >= report.time:
            raise GenError(
                f"{where}: refused: the report of {report.site} made "
                f"{agent_report.format_time(report.time)} is not newer than the one already "
                f"imported (made {agent_report.format_time(kept.report.time)})"
            )
    subject = f"report {report.site} {agent_report.format_time(report.time)}"
    message = f"{subject}\n\nsigner: {report.signer} ({verdict.fingerprint})\n"
    files = {REPORT_FILE: document, SIGNATURE_FILE: signature}
    commit = journal.write(repo, files, message, head)
    repo.update_refs([RefUpdate(ref, commit, head or ZERO)])
    return Imported(report, True)


def status_line(report: Report) -> str:
    """One line of what a site said: ``synced, release 4 (spring), last healthy 4, commit ...``."""
    s = report.status
    parts = [s.get("result", "unknown")]
    if "release" in s:
        name = f" ({s['releaseName']})" if s.get("releaseName") else ""
        parts.append(f"release {s['release']}{name}")
    if "lastHealthyRelease" in s:
        name = f" ({s['lastHealthyReleaseName']})" if s.get("lastHealthyReleaseName") else ""
        parts.append(f"last healthy {s['lastHealthyRelease']}{name}")
    if s.get("rollback"):
        parts.append(f"rollback: {s['rollback']}")
    if s.get("commit"):
        parts.append(f"commit {s['commit'][:12]}")
    if s.get("message"):
        parts.append(s["message"].splitlines()[0][:200])
    return ", ".join(parts)
