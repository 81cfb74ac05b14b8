"""The ApplySet parent and pruning, in kubectl's order (KEP-3659), with a member inventory.

The parent is a ConfigMap ``<name>-applyset`` in the agent's namespace, labelled
``applyset.kubernetes.io/id`` and annotated with the tooling, the group-kinds and the additional
namespaces as kubectl expects, so ``kubectl`` can read it. Its ``data.members`` lists every member
(``apiVersion|kind|namespace|name``): prune candidates are members of that recorded set, never
whatever happens to carry the label (an operator who copies the label onto an object of their own
cannot get it deleted).

A reconcile (1) widens the parent to old ∪ new before applying, (2) applies, (3) deletes old minus
new where the object still carries our label, exactly the object that was read (uid and
resourceVersion preconditions), (4) narrows the parent to new plus whatever it could not or may not
delete. A crash between any two steps leaves a parent that still names everything the agent may
have created, so the next reconcile finishes the job.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from generator import __version__
from generator.core.objects import ObjectId
from generator.run.agent import plan
from generator.run.agent.kube import Kube, KubeError, NotFound
from generator.run.agent.plan import Members
from generator.run.agent.settings import FIELD_MANAGER, Settings

COMMIT = "gen-agent/commit"
"""Parent annotation: the commit whose objects the set was last widened for
(rollback protection)."""
MEMBERS = "members"


@dataclass(frozen=True)
class Parent:
    """The recorded set: members, the commit last being applied, and whether the parent exists."""

    members: Members = field(default_factory=dict)
    commit: str = ""
    exists: bool = False


@dataclass
class Pruned:
    """What pruning did."""

    deleted: list[ObjectId] = field(default_factory=list)
    gone: list[ObjectId] = field(default_factory=list)
    """Already absent: dropped from the set."""
    released: list[tuple[ObjectId, str]] = field(default_factory=list)
    """No longer carrying our label (someone took it over): dropped from the set, not deleted."""
    failed: dict[ObjectId, str] = field(default_factory=dict)
    """Could not be deleted: stays in the set and is retried next time."""


def read(kube: Kube, settings: Settings) -> Parent:
    """The parent as recorded, or an empty one if it does not exist yet."""
    res = kube.resource("v1", "ConfigMap")
    obj = kube.get(res, settings.namespace, settings.parent_name)
    if obj is None:
        return Parent()
    annotations = obj["metadata"].get("annotations") or {}
    return Parent(
        plan.decode_members((obj.get("data") or {}).get(MEMBERS, "")),
        annotations.get(COMMIT, ""),
        True,
    )


def write(
    kube: Kube, settings: Settings, set_id: str, members: Members, commit: str, current: Parent
) -> Parent:
    """Record ``members`` (and ``commit``) in the parent; no request if that is what it holds."""
    if current.exists and current.members == members and current.commit == commit:
        return current
    ids = list(members)
    body = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": settings.parent_name,
            "namespace": settings.namespace,
            "labels": {plan.ID_LABEL: set_id},
            "annotations": {
                plan.TOOLING: f"gen-agent/{__version__}",
                plan.GROUP_KINDS: plan.group_kinds(ids),
                plan.NAMESPACES: plan.namespaces(ids, settings.namespace),
                COMMIT: commit,
            },
        },
        "data": {MEMBERS: plan.encode_members(members)},
    }
    try:
        kube.apply(kube.resource("v1", "ConfigMap"), body, FIELD_MANAGER)
    except (
        NotFound
    ):  # the agent's namespace does not exist yet (a first run from outside the cluster)
        namespace = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": settings.namespace},
        }
        kube.apply(kube.resource("v1", "Namespace"), namespace, FIELD_MANAGER)
        kube.apply(kube.resource("v1", "ConfigMap"), body, FIELD_MANAGER)
    return Parent(dict(members), commit, True)


def delete(kube: Kube, candidates: Members, set_id: str, pool: ThreadPoolExecutor) -> Pruned:
    """Delete each candidate that still carries our label; never raises for one object's failure."""
    result = Pruned()
    for oid, outcome in pool.map(
        lambda item: (item[0], _delete_one(kube, item[0], item[1], set_id)),
        sorted(candidates.items()),
    ):
        if outcome == "deleted":
            result.deleted.append(oid)
        elif outcome == "gone":
            result.gone.append(oid)
        elif outcome.startswith("released:"):
            result.released.append((oid, outcome.removeprefix("released:")))
        else:
            result.failed[oid] = outcome
    return result


def _delete_one(kube: Kube, oid: ObjectId, api_version: str, set_id: str) -> str:
    try:
        res = kube.resource(api_version, oid.kind)
        live = kube.get(res, oid.namespace, oid.name)
        if live is None:
            return "gone"
        meta = live["metadata"]
        label = (meta.get("labels") or {}).get(plan.PART_OF)
        if label != set_id:
            return (
                f"released:no longer labelled {plan.PART_OF}={set_id} "
                f"(label is {label or 'absent'}); not deleted"
            )
        kube.delete(res, oid.namespace, oid.name, meta["uid"], meta["resourceVersion"])
        return "deleted"
    except KubeError as e:
        return f"delete failed: {e}"
