"""Kubernetes objects as plain dicts: identity, canonical key order, images.

Where each lives in compiled/ is ``generator.core.layout``'s.

Shared by the compiler (which writes the files) and the agent (which reads them back).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

# Kinds that are not namespaced (built-in API only; a CRD's objects carry their own namespace or
# not).
CLUSTER_SCOPED = frozenset(
    {
        "Namespace",
        "Node",
        "PersistentVolume",
        "StorageClass",
        "CSIDriver",
        "CSINode",
        "VolumeAttachment",
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "APIService",
        "PriorityClass",
        "IngressClass",
        "RuntimeClass",
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
        "CertificateSigningRequest",
        "FlowSchema",
        "PriorityLevelConfiguration",
    }
)

_TOP_ORDER = ("apiVersion", "kind", "metadata")
_META_ORDER = ("name", "generateName", "namespace", "labels", "annotations")
_SORTED_MAPS = ("labels", "annotations")


@dataclass(frozen=True, order=True)
class ObjectId:
    """What identifies an object in a cluster: group, kind, namespace ("" if cluster-scoped),
    name."""

    group: str
    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        kind = f"{self.kind}.{self.group}" if self.group else self.kind
        return f"{kind} {self.namespace}/{self.name}" if self.namespace else f"{kind} {self.name}"


def identity(obj: dict[str, Any]) -> ObjectId:
    """The identity of an object (its apiVersion's version does not matter)."""
    group = obj["apiVersion"].rpartition("/")[0]
    meta = obj["metadata"]
    return ObjectId(group, obj["kind"], meta.get("namespace", "") or "", meta["name"])


ON_IMMUTABLE_CHANGE = "gen-gitops.io/on-immutable-change"
"""Annotation by which a compiled object opts in to the agent's recreate policy (value
``recreate``): written by the component's template, read by the agent and the RBAC stage."""


def recreates(obj: dict[str, Any]) -> bool:
    """Whether ``obj`` opted in to the recreate policy for an immutable change."""
    annotations = _mapping(_mapping(obj.get("metadata")).get("annotations"))
    return annotations.get(ON_IMMUTABLE_CHANGE) == "recreate"


def is_namespaced(kind: str) -> bool:
    """False for the built-in cluster-scoped kinds."""
    return kind not in CLUSTER_SCOPED


def canonical(obj: dict[str, Any]) -> dict[str, Any]:
    """Kubernetes' conventional key order: apiVersion, kind, metadata (name, namespace, labels,
    annotations, ...), then the rest as the template wrote it; labels and annotations sorted."""
    meta = obj["metadata"]
    ordered_meta = {k: meta[k] for k in _META_ORDER if k in meta}
    ordered_meta.update((k, v) for k, v in meta.items() if k not in ordered_meta)
    for key in _SORTED_MAPS:
        if isinstance(ordered_meta.get(key), dict):
            ordered_meta[key] = dict(sorted(ordered_meta[key].items()))
    out: dict[str, Any] = {k: obj[k] for k in _TOP_ORDER if k in obj}
    out["metadata"] = ordered_meta
    out.update((k, v) for k, v in obj.items() if k not in out)
    return out


def pod_specs(obj: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The pod specs an object runs: a Pod's spec, a workload's ``spec.template.spec``
    (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job) and a CronJob's
    ``spec.jobTemplate.spec.template.spec``.

    Malformed parts (not mappings) are skipped: the schema check reports them, not this walk.
    """
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    if obj.get("kind") == "Pod":
        yield spec
    template = spec.get("template")
    if isinstance(template, dict) and isinstance(template.get("spec"), dict):
        yield template["spec"]
    job = _mapping(_mapping(spec.get("jobTemplate")).get("spec")).get("template")
    if isinstance(job, dict) and isinstance(job.get("spec"), dict):
        yield job["spec"]


def containers(pod: dict[str, Any], init: bool = True) -> Iterator[dict[str, Any]]:
    """A pod spec's containers, init containers first unless ``init`` is false; junk skipped."""
    for key in ("initContainers", "containers") if init else ("containers",):
        listed = pod.get(key)
        for container in listed if isinstance(listed, list) else ():
            if isinstance(container, dict):
                yield container


def images(obj: dict[str, Any]) -> list[str]:
    """Container images an object's pods run (workloads, pod templates, CronJobs)."""
    found = (c.get("image") for pod in pod_specs(obj) for c in containers(pod))
    return [image for image in found if isinstance(image, str)]


def _mapping(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
