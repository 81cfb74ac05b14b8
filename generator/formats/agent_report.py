"""The status report a person carries back out of a site by hand: ``gen agent report`` writes it,
``gen fleet --import-report`` reads it. Nothing comes back through the one-way gatekeeper on its
own, so this small file is how the outside learns which release a site runs.

One file, JSON then the armored SSH signature of exactly the JSON bytes (namespace
``gen-agent-report``, so neither a commit nor an envelope signature can stand in for it)::

    {
     "format": "gen-agent-report/v1",
     "site": "cn-east-1",
     "signer": "agent@cn-east-1",
     "time": "2026-03-01T12:00:00Z",
     "status": {"result": "synced", "release": "4", ...}
    }
    -----BEGIN SSH SIGNATURE-----
    ...
    -----END SSH SIGNATURE-----

``status`` holds the agent's status ConfigMap keys listed in ``STATUS_KEYS`` that are present
(the release keys appear once the agent reports releases; their absence is fine).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from generator.core.errors import GenError
from generator.core.untrusted import escape

FORMAT = "gen-agent-report/v1"
NAMESPACE = "gen-agent-report"
"""SSHSIG namespace of report signatures."""
BEGIN = b"-----BEGIN SSH SIGNATURE-----"
MAX_SIZE = 256 * 1024
"""Larger files are refused unread."""
MAX_VALUE = 4000
"""Longer status values are cut (the per-object lists can be long)."""
STATUS_KEYS = (
    "result",
    "reasons",
    "message",
    "release",
    "releaseName",
    "lastHealthyRelease",
    "lastHealthyReleaseName",
    "lastHealthyCommit",
    "rollback",
    "commit",
    "lastAppliedCommit",
    "branch",
    "source",
    "objects",
    "lastSyncTime",
    "lastTransitionTime",
    "errors",
    "unhealthy",
    "retained",
    "unrecorded",
)
"""The status ConfigMap keys a report carries, in this order, when present."""

_SITE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_-]|\.(?!\.)){0,62}$")
_TIME = "%Y-%m-%dT%H:%M:%SZ"


class ReportError(GenError):
    """A report that is not one, not signed, or not well formed; the message says which."""


@dataclass(frozen=True)
class Report:
    """What a site's agent said about itself, and who signed it."""

    site: str
    signer: str
    """The principal of the signing key in the outside's allowed signers file."""
    time: datetime
    status: dict[str, str]

    def to_json(self) -> bytes:
        """The document that is signed: JSON, one-space indent, fixed key order, newline."""
        status = {k: self.status[k] for k in STATUS_KEYS if k in self.status}
        body = {
            "format": FORMAT,
            "site": self.site,
            "signer": self.signer,
            "time": format_time(self.time),
            "status": status,
        }
        return (json.dumps(body, indent=1, ensure_ascii=False) + "\n").encode()


def make(site: str, signer: str, time: datetime, data: dict[str, str]) -> Report:
    """A report of the status ConfigMap ``data`` (keys beyond ``STATUS_KEYS`` are left out,
    long values cut)."""
    if not _SITE.match(site):
        raise ReportError(f"{site!r} is not a valid site name")
    if not signer or any(c.isspace() for c in signer):
        raise ReportError(f"signer {signer!r}: a principal without spaces is needed")
    if not for_site(signer, site):
        raise ReportError(
            f"signer {signer!r}: a report of site {site} is signed as <name>@{site} "
            f"(default gen-agent@{site}), so that one site's key cannot speak for another"
        )
    status = {k: _cut(str(data[k])) for k in STATUS_KEYS if k in data and data[k] not in (None, "")}
    return Report(site, signer, time.astimezone(UTC).replace(microsecond=0), status)


def seal(report: Report, signature: bytes) -> bytes:
    """The report file: the document, then its signature."""
    return report.to_json() + signature


def split(data: bytes, where: str) -> tuple[bytes, bytes]:
    """(document, signature) of a report file; ReportError if it is too big or not signed."""
    if len(data) > MAX_SIZE:
        raise ReportError(
            f"{where}: {len(data)} bytes is too big for a report (at most {MAX_SIZE})"
        )
    at = data.find(BEGIN)
    if at < 0:
        raise ReportError(
            f"{where}: not signed (no SSH signature after the report): only a report written "
            "by `gen agent report` with the site's key is accepted"
        )
    return data[:at], data[at:]


def parse(document: bytes, where: str) -> Report:
    """The report in ``document``; ReportError saying what is wrong."""
    try:
        body = json.loads(document)
    except (ValueError, UnicodeDecodeError) as e:
        raise ReportError(f"{where}: not a gen agent report (not JSON: {e})") from None
    if not isinstance(body, dict) or body.get("format") != FORMAT:
        found = body.get("format") if isinstance(body, dict) else None
        raise ReportError(
            f"{where}: not a gen agent report of format {FORMAT} "
            f"(format {escape(str(found))}; written by a newer gen?)"
        )
    site, signer, time, status = (body.get(k) for k in ("site", "signer", "time", "status"))
    if not isinstance(site, str) or not _SITE.match(site):
        raise ReportError(f"{where}: site {escape(str(site))} is not a valid site name")
    if not isinstance(signer, str) or not signer:
        raise ReportError(f"{where}: signer must be a principal")
    if not for_site(signer, site):
        raise ReportError(
            f"{where}: refused: the report of site {site} is signed as {escape(signer)}; a "
            f"site's report is signed as <name>@{site}, so that one site's key cannot speak for "
            "another"
        )
    if not isinstance(status, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in status.items()
    ):
        raise ReportError(f"{where}: status must map names to strings")
    try:
        when = datetime.strptime(str(time), _TIME).replace(tzinfo=UTC)
    except ValueError:
        raise ReportError(
            f"{where}: time {escape(str(time))} is not YYYY-MM-DDTHH:MM:SSZ"
        ) from None
    report = Report(site, signer, when, {k: v for k, v in status.items() if k in STATUS_KEYS})
    if report.to_json() != document:
        raise ReportError(f"{where}: the report is not in canonical form (edited after signing?)")
    return report


def for_site(signer: str, site: str) -> bool:
    """Whether principal ``signer`` may sign reports of ``site``: ``<name>@<site>``. The outside's
    allowed signers file trusts each site's key for its own principal, so a key taken from one
    site cannot sign another site's report."""
    name, at, bound = signer.rpartition("@")
    return bool(name and at and bound == site)


def format_time(when: datetime) -> str:
    return when.astimezone(UTC).strftime(_TIME)


def _cut(value: str) -> str:
    return value if len(value) <= MAX_VALUE else value[: MAX_VALUE - 3] + "..."
