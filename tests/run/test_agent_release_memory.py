"""What the agent remembers about releases, and what an automatic rollback may move back (pure
functions; the cluster behaviour is in test_agent_releases.py)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from generator.core.objects import identity
from generator.run.agent import plan, releases
from generator.run.agent.settings import PruneSettings
from tests.support.agent import configmap, deployment

HEALTHY = releases.Running(2, "a" * 40, "spring")
FAILED = releases.Running(3, "b" * 40)


def crd(versions: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"versions": [{"name": v} for v in versions]},
    }


def statefulset(image: str, size: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "db", "namespace": "app"},
        "spec": {
            "template": {"spec": {"containers": [{"name": "db", "image": image}]}},
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "data"},
                    "spec": {"resources": {"requests": {"storage": size}}},
                }
            ],
        },
    }


def claim(size: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data", "namespace": "app"},
        "spec": {"resources": {"requests": {"storage": size}}},
    }


def test_a_rollback_moves_workloads_back_and_keeps_what_holds_data_as_the_failure_made_it() -> None:
    healthy = [
        deployment("web", "app", image="app:1"),
        crd(["v1"]),
        claim("1Gi"),
        statefulset("db:1", "1Gi"),
        configmap("settings", "app", v="1"),
    ]
    failed = [
        deployment("web", "app", image="app:2"),
        crd(["v1", "v2"]),
        claim("5Gi"),
        statefulset("db:2", "5Gi"),
        configmap("settings", "app", v="2"),
    ]
    objects, kept = releases.kept_forward(healthy, copy.deepcopy(failed))
    assert objects == [healthy[0], failed[1], failed[2], failed[3], healthy[4]]
    assert [str(oid) for oid, _ in kept] == [
        "CustomResourceDefinition.apiextensions.k8s.io widgets.example.com",
        "PersistentVolumeClaim app/data",
        "StatefulSet.apps app/db",
    ]
    assert all(why.startswith("kept as the failed release made it: ") for _, why in kept)


def test_a_job_whose_pod_template_changed_is_kept_as_the_failed_release_made_it() -> None:
    def job(image: str, parallelism: int) -> dict[str, Any]:
        template = {"spec": {"containers": [{"name": "m", "image": image}]}}
        spec = {"template": template, "parallelism": parallelism}
        return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "m"}, "spec": spec}

    objects, kept = releases.kept_forward([job("m:1", 1)], [job("m:2", 1)])
    assert objects == [job("m:2", 1)] and "immutable" in kept[0][1]
    assert releases.kept_forward([job("m:1", 1)], [job("m:1", 2)]) == ([job("m:1", 1)], [])


def test_a_statefulset_whose_claim_templates_did_not_change_goes_back() -> None:
    healthy, failed = [statefulset("db:1", "1Gi")], [statefulset("db:2", "1Gi")]
    assert releases.kept_forward(healthy, failed) == (healthy, [])


def test_only_unhealthy_objects_the_release_changed_or_added_are_blamed() -> None:
    healthy = [deployment("web", "app", image="app:1"), deployment("api", "app")]
    failed = [
        deployment("web", "app", image="app:2"),
        deployment("api", "app"),
        deployment("new", "app"),
    ]
    names = [str(identity(o)) for o in failed]
    assert releases.blamed(names, healthy, failed) == [names[0], names[2]]
    assert releases.blamed([names[1]], healthy, failed) == []


def test_an_automatic_rollback_never_prunes_kinds_that_hold_data_whatever_prune_allows() -> None:
    everything = PruneSettings(max_share=1.0, persistent_volume_claims=True, namespaces=True)
    gone = [identity(o) for o in (statefulset("db:2", "1Gi"), claim("1Gi"), crd(["v1"]))]
    web = identity(deployment("web", "app"))
    verdict = plan.prune_plan([*gone, web], [], everything, releases.KEEP_ON_ROLLBACK)
    assert verdict.delete == (web,)
    assert sorted(oid for oid, _ in verdict.retained) == sorted(gone)
    assert all("not deleted by an automatic rollback" in why for _, why in verdict.retained)
    assert plan.prune_plan([*gone, web], [], everything).delete == tuple(sorted([*gone, web]))


def test_memory_survives_a_restart_in_the_state_directory(tmp_path: Path) -> None:
    hold = releases.Hold(FAILED, HEALTHY, 1_700_000_000.0, "Deployment.apps app/web: x", 180.0)
    memory = releases.Memory(HEALTHY, hold, FAILED.commit, 1_699_999_000.0)
    releases.save(tmp_path, memory)
    assert releases.load(tmp_path, {}) == (memory, "")
    assert hold.sentence == (
        f"automatic rollback: release 3 (commit {'b' * 12}) did not become healthy within 3m "
        "(Deployment.apps app/web: x); returned to the last healthy release 2 (spring) "
        f"(commit {'a' * 12}); holding there until a release newer than 3 arrives"
    )


def test_without_its_state_file_the_agent_takes_the_last_healthy_release_from_the_status(
    tmp_path: Path,
) -> None:
    status = {
        "lastHealthyRelease": "2",
        "lastHealthyReleaseName": "spring",
        "lastHealthyCommit": HEALTHY.commit,
    }
    assert releases.load(tmp_path, status) == (releases.Memory(HEALTHY), "")
    (tmp_path / releases.STATE).write_text("{not json")
    memory, note = releases.load(tmp_path, status)
    assert memory == releases.Memory(HEALTHY)
    assert (
        note.startswith(f"{tmp_path / releases.STATE}: unreadable") and "status ConfigMap" in note
    )
    assert releases.load(tmp_path / "none", {"lastHealthyRelease": "x"}) == (releases.Memory(), "")


def test_without_its_state_file_the_agent_takes_the_hold_from_the_status(tmp_path: Path) -> None:
    hold = releases.Hold(FAILED, HEALTHY, 1_700_000_000.0, "Deployment.apps app/web: x", 180.0)
    status = {
        "lastHealthyRelease": "2",
        "lastHealthyReleaseName": "spring",
        "lastHealthyCommit": HEALTHY.commit,
        releases.HOLD_KEY: releases.hold_text(hold),
    }
    assert releases.load(tmp_path, status) == (releases.Memory(HEALTHY, hold), "")
    for damaged in ("{not json", '{"failed": 3}', "[]", ""):
        status[releases.HOLD_KEY] = damaged
        assert releases.load(tmp_path, status) == (releases.Memory(HEALTHY), "")
