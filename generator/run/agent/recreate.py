"""The opt-in recreate policy for an immutable change: the standard safe procedure, done by the
agent, for the objects whose template asked for it.

A service sets ``on_immutable_change: recreate`` in the inventory; its template writes the
annotation ``gen-gitops.io/on-immutable-change: recreate`` on the compiled StatefulSet, and that
annotation is all the agent reads. When applying such a StatefulSet fails with an immutable-field
422, the agent deletes it with ``propagationPolicy: Orphan`` (its pods and PVCs stay, the garbage
collector only drops their owner reference), waits until it is gone, and re-creates it by
server-side apply in the same round. A volumeClaimTemplate that grew is carried to the existing
PVCs ``<template>-<statefulset>-<ordinal>`` (found by the StatefulSet's selector labels) whose
StorageClass has ``allowVolumeExpansion: true``; the others are named as needing a manual step.
Nothing is ever deleted with its data: no PVC delete, no cascade.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from generator.core.objects import recreates as opted_in
from generator.run.agent.kube import Kube, KubeError, Resource
from generator.run.agent.settings import FIELD_MANAGER

__all__ = ["Done", "grown", "opted_in", "statefulset"]

Obj = dict[str, Any]
GONE_TIMEOUT = 30.0
"""How long the agent waits for the orphaning delete to finish (the garbage collector's work)."""


@dataclass(frozen=True)
class Done:
    """What recreating did: the server's copy of the new object, and one line per step taken or
    left to an operator."""

    live: Obj
    steps: tuple[str, ...]


def statefulset(
    kube: Kube,
    res: Resource,
    want: Obj,
    current: Obj,
    sleep: Callable[[float], None] = time.sleep,
) -> Done:
    """Delete the live StatefulSet ``current`` orphaning its pods and PVCs, re-create it as
    ``want``, and grow its PVCs where allowed. Raises KubeError when the delete, the wait or the
    re-create fails (the object is then reported; its pods and PVCs are untouched)."""
    meta = current["metadata"]
    namespace, name = meta.get("namespace", ""), meta["name"]
    kube.delete(res, namespace, name, meta["uid"], meta["resourceVersion"], propagation="Orphan")
    _wait_gone(kube, res, namespace, name, meta["uid"], sleep)
    live = kube.apply(res, want, FIELD_MANAGER)
    steps = [
        f"re-created StatefulSet {namespace}/{name} (deleted with propagationPolicy Orphan: "
        "its pods and PVCs were kept)"
    ]
    for template, size in sorted(grown(current, want).items()):
        steps += _grow(kube, current, template, size)
    return Done(live, tuple(steps))


def grown(current: Obj, want: Obj) -> dict[str, str]:
    """volumeClaimTemplate name -> the desired storage request, for the templates whose request
    changed from ``current`` to ``want``."""
    before, after = _sizes(current), _sizes(want)
    return {name: size for name, size in after.items() if name in before and before[name] != size}


def _sizes(sts: Obj) -> dict[str, str]:
    out = {}
    for template in (sts.get("spec") or {}).get("volumeClaimTemplates") or []:
        requests = ((template.get("spec") or {}).get("resources") or {}).get("requests") or {}
        if "storage" in requests:
            out[template["metadata"]["name"]] = str(requests["storage"])
    return out


def _wait_gone(
    kube: Kube, res: Resource, namespace: str, name: str, uid: str, sleep: Callable[[float], None]
) -> None:
    deadline = time.monotonic() + GONE_TIMEOUT
    while (live := kube.get(res, namespace, name)) is not None and live["metadata"]["uid"] == uid:
        if time.monotonic() > deadline:
            raise KubeError(
                f"deleted with propagationPolicy Orphan but still there after {GONE_TIMEOUT:.0f}s "
                f"(finalizers {live['metadata'].get('finalizers') or []}): is the garbage "
                "collector running? The agent re-creates it once it is gone"
            )
        sleep(0.2)


def _grow(kube: Kube, sts: Obj, template: str, size: str) -> list[str]:
    """Carry ``size`` to the existing PVCs of ``template``; one line per PVC."""
    meta = sts["metadata"]
    namespace, name = meta.get("namespace", ""), meta["name"]
    labels = (sts["spec"].get("selector") or {}).get("matchLabels") or {}
    selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    pvcs = kube.resource("v1", "PersistentVolumeClaim")
    ours = re.compile(rf"^{re.escape(template)}-{re.escape(name)}-[0-9]+$")
    steps = []
    for pvc in sorted(kube.list(pvcs, namespace, selector), key=lambda p: p["metadata"]["name"]):
        claim = pvc["metadata"]["name"]
        if not ours.match(claim):
            continue
        now = (pvc["spec"].get("resources") or {}).get("requests", {}).get("storage")
        if now == size:
            continue
        why = _not_expandable(kube, pvc)
        if why:
            steps.append(
                f"PVC {namespace}/{claim} needs a manual step to grow from {now} to {size}: {why}"
            )
            continue
        patch = {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": claim, "namespace": namespace},
            "spec": {"resources": {"requests": {"storage": size}}},
        }
        try:
            kube.apply(pvcs, patch, FIELD_MANAGER)
        except KubeError as e:
            steps.append(f"PVC {namespace}/{claim} needs a manual step to grow to {size}: {e}")
            continue
        steps.append(f"grew PVC {namespace}/{claim} from {now} to {size}")
    return steps


def _not_expandable(kube: Kube, pvc: Obj) -> str:
    """Why ``pvc`` cannot be grown in place ("" when its StorageClass allows expansion)."""
    name = pvc["spec"].get("storageClassName") or ""
    if not name:
        return "it names no StorageClass"
    try:
        found = kube.get(kube.resource("storage.k8s.io/v1", "StorageClass"), "", name)
    except KubeError as e:
        return f"its StorageClass {name} cannot be read ({e})"
    if found is None:
        return f"its StorageClass {name} does not exist"
    if not found.get("allowVolumeExpansion"):
        return (
            f"its StorageClass {name} does not set allowVolumeExpansion: move the data to a "
            "larger volume by hand"
        )
    return ""
