"""A change the API server refuses because the field cannot change in place: which field, and what
an operator does about it (pure).

The server says so in the 422's ``details.causes``: "field is immutable", "may not change once
set", or, for a StatefulSet, "updates to statefulset spec for fields other than ... are
forbidden". Unless the object opted in to the recreate policy (``recreate``), the agent never
deletes it to get past this (that can lose data); it reports the object, the field and the safe
procedure.
"""

from __future__ import annotations

from generator.run.agent.kube import Invalid

_MARKS = ("immutable", "may not change", "updates to statefulset spec for fields other than")

STATEFULSET = (
    "a StatefulSet's spec beyond replicas, template, updateStrategy, ordinals, minReadySeconds "
    "and persistentVolumeClaimRetentionPolicy cannot change in place: delete it keeping its pods "
    "and volumes (kubectl -n {namespace} delete statefulset {name} --cascade=orphan) and the agent "
    "re-creates it on the next reconcile; a larger volumeClaimTemplate does not resize existing "
    "PVCs: resize each (kubectl -n {namespace} edit pvc ...) if its StorageClass has "
    "allowVolumeExpansion; or let the agent do both: on_immutable_change: recreate on the "
    "service (docs/agent.md)"
)
OTHER = (
    "this field cannot change in place: revert it in the inventory, or delete the {kind} "
    "(kubectl -n {namespace} delete {kind} {name}) after checking nothing is lost, and the agent "
    "re-creates it on the next reconcile"
)


def fields(error: Invalid) -> list[str]:
    """The fields ``error`` says cannot change (empty if it is about something else)."""
    return [
        field or "spec"
        for field, message in error.causes
        if any(mark in message for mark in _MARKS)
    ]


def explain(error: Invalid, kind: str, namespace: str, name: str) -> str:
    """What to tell about an immutable change ("" when ``error`` is not one)."""
    found = fields(error)
    if not found:
        return ""
    how = STATEFULSET if kind == "StatefulSet" else OTHER
    what = how.format(kind=kind.lower(), namespace=namespace or "default", name=name)
    return f"immutable field {', '.join(sorted(set(found)))} changed; {what}"
