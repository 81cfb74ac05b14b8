"""What a reconcile did, told three ways: a status ConfigMap, Kubernetes Events, Prometheus metrics.

The status ConfigMap ``<name>-status`` in the agent's namespace holds the last result, the commit,
the per-object errors and what was retained or is unhealthy (``kubectl -n gen-agent get cm
gen-agent-status -o yaml``). It is written only when its content changes, so a reconcile with
nothing to do writes nothing at all; freshness is in the metrics (``last_success_timestamp``).
Events go with it: Normal ones whenever objects were written or deleted, Warning ones when the
status changes to a problem (not every interval while it lasts).

A status that cannot be written (the API server is gone) is not lost: its summary line is kept in
``<state>/unrecorded-status`` and written into the status ConfigMap (key ``unrecorded``) by the next
reconcile that can write it; the result itself says so (``status_error``, in JSON too).
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from generator.core.objects import ObjectId
from generator.run.agent import releases
from generator.run.agent.kube import Kube, KubeError
from generator.run.agent.metrics import Metrics
from generator.run.agent.releases import HOLD_KEY, Hold, Running
from generator.run.agent.settings import FIELD_MANAGER, Settings

SYNCED, DEGRADED, FAILED, REFUSED = "synced", "degraded", "failed", "refused"
MAX_LISTED = 50
"""Per-object lines kept in the status ConfigMap (the rest are counted)."""
MAX_EVENTS = 10
"""Warning events per reconcile about single objects (the rest are in the status)."""
INCOMPLETE = frozenset({"api", "apply", "prune", "prune-guard"})
"""Reasons that leave the cluster short of the commit (it is attempted, not applied); ``rollback``
is not one: the cluster holds the commit it returned to."""
UNRECORDED = "unrecorded-status"
"""File in the state directory: summaries of results whose status could not be written."""


@dataclass(frozen=True)
class Result:
    """The outcome of one reconcile."""

    result: str
    """synced, degraded (applied, but something is wrong), failed (nothing applied) or refused."""
    commit: str = ""
    reasons: tuple[str, ...] = ()
    """Failure reasons (metric labels), empty when synced."""
    message: str = ""
    applied: tuple[ObjectId, ...] = ()
    unchanged: int = 0
    pruned: tuple[ObjectId, ...] = ()
    members: int = 0
    errors: tuple[tuple[str, str], ...] = ()
    """(object or step, what went wrong)."""
    retained: tuple[tuple[str, str], ...] = ()
    unhealthy: tuple[tuple[str, str], ...] = ()
    notes: tuple[str, ...] = ()
    dry_runs: int = 0
    duration: float = 0.0
    status_error: str = ""
    """Why the status ConfigMap could not be written ("" when it was)."""
    steps: tuple[str, ...] = ()
    """What the recreate policy did to get past an immutable change, or left to an operator."""
    release: Running | None = None
    """The release of ``commit`` (None when no commit was read)."""
    last_healthy: Running | None = None
    """The last release that became healthy (applied completely, every object healthy)."""
    hold: Hold | None = None
    """The automatic rollback in effect, if any."""
    rolled_back: bool = False
    """This reconcile started an automatic rollback (``gen_agent_rollbacks_total`` counts it
    when it decides)."""

    @property
    def ok(self) -> bool:
        return self.result == SYNCED

    @property
    def rollback(self) -> str:
        """While an automatic rollback is in effect, the sentence that says so ("" otherwise)."""
        return self.hold.sentence if self.hold else ""

    @property
    def complete(self) -> bool:
        """Whether every object of ``commit`` was applied and every object that left it pruned
        (health and n9e aside): the cluster holds the commit."""
        return (
            bool(self.commit)
            and self.result in (SYNCED, DEGRADED)
            and not INCOMPLETE.intersection(self.reasons)
        )

    def summary(self) -> str:
        """One line for logs and the CLI."""
        parts = [
            f"{self.result}",
            f"commit {self.commit[:12] or '-'}"
            + (f" ({self.release.label})" if self.release else ""),
            f"{len(self.applied)} applied",
            f"{self.unchanged} unchanged",
            f"{len(self.pruned)} pruned",
        ]
        if self.errors:
            parts.append(f"{len(self.errors)} error(s)")
        if self.unhealthy:
            parts.append(f"{len(self.unhealthy)} unhealthy")
        if self.retained:
            parts.append(f"{len(self.retained)} retained")
        text = ", ".join(parts) + f" in {self.duration:.2f}s"
        return f"{text}: {self.message}" if self.message else text


def record(
    kube: Kube, settings: Settings, result: Result, metrics: Metrics, now: float
) -> list[str]:
    """Metrics, status ConfigMap and Events for ``result``; problems recording are returned, not
    raised. A status that cannot be written is kept in the state directory for the next one."""
    _metrics(metrics, settings, result, now)
    pending = settings.state_dir / UNRECORDED
    missed = pending.read_text() if pending.is_file() else ""
    try:
        changed, uid, previous = _write_status(kube, settings, result, now, missed)
    except KubeError as e:
        metrics.failures.labels("status").inc()
        _keep(pending, missed, f"{_time(now)} {result.summary()}")
        return [f"cannot record status: {e}"]
    pending.unlink(missing_ok=True)
    try:
        _events(kube, settings, result, changed, uid, previous)
    except KubeError as e:
        metrics.failures.labels("status").inc()
        return [f"cannot record events: {e}"]
    return []


def _keep(pending: Path, missed: str, line: str) -> None:
    """Add ``line`` to the unrecorded summaries (the last ``MAX_LISTED``), replaced atomically."""
    lines = [*missed.splitlines(), line.replace("\n", " ")][-MAX_LISTED:]
    pending.parent.mkdir(parents=True, exist_ok=True)
    part = pending.with_name(pending.name + ".part")
    part.write_text("".join(f"{x}\n" for x in lines))
    os.replace(part, pending)


def _metrics(metrics: Metrics, settings: Settings, result: Result, now: float) -> None:
    metrics.duration.labels(result.result).observe(result.duration)
    metrics.reconciles.labels(result.result).inc()
    metrics.last_reconcile.set(now)
    metrics.sync_ok.set(1 if result.ok else 0)
    if result.ok:
        metrics.last_success.set(now)
    if result.commit and result.result != REFUSED:
        metrics.set_attempted(result.commit, settings.ref)
    if result.complete:
        metrics.set_commit(result.commit, settings.ref)
    if result.members:
        metrics.objects.set(result.members)
    metrics.applied.inc(len(result.applied))
    metrics.pruned.inc(len(result.pruned))
    for reason in result.reasons:
        metrics.failures.labels(reason).inc()
    if "signature" in result.reasons:
        metrics.refusals.inc()
    if result.complete and result.release is not None:
        metrics.release.set(result.release.number)
    if result.last_healthy is not None:
        metrics.last_healthy.set(result.last_healthy.number)
    metrics.rollback_active.set(1 if result.rollback else 0)


def status_data(settings: Settings, result: Result, previous: dict[str, str]) -> dict[str, str]:
    """The status ConfigMap's data for ``result`` (without timestamps; pure)."""
    applied = previous.get("lastAppliedCommit", "")
    if result.complete:
        applied = result.commit
    running = {k: previous.get(k, "") for k in ("release", "releaseName")}
    if result.complete and result.release is not None:
        running = {"release": str(result.release.number), "releaseName": result.release.name}
    healthy = {
        k: previous.get(k, "")
        for k in ("lastHealthyRelease", "lastHealthyReleaseName", "lastHealthyCommit")
    }
    if result.last_healthy is not None:
        healthy = {
            "lastHealthyRelease": str(result.last_healthy.number),
            "lastHealthyReleaseName": result.last_healthy.name,
            "lastHealthyCommit": result.last_healthy.commit,
        }
    return {
        "site": settings.site,
        "branch": settings.ref,
        "source": settings.source.describe(),
        "result": result.result,
        "reasons": ",".join(result.reasons),
        "message": result.message,
        "commit": result.commit or previous.get("commit", ""),
        "lastAppliedCommit": applied,
        "objects": str(result.members or previous.get("objects", "0")),
        "errors": _lines(result.errors),
        "retained": _lines(result.retained),
        "unhealthy": _lines(result.unhealthy),
        **running,
        **healthy,
        "rollback": result.rollback,
        HOLD_KEY: releases.hold_text(result.hold),
    }


def _lines(items: tuple[tuple[str, str], ...]) -> str:
    listed = [f"{what}: {why}" for what, why in items[:MAX_LISTED]]
    if len(items) > MAX_LISTED:
        listed.append(f"... and {len(items) - MAX_LISTED} more")
    return "".join(f"{line}\n" for line in listed)


def _write_status(
    kube: Kube, settings: Settings, result: Result, now: float, missed: str
) -> tuple[bool, str, dict[str, str]]:
    """Write the status if it changed: whether it did, the ConfigMap's uid, the previous data."""
    res = kube.resource("v1", "ConfigMap")
    current = kube.get(res, settings.namespace, settings.status_name)
    previous = (current or {}).get("data") or {}
    data = status_data(settings, result, previous)
    if missed:  # stays until the status next changes, so whoever looks after the outage sees it
        data["unrecorded"] = missed
    if current is not None and all(previous.get(k) == v for k, v in data.items()):
        return False, current["metadata"]["uid"], previous
    data["lastTransitionTime"] = _time(now)
    if result.ok:
        data["lastSyncTime"] = _time(now)
    elif "lastSyncTime" in previous:
        data["lastSyncTime"] = previous["lastSyncTime"]
    body = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": settings.status_name,
            "namespace": settings.namespace,
            "labels": {"app.kubernetes.io/managed-by": "gen-agent"},
        },
        "data": data,
    }
    written = kube.apply(res, body, FIELD_MANAGER)
    return True, written["metadata"]["uid"], previous


def _events(
    kube: Kube,
    settings: Settings,
    result: Result,
    changed: bool,
    uid: str,
    previous: dict[str, str],
) -> None:
    events: list[tuple[str, str, str]] = []
    if (
        result.complete
        and result.release is not None
        and not result.rollback
        and (
            previous.get("release") != str(result.release.number)
            or previous.get("lastAppliedCommit") != result.commit
        )
    ):
        events.append(
            (
                "Normal",
                "ReleaseApplied",
                f"{result.release.label} applied: commit {result.commit[:12]}",
            )
        )
    if result.applied:
        events.append(
            (
                "Normal",
                "Applied",
                f"applied {len(result.applied)} object(s) of {result.commit[:12]}: "
                f"{_names(result.applied)}",
            )
        )
    events += [("Normal", "Recreated", step) for step in result.steps[:MAX_EVENTS]]
    if result.pruned:
        events.append(
            ("Normal", "Pruned", f"deleted {len(result.pruned)} object(s): {_names(result.pruned)}")
        )
    if changed and not result.ok:
        events.append(("Warning", _reason(result), result.message or result.result))
        events += [
            ("Warning", "ObjectFailed", f"{what}: {why}")
            for what, why in result.errors[:MAX_EVENTS]
        ]
    if changed and result.ok:
        events.append(("Normal", "Synced", f"cluster matches {result.commit[:12]}"))
    res = kube.resource("v1", "Event")
    for kind, reason, message in events:
        kube.create(res, settings.namespace, _event(settings, uid, kind, reason, message))


def _reason(result: Result) -> str:
    names = {
        "rollback": "RolledBack",
        "signature": "SignatureRefused",
        "source": "SourceFailed",
        "manifests": "ManifestsInvalid",
        "prune-guard": "PruneRefused",
        "health": "Unhealthy",
        "apply": "ApplyFailed",
        "prune": "PruneFailed",
        "n9e": "N9eSyncFailed",
    }
    return next((names[r] for r in result.reasons if r in names), "ReconcileFailed")


def _names(ids: tuple[ObjectId, ...]) -> str:
    shown = ", ".join(str(i) for i in ids[:10])
    return shown + (f" and {len(ids) - 10} more" if len(ids) > 10 else "")


def _event(settings: Settings, uid: str, kind: str, reason: str, message: str) -> dict[str, Any]:
    stamp = _time(datetime.now(UTC).timestamp())
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{settings.name}-", "namespace": settings.namespace},
        "involvedObject": {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "name": settings.status_name,
            "namespace": settings.namespace,
            "uid": uid,
        },
        "type": kind,
        "reason": reason,
        "message": message[:1000],
        "count": 1,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "source": {"component": FIELD_MANAGER, "host": socket.gethostname()},
        "reportingComponent": FIELD_MANAGER,
        "reportingInstance": socket.gethostname(),
    }


def _time(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def as_json(result: Result) -> str:
    """The result as JSON (``gen agent run --once --format json``)."""
    return json.dumps(
        {
            "result": result.result,
            "commit": result.commit,
            "reasons": list(result.reasons),
            "message": result.message,
            "applied": [str(i) for i in result.applied],
            "unchanged": result.unchanged,
            "pruned": [str(i) for i in result.pruned],
            "members": result.members,
            "errors": [list(e) for e in result.errors],
            "retained": [list(r) for r in result.retained],
            "unhealthy": [list(u) for u in result.unhealthy],
            "notes": list(result.notes),
            "steps": list(result.steps),
            "duration": round(result.duration, 3),
            "complete": result.complete,
            "status_error": result.status_error,
            "release": result.release.as_dict() if result.release else None,
            "last_healthy_release": result.last_healthy.as_dict() if result.last_healthy else None,
            "rollback": result.rollback,
            "rolled_back": result.rolled_back,
        },
        indent=2,
    )
