"""Server-side apply of the desired objects, writing only what differs.

``observe`` reads what is live with one LIST per kind and namespace (by the ApplySet label), plus
one GET per cluster-scoped object (its RBAC names them one by one). ``apply`` then takes each object
of a phase, concurrently:

    not live (or lost our label)    -> apply
    live, unchanged since it last held this very commit -> nothing (``Held``, no comparison)
    live, ``drift.covers`` holds and
      we own no field the branch lost -> nothing (no request at all)
    live, looks different            -> server dry-run; apply only if the result differs from live
                                        (content, or the fields we own)

A field removed from the branch is found in the live copy's ``managedFields`` (``owned``): server
side apply removes the fields our manager owned and no longer applies, so the branch stays the
truth, while a field another manager also owns is left alone by the server.

A change the server refuses as immutable is reported with what to do (``immutable``), or, for a
StatefulSet whose template opted in, done by the safe procedure (``recreate``).

Every apply uses field manager ``gen-agent`` and forces conflicts (the branch is the truth). One
object's failure is recorded against it and the rest go on, except when the API server itself is
gone: after ``DOWN_AFTER`` objects in a row failed with no usable answer (each request already
retried with backoff), the objects not yet tried are skipped and ``Report.down`` says why, so an
unreachable server ends the round in seconds instead of one retry cycle per object. Between
phases the agent waits for the CRDs it applied to be established and forgets its discovery cache,
so their objects resolve.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from generator.core.objects import ObjectId, identity
from generator.run.agent import drift, health, immutable, owned, plan, recreate
from generator.run.agent.kube import Forbidden, Invalid, Kube, KubeError, Unavailable
from generator.run.agent.settings import FIELD_MANAGER

Obj = dict[str, Any]
CRD_TIMEOUT = 60.0
DOWN_AFTER = 3
"""Objects in a row whose apply found the API server unavailable before the round gives up."""
FORBIDDEN_HINT = (
    "the agent's RBAC does not allow it: a new namespace or kind needs an administrator to apply "
    "the agent's compiled Role/ClusterRole once, see docs/agent.md"
)


class Verdict(str, Enum):
    APPLIED = "applied"
    UNCHANGED = "unchanged"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass
class Report:
    """What applying did, per object."""

    applied: list[ObjectId] = field(default_factory=list)
    unchanged: list[ObjectId] = field(default_factory=list)
    errors: dict[ObjectId, str] = field(default_factory=dict)
    live: dict[ObjectId, Obj] = field(default_factory=dict)
    """The server's copy of each object after this reconcile (for health)."""
    dry_runs: int = 0
    down: str = ""
    """Why the round stopped early because the API server is unavailable ("" when it did not)."""
    skipped: int = 0
    """Objects not attempted because the API server was unavailable."""
    held: dict[ObjectId, str] = field(default_factory=dict)
    """resourceVersion of each object that now holds what was applied (see ``Held``)."""
    steps: list[str] = field(default_factory=list)
    """What the recreate policy did, or left to an operator (``recreate``)."""


Held = dict[ObjectId, str]
"""Objects known to hold the desired copy of one commit, by their live resourceVersion: while the
commit and the resourceVersion stay the same, the object is unchanged and needs no comparison."""


class Breaker:
    """Counts objects in a row that met an unavailable API server (thread-safe); once
    ``DOWN_AFTER`` did, it is open and the first of those errors is why."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._streak: list[str] = []
        self.why = ""

    def record(self, error: KubeError | None) -> None:
        """One object's outcome: None when the server answered (whatever it said)."""
        with self._lock:
            if not isinstance(error, Unavailable):
                self._streak = []
                return
            self._streak.append(str(error))
            if len(self._streak) >= DOWN_AFTER and not self.why:
                self.why = (
                    f"the API server is unavailable ({DOWN_AFTER} objects in a row failed after "
                    f"retries): {self._streak[0]}"
                )

    @property
    def open(self) -> bool:
        return bool(self.why)


def observe(
    kube: Kube, objects: Iterable[Obj], set_id: str, pool: ThreadPoolExecutor
) -> dict[ObjectId, Obj]:
    """The live copies of the desired objects that carry our label
    (absent ones are simply missing)."""
    groups: dict[tuple[str, str, str], list[Obj]] = {}
    for obj in objects:
        groups.setdefault(
            (obj["apiVersion"], obj["kind"], obj["metadata"].get("namespace", "") or ""), []
        ).append(obj)
    tasks = [(key, objs) for key, objs in sorted(groups.items())]
    live: dict[ObjectId, Obj] = {}
    for found in pool.map(lambda t: _observe_group(kube, t[0], t[1], set_id), tasks):
        live.update(found)
    return live


def _observe_group(
    kube: Kube, key: tuple[str, str, str], objs: list[Obj], set_id: str
) -> dict[ObjectId, Obj]:
    api_version, kind, namespace = key
    try:
        res = kube.resource(api_version, kind)
        if res.namespaced:
            items = kube.list(res, namespace, f"{plan.PART_OF}={set_id}")
        else:
            items = [
                o
                for o in (kube.get(res, "", obj["metadata"]["name"]) for obj in objs)
                if o is not None
            ]
    except KubeError:
        return {}  # unknown yet (a CRD in this very commit) or unreadable: apply will say why
    wanted = {identity(o) for o in objs}
    return {oid: item for item in items if (oid := identity(item)) in wanted}


def apply(
    kube: Kube,
    phases: list[list[Obj]],
    live: dict[ObjectId, Obj],
    set_id: str,
    pool: ThreadPoolExecutor,
    sleep: Callable[[float], None] = time.sleep,
    held: Held | None = None,
) -> Report:
    """Apply every phase in order (see the module docstring); ``held``: what held the same commit
    last time. Never raises for one object's failure."""
    report, breaker, known = Report(), Breaker(), held or {}
    for number, objs in enumerate(phases):
        todo = []
        for obj in objs:  # the common case, nothing to do, stays off the thread pool
            oid, current = identity(obj), live.get(identity(obj))
            if current is not None and (
                _version(current) == known.get(oid) or holds(current, plan.member(obj, set_id))
            ):
                _record(report, oid, Verdict.UNCHANGED, current, False)
            else:
                todo.append(obj)
        for oid, verdict, detail, dry in pool.map(
            lambda o: _guarded(kube, o, live.get(identity(o)), set_id, breaker), todo
        ):
            if verdict is Verdict.SKIPPED:
                report.skipped += 1
            else:
                _record(report, oid, verdict, detail, dry)
        if breaker.open:
            report.down = breaker.why
            return report
        crds = [
            o
            for o in objs
            if o["kind"] == "CustomResourceDefinition" and identity(o) not in report.errors
        ]
        if crds and number + 1 < len(phases):
            _wait_established(kube, crds, report, sleep)
            kube.forget()
    return report


def _record(
    report: Report, oid: ObjectId, verdict: Verdict, detail: Obj | str | recreate.Done, dry: bool
) -> None:
    report.dry_runs += dry
    if isinstance(detail, recreate.Done):
        report.steps.extend(detail.steps)
        detail = detail.live
    if verdict is Verdict.FAILED:
        report.errors[oid] = str(detail)
        return
    (report.applied if verdict is Verdict.APPLIED else report.unchanged).append(oid)
    if isinstance(detail, dict):
        report.live[oid] = detail
        if _version(detail):
            report.held[oid] = _version(detail)


def _version(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


def _guarded(
    kube: Kube, obj: Obj, current: Obj | None, set_id: str, breaker: Breaker
) -> tuple[ObjectId, Verdict, Obj | str | recreate.Done, bool]:
    """``_one`` unless the API server is known to be gone (then SKIPPED, no request)."""
    if breaker.open:
        return identity(obj), Verdict.SKIPPED, "", False
    oid, verdict, detail, dry = _one(kube, obj, current, set_id)
    breaker.record(detail if isinstance(detail, KubeError) else None)
    return oid, verdict, str(detail) if isinstance(detail, KubeError) else detail, dry


def _one(
    kube: Kube, obj: Obj, current: Obj | None, set_id: str
) -> tuple[ObjectId, Verdict, Obj | str | KubeError | recreate.Done, bool]:
    """Apply one object if it differs; (id, verdict, the server's copy or the error,
    whether it was dry-run)."""
    oid = identity(obj)
    want = plan.member(obj, set_id)
    if current is not None and holds(current, want):
        return oid, Verdict.UNCHANGED, current, False
    try:
        res = kube.resource(obj["apiVersion"], obj["kind"])
        if current is not None:
            dry = kube.apply(res, want, FIELD_MANAGER, dry_run=True)
            if drift.same_object(dry, current) and _same_ownership(dry, current):
                return oid, Verdict.UNCHANGED, current, True
        return oid, Verdict.APPLIED, kube.apply(res, want, FIELD_MANAGER), current is not None
    except Forbidden as e:
        return oid, Verdict.FAILED, f"{e} ({FORBIDDEN_HINT})", False
    except Invalid as e:
        return _refused(kube, obj, want, current, e)
    except KubeError as e:
        return oid, Verdict.FAILED, e, False


def _refused(
    kube: Kube, obj: Obj, want: Obj, current: Obj | None, error: Invalid
) -> tuple[ObjectId, Verdict, str | KubeError | recreate.Done, bool]:
    """An object the server refused: re-created when the change is immutable, it is a StatefulSet
    and its template opted in (``recreate``); otherwise reported with what to do."""
    oid, meta = identity(obj), obj["metadata"]
    hint = immutable.explain(error, obj["kind"], meta.get("namespace", ""), meta["name"])
    if not hint or current is None or not recreate.opted_in(obj):
        return oid, Verdict.FAILED, hint or str(error), False
    if obj["kind"] != "StatefulSet":
        return oid, Verdict.FAILED, f"{hint} (the recreate policy covers StatefulSets only)", False
    try:
        res = kube.resource(obj["apiVersion"], obj["kind"])
        return oid, Verdict.APPLIED, recreate.statefulset(kube, res, want, current), True
    except KubeError as e:
        return oid, Verdict.FAILED, f"recreating after an immutable change failed: {e}", False


def holds(current: Obj, want: Obj) -> bool:
    """Whether the live copy already is what applying ``want`` would make it: it holds every
    desired value, and our manager owns no field that ``want`` no longer has."""
    return drift.covers(current, want) and not owned.removed(current, want, FIELD_MANAGER)


def _same_ownership(a: Obj, b: Obj) -> bool:
    # A removed field that another manager also owns stays, but we must give up our claim on it
    # (one write), or it would look removed, and cost a dry-run, on every reconcile.
    return owned.fields_of(a, FIELD_MANAGER) == owned.fields_of(b, FIELD_MANAGER)


def _wait_established(
    kube: Kube, crds: list[Obj], report: Report, sleep: Callable[[float], None]
) -> None:
    """Wait (bounded) for applied CRDs to be established;
    a CRD that is not gets an error of its own."""
    deadline = time.monotonic() + CRD_TIMEOUT
    pending = {identity(c): c for c in crds}
    while pending:
        for oid, crd in list(pending.items()):
            got = _get(kube, crd)
            if got is not None and health.assess(got).current:
                report.live[oid] = got
                del pending[oid]
        if not pending or time.monotonic() > deadline:
            break
        sleep(0.5)
    for oid in pending:
        report.errors[oid] = f"not established after {CRD_TIMEOUT:.0f}s"


def _get(kube: Kube, obj: Obj) -> Obj | None:
    try:
        return kube.get(kube.resource(obj["apiVersion"], obj["kind"]), "", obj["metadata"]["name"])
    except KubeError:
        return None
