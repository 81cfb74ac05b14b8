"""Desired objects + the previous ApplySet -> what to apply, in which order, and what to prune
(pure).

Order: Namespaces and CustomResourceDefinitions first (phase 0, then the agent waits for CRDs to be
established), then everything else (phase 1) in Helm's install order of kinds, so ServiceAccounts,
RBAC, ConfigMaps and Services exist before the workloads that use them.

Prune follows kubectl's ApplySet (KEP-3659) with the safety the tools that hurt users lacked: only
members of the *previous* set (recorded in the parent) are candidates, never whatever happens to
carry the label; PersistentVolumeClaims and Namespaces are kept unless explicitly allowed; and a
prune that would delete more than a configured share of the set at once is refused whole.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from generator.core.objects import ObjectId, identity
from generator.run.agent.settings import PruneSettings

PART_OF = "applyset.kubernetes.io/part-of"
ID_LABEL = "applyset.kubernetes.io/id"
TOOLING = "applyset.kubernetes.io/tooling"
GROUP_KINDS = "applyset.kubernetes.io/contains-group-kinds"
NAMESPACES = "applyset.kubernetes.io/additional-namespaces"

FIRST = ("Namespace", "CustomResourceDefinition")
# Helm's install order (pkg/release/util/kind_sorter.go); kinds not listed come after, by name.
KIND_ORDER = (
    "PriorityClass",
    "NetworkPolicy",
    "ResourceQuota",
    "LimitRange",
    "PodSecurityPolicy",
    "PodDisruptionBudget",
    "ServiceAccount",
    "Secret",
    "SecretList",
    "ConfigMap",
    "StorageClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "ClusterRole",
    "ClusterRoleList",
    "ClusterRoleBinding",
    "ClusterRoleBindingList",
    "Role",
    "RoleList",
    "RoleBinding",
    "RoleBindingList",
    "Service",
    "DaemonSet",
    "Pod",
    "ReplicationController",
    "ReplicaSet",
    "Deployment",
    "HorizontalPodAutoscaler",
    "StatefulSet",
    "Job",
    "CronJob",
    "IngressClass",
    "Ingress",
    "APIService",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
)
PROTECTED = {"PersistentVolumeClaim": "persistent_volume_claims", "Namespace": "namespaces"}


def applyset_id(name: str, namespace: str, kind: str = "ConfigMap", group: str = "") -> str:
    """The ApplySet id of a parent object, exactly as kubectl computes it (KEP-3659)."""
    digest = hashlib.sha256(f"{name}.{namespace}.{kind}.{group}".encode()).digest()
    return f"applyset-{base64.urlsafe_b64encode(digest).decode().rstrip('=')}-v1"


def member(obj: dict[str, Any], set_id: str) -> dict[str, Any]:
    """``obj`` labelled as a member of the set (a copy; the input is not changed)."""
    meta = obj["metadata"]
    labels = {**(meta.get("labels") or {}), PART_OF: set_id}
    return {**obj, "metadata": {**meta, "labels": labels}}


def phases(objects: Iterable[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Objects in apply order: ``[namespaces and CRDs, everything else]`` (empty phases dropped)."""
    first: list[dict[str, Any]] = []
    rest: list[dict[str, Any]] = []
    for obj in objects:
        (first if obj["kind"] in FIRST else rest).append(obj)
    first.sort(key=lambda o: (FIRST.index(o["kind"]), identity(o)))
    rest.sort(key=_order)
    return [p for p in (first, rest) if p]


def _order(obj: dict[str, Any]) -> tuple[int, str, ObjectId]:
    kind = obj["kind"]
    return (KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER), kind, identity(obj))


@dataclass(frozen=True)
class PrunePlan:
    """What to delete, what to keep although it left the set, and whether the guard refused."""

    delete: tuple[ObjectId, ...] = ()
    retained: tuple[tuple[ObjectId, str], ...] = ()
    """Members that left the branch but are kept, with
    the reason (protected kind, guard, disabled)."""
    refused: str = ""
    """Why the whole prune was refused ("" when it was not)."""


def prune_plan(
    previous: Iterable[ObjectId],
    desired: Iterable[ObjectId],
    settings: PruneSettings,
    keep: Mapping[str, str] | None = None,
) -> PrunePlan:
    """Members of the previous set that are no longer desired: deleted,
    or retained with a reason. Kinds in ``keep`` (kind -> why) are retained whatever the settings
    allow (an automatic rollback's)."""
    before = set(previous)
    gone = sorted(before - set(desired))
    if not gone:
        return PrunePlan()
    if not settings.enabled:
        return PrunePlan(retained=tuple((oid, "pruning is disabled") for oid in gone))
    keep = keep or {}
    kept = [
        (oid, f"{oid.kind} deletion is not allowed (prune.{PROTECTED[oid.kind]})")
        for oid in gone
        if oid.kind in PROTECTED and not getattr(settings, PROTECTED[oid.kind])
    ]
    kept += [
        (oid, f"not deleted by an automatic rollback: {keep[oid.kind]}")
        for oid in gone
        if oid.kind in keep and oid not in {k for k, _ in kept}
    ]
    kept_ids = {oid for oid, _ in kept}
    delete = [oid for oid in gone if oid not in kept_ids]
    refused = guard(len(delete), len(before), settings)
    if refused:
        return PrunePlan(
            retained=tuple(kept) + tuple((oid, "mass-delete guard") for oid in delete),
            refused=refused,
        )
    return PrunePlan(tuple(delete), tuple(kept))


def guard(deleting: int, size: int, settings: PruneSettings) -> str:
    """Why deleting ``deleting`` of a set of ``size`` at once is refused ("" if it is allowed)."""
    if deleting <= settings.min_refused or size == 0 or deleting <= settings.max_share * size:
        return ""
    return (
        f"prune refused: it would delete {deleting} of the {size} objects of the set "
        f"({deleting / size:.0%}), more than the allowed {settings.max_share:.0%} at once; "
        "if this is intended, raise the limit for one reconcile "
        "(--prune-max-share / GEN_AGENT_PRUNE_MAX_SHARE)"
    )


Members = dict[ObjectId, str]
"""Members of a set with the apiVersion each was applied as
(needed to find it again for a delete)."""


def members_of(objects: Iterable[dict[str, Any]]) -> Members:
    """The members the desired objects make."""
    return {identity(o): o["apiVersion"] for o in objects}


def encode_members(members: Members) -> str:
    """One member per line, ``apiVersion|kind|namespace|name``, sorted (stable bytes, diffable)."""
    return "".join(f"{members[m]}|{m.kind}|{m.namespace}|{m.name}\n" for m in sorted(members))


def decode_members(text: str) -> Members:
    """The inverse of ``encode_members``; malformed lines are ignored."""
    found: Members = {}
    for line in text.splitlines():
        parts = line.split("|")
        if len(parts) == 4 and parts[0] and parts[1] and parts[3]:
            api_version, kind, namespace, name = parts
            found[ObjectId(api_version.rpartition("/")[0], kind, namespace, name)] = api_version
    return found


def group_kinds(members: Iterable[ObjectId]) -> str:
    """The parent's ``contains-group-kinds`` annotation: sorted ``Kind.group``
    (``Kind`` for core)."""
    return ",".join(sorted({f"{m.kind}.{m.group}" if m.group else m.kind for m in members}))


def namespaces(members: Iterable[ObjectId], own: str) -> str:
    """The parent's ``additional-namespaces`` annotation:
    member namespaces other than the parent's."""
    return ",".join(sorted({m.namespace for m in members if m.namespace and m.namespace != own}))
