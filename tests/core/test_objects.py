"""generator.core.objects: the one walk over the pod specs of Kubernetes objects."""

from __future__ import annotations

from typing import Any

import pytest

from generator.core import objects


def pod(*images: str, init: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "initContainers": [{"name": f"init-{i}", "image": im} for i, im in enumerate(init)],
        "containers": [{"name": f"c-{i}", "image": im} for i, im in enumerate(images)],
    }


def workload(kind: str, api: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": api, "kind": kind, "metadata": {"name": "x"}, "spec": spec}


TEMPLATED = {
    "Deployment": "apps/v1",
    "StatefulSet": "apps/v1",
    "DaemonSet": "apps/v1",
    "ReplicaSet": "apps/v1",
    "Job": "batch/v1",
}


@pytest.mark.parametrize("kind", sorted(TEMPLATED))
def test_a_workload_runs_its_template_spec(kind: str) -> None:
    spec = pod("app:1", init=("setup:1",))
    template = {"metadata": {}, "spec": spec}
    obj = workload(kind, TEMPLATED[kind], {"replicas": 2, "template": template})
    assert list(objects.pod_specs(obj)) == [spec]
    assert objects.images(obj) == ["setup:1", "app:1"]


def test_a_pod_runs_its_own_spec() -> None:
    spec = pod("app:1", "sidecar:2")
    obj = workload("Pod", "v1", spec)
    assert list(objects.pod_specs(obj)) == [spec]
    assert objects.images(obj) == ["app:1", "sidecar:2"]


def test_a_cronjob_runs_its_job_templates_pod_spec() -> None:
    spec = pod("backup:3")
    obj = workload(
        "CronJob",
        "batch/v1",
        {"schedule": "@daily", "jobTemplate": {"spec": {"template": {"spec": spec}}}},
    )
    assert list(objects.pod_specs(obj)) == [spec]
    assert objects.images(obj) == ["backup:3"]


@pytest.mark.parametrize(
    "obj",
    [
        workload("ConfigMap", "v1", {}) | {"data": {"template": "x"}},
        workload("Service", "v1", {"ports": [{"port": 80}]}),
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}},
        workload("Deployment", "apps/v1", {"template": "not a mapping"}),
        workload("Deployment", "apps/v1", {"template": {"spec": ["not", "a", "mapping"]}}),
        workload("CronJob", "batch/v1", {"jobTemplate": {"spec": None}}),
        workload("CronJob", "batch/v1", {"jobTemplate": "x"}),
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}, "spec": "x"},
    ],
)
def test_objects_without_a_well_formed_pod_spec_run_none(obj: dict[str, Any]) -> None:
    assert list(objects.pod_specs(obj)) == []
    assert objects.images(obj) == []


def test_containers_lists_init_containers_first_or_leaves_them_out() -> None:
    spec = pod("app:1", init=("setup:1",))
    assert [c["image"] for c in objects.containers(spec)] == ["setup:1", "app:1"]
    assert [c["image"] for c in objects.containers(spec, init=False)] == ["app:1"]


def test_malformed_containers_are_skipped_not_fatal() -> None:
    spec = {
        "containers": [{"name": "a", "image": "a:1"}, "junk", {"name": "b"}],
        "initContainers": None,
    }
    assert [c["name"] for c in objects.containers(spec)] == ["a", "b"]
    assert objects.images(workload("Pod", "v1", spec)) == ["a:1"]
