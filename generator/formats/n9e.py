"""Shared vocabulary of the n9e package: compiled rules and ownership marks.

Pure standard library: the compiler side (``rules``, ``files``) and the apply side (``client``,
``reconcile``, used by the in-cluster agent) both import it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, TypedDict

from generator.core import units

SEVERITIES: dict[str, int] = {"critical": 1, "warning": 2, "info": 3}
"""Inventory severity -> n9e severity (1 Emergency, 2 Warning, 3 Notice)."""

LEVELS = ("system", "service", "external", "business")
"""Values of the ``level=`` tag, in the order rules are listed."""

MANAGED_TAG = "managed-by=gen"
"""append_tags mark of every alert rule gen owns; rules without it are never touched."""
IDENTITY_ANNOTATION = "gen_rule"
"""Annotation holding a rule's identity (``level/subject/id``): matches a rule across renames."""
MANAGED_NOTE = (
    "Managed by gen (monitoring as code) for site {site}: edit the inventory, not the UI."
)
"""Description of the notification objects gen owns (channels, templates, notify rules)."""


@dataclass(frozen=True)
class Rule:
    """One alert rule as declared or built in, before it is shaped into n9e or Prometheus form."""

    identity: str
    """``level/subject/id``, e.g. ``service/gatekeeper/restart-loop``: stable across renames."""
    name: str
    level: str
    expr: str
    severity: str
    for_seconds: int
    summary: str
    description: str = ""
    runbook: str = ""
    service: str = ""
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Channel:
    """A notification channel of the site (an HTTP SMS gateway or a webhook)."""

    key: str
    type: str
    url: str
    method: str
    headers: dict[str, str]
    timeout_ms: int
    retries: int
    phones: tuple[str, ...]
    body: str
    message: str
    severities: tuple[int, ...]
    """Severities routed to this channel by the site's receivers; empty when none."""


class DatasourceQuery(TypedDict):
    """n9e ``datasource_queries`` item; match_type 1 matches datasource names by pattern."""

    match_type: int
    op: str
    values: list[Any]


def parse_duration(text: str, field: str) -> int:
    """Whole seconds of ``30s``, ``5m``, ``1h30m``, ``0s`` (``core.units``: a unit is required)."""
    return units.whole_seconds(text, field)


def format_duration(seconds: int) -> str:
    """The Prometheus spelling of ``seconds``: ``5m``, ``1h30m``, ``0s``."""
    return units.format_duration(seconds)


def stable_uuid(site: str, identity: str) -> int:
    """A positive id derived from the rule's identity, below 2**53 so the web UI's JavaScript keeps
    it."""
    digest = hashlib.sha256(f"{site}/{identity}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % (2**53 - 1) + 1


def owned_tags(site: str) -> tuple[str, str]:
    """The append_tags that mark a rule as gen's for ``site``."""
    return (MANAGED_TAG, f"site={site}")


def managed_note(site: str) -> str:
    """The description gen writes on (and recognises its) notification objects by."""
    return MANAGED_NOTE.format(site=site)
