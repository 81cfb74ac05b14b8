"""Is an object healthy? kstatus-style rules as pure functions over the object the server returns.

Follows kubernetes-sigs/cli-utils ``pkg/kstatus/status/core.go``: an object whose controller has not
seen its latest generation (``status.observedGeneration < metadata.generation``) is in progress;
then per kind: Deployment and StatefulSet rollouts complete (respecting a StatefulSet partition),
DaemonSet scheduled and ready, PersistentVolumeClaim Bound, Job Complete (Failed is final), Service
of type LoadBalancer has an address, CustomResourceDefinition Established; other kinds by the
conventional ``Ready``/``Stalled``/``Reconciling`` conditions, and current when they have none.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

Obj = dict[str, Any]


class State(str, Enum):
    CURRENT = "Current"
    IN_PROGRESS = "InProgress"
    FAILED = "Failed"


@dataclass(frozen=True)
class Health:
    """An object's state and, unless it is current, why."""

    state: State
    message: str = ""

    @property
    def current(self) -> bool:
        return self.state is State.CURRENT


CURRENT = Health(State.CURRENT)


def assess(obj: Obj) -> Health:
    """The health of ``obj`` as the server returned it."""
    status = obj.get("status") or {}
    generation = (obj.get("metadata") or {}).get("generation")
    observed = status.get("observedGeneration")
    if generation is not None and observed is not None and observed < generation:
        return Health(
            State.IN_PROGRESS, f"generation {generation} not yet observed (at {observed})"
        )
    rule = _RULES.get(obj.get("kind", ""), _conditions)
    return rule(obj, status)


def _conditions(obj: Obj, status: dict[str, Any]) -> Health:
    conditions = _by_type(status)
    stalled = conditions.get("Stalled")
    if stalled and stalled.get("status") == "True":
        return Health(State.FAILED, stalled.get("message") or "stalled")
    reconciling = conditions.get("Reconciling")
    if reconciling and reconciling.get("status") == "True":
        return Health(State.IN_PROGRESS, reconciling.get("message") or "reconciling")
    ready = conditions.get("Ready")
    if ready and ready.get("status") == "False":
        return Health(State.IN_PROGRESS, ready.get("message") or "not ready")
    return CURRENT


def _deployment(obj: Obj, status: dict[str, Any]) -> Health:
    if "observedGeneration" not in status:
        return Health(State.IN_PROGRESS, "not yet observed by its controller")
    progressing = _by_type(status).get("Progressing") or {}
    if progressing.get("reason") == "ProgressDeadlineExceeded":
        return Health(State.FAILED, progressing.get("message") or "progress deadline exceeded")
    want = _int((obj.get("spec") or {}).get("replicas"), 1)
    updated, available = _int(status.get("updatedReplicas")), _int(status.get("availableReplicas"))
    total, ready = _int(status.get("replicas")), _int(status.get("readyReplicas"))
    if updated < want:
        return Health(State.IN_PROGRESS, f"updated replicas: {updated}/{want}")
    if total > updated:
        return Health(State.IN_PROGRESS, f"old replicas pending termination: {total - updated}")
    if available < want or ready < want:
        return Health(State.IN_PROGRESS, f"available replicas: {available}/{want}")
    return CURRENT


def _statefulset(obj: Obj, status: dict[str, Any]) -> Health:
    if "observedGeneration" not in status:
        return Health(State.IN_PROGRESS, "not yet observed by its controller")
    spec = obj.get("spec") or {}
    want = _int(spec.get("replicas"), 1)
    strategy = spec.get("updateStrategy") or {}
    if strategy.get("type", "RollingUpdate") != "RollingUpdate":
        return CURRENT
    ready, current = _int(status.get("readyReplicas")), _int(status.get("currentReplicas"))
    if ready < want:
        return Health(State.IN_PROGRESS, f"ready replicas: {ready}/{want}")
    partition = _int((strategy.get("rollingUpdate") or {}).get("partition"))
    if partition:
        updated = _int(status.get("updatedReplicas"))
        return (
            CURRENT
            if updated >= want - partition
            else Health(
                State.IN_PROGRESS, f"partitioned rollout: {updated}/{want - partition} updated"
            )
        )
    if status.get("updateRevision") != status.get("currentRevision"):
        return Health(
            State.IN_PROGRESS,
            f"rolling update: {current}/{want} pods at revision {status.get('updateRevision')}",
        )
    return CURRENT


def _daemonset(obj: Obj, status: dict[str, Any]) -> Health:
    if "observedGeneration" not in status:
        return Health(State.IN_PROGRESS, "not yet observed by its controller")
    desired = _int(status.get("desiredNumberScheduled"))
    for key in ("updatedNumberScheduled", "numberAvailable", "numberReady"):
        if _int(status.get(key)) < desired:
            return Health(State.IN_PROGRESS, f"{key}: {_int(status.get(key))}/{desired}")
    return CURRENT


def _pvc(obj: Obj, status: dict[str, Any]) -> Health:
    phase = status.get("phase", "Pending")
    return CURRENT if phase == "Bound" else Health(State.IN_PROGRESS, f"phase {phase}, not Bound")


def _job(obj: Obj, status: dict[str, Any]) -> Health:
    conditions = _by_type(status)
    for name, state in (("Failed", State.FAILED), ("Complete", State.CURRENT)):
        cond = conditions.get(name)
        if cond and cond.get("status") == "True":
            return Health(state, cond.get("message") or "") if state is State.FAILED else CURRENT
    return Health(
        State.IN_PROGRESS,
        f"active: {_int(status.get('active'))}, succeeded: {_int(status.get('succeeded'))}",
    )


def _service(obj: Obj, status: dict[str, Any]) -> Health:
    if (obj.get("spec") or {}).get("type") != "LoadBalancer":
        return CURRENT
    ingress = (status.get("loadBalancer") or {}).get("ingress")
    return CURRENT if ingress else Health(State.IN_PROGRESS, "no load balancer address yet")


def _crd(obj: Obj, status: dict[str, Any]) -> Health:
    established = _by_type(status).get("Established") or {}
    return (
        CURRENT
        if established.get("status") == "True"
        else Health(State.IN_PROGRESS, "not established yet")
    )


def _namespace(obj: Obj, status: dict[str, Any]) -> Health:
    phase = status.get("phase", "Active")
    return CURRENT if phase == "Active" else Health(State.IN_PROGRESS, f"phase {phase}")


def _by_type(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c.get("type", ""): c for c in status.get("conditions") or [] if isinstance(c, dict)}


def _int(value: Any, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


_RULES: dict[str, Callable[[Obj, dict[str, Any]], Health]] = {
    "Deployment": _deployment,
    "StatefulSet": _statefulset,
    "DaemonSet": _daemonset,
    "PersistentVolumeClaim": _pvc,
    "Job": _job,
    "Service": _service,
    "CustomResourceDefinition": _crd,
    "Namespace": _namespace,
}
