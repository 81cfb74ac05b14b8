"""The agent's pure rules: apply order, prune safety, drift comparison, kstatus health,
RBAC from objects."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pytest

from generator.build.stages import agent_rbac as access
from generator.core import units
from generator.core.errors import GenError
from generator.core.objects import ObjectId
from generator.run.agent import drift, health, immutable, owned, plan
from generator.run.agent.health import State
from generator.run.agent.kube import Invalid
from generator.run.agent.settings import PruneSettings, parse_share


def obj(
    kind: str, name: str, namespace: str = "ns", api_version: str = "v1", **rest: Any
) -> dict[str, Any]:
    meta = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {"apiVersion": api_version, "kind": kind, "metadata": meta, **rest}


def ids(n: int, kind: str = "ConfigMap") -> list[ObjectId]:
    return [ObjectId("", kind, "ns", f"o{i}") for i in range(n)]


# -- plan ------------------------------------------------------------------------------------------


def test_applyset_id_is_kubectls_hash_of_name_namespace_kind_group() -> None:
    # kubectl: base64.RawURLEncoding(sha256("<name>.<namespace>.<Kind>.<group>")), prefixed and
    # suffixed
    digest = hashlib.sha256(b"gen-agent-applyset.gen-agent.ConfigMap.").digest()
    expected = "applyset-" + base64.urlsafe_b64encode(digest).decode().rstrip("=") + "-v1"
    assert plan.applyset_id("gen-agent-applyset", "gen-agent") == expected


def test_namespaces_and_crds_come_first_then_helm_kind_order() -> None:
    objs = [
        obj("Deployment", "d", api_version="apps/v1"),
        obj("Service", "s"),
        obj("Namespace", "ns", ""),
        obj("ServiceAccount", "sa"),
        obj("CustomResourceDefinition", "c", "", "apiextensions.k8s.io/v1"),
        obj("Widget", "w", api_version="example.com/v1"),
    ]
    first, rest = plan.phases(objs)
    assert [o["kind"] for o in first] == ["Namespace", "CustomResourceDefinition"]
    assert [o["kind"] for o in rest] == ["ServiceAccount", "Service", "Deployment", "Widget"]


def test_member_adds_the_part_of_label_without_changing_the_input() -> None:
    original = obj("ConfigMap", "a", labels={})
    labelled = plan.member(original, "applyset-x-v1")
    assert labelled["metadata"]["labels"] == {plan.PART_OF: "applyset-x-v1"}
    assert "labels" not in original["metadata"]


def test_prune_deletes_only_previous_members_that_left() -> None:
    previous, desired = ids(10), ids(9)
    verdict = plan.prune_plan(previous, desired, PruneSettings())
    assert verdict.delete == (previous[9],) and not verdict.refused


def test_prune_guard_refuses_deleting_more_than_the_share_at_once() -> None:
    verdict = plan.prune_plan(ids(10), ids(2), PruneSettings(max_share=0.5))
    assert verdict.delete == () and "8 of the 10" in verdict.refused
    assert {why for _, why in verdict.retained} == {"mass-delete guard"}


def test_prune_guard_lets_small_deletions_through_whatever_the_share() -> None:
    assert plan.prune_plan(ids(4), ids(1), PruneSettings(max_share=0.1)).delete == tuple(ids(4)[1:])


def test_prune_never_deletes_pvcs_or_namespaces_unless_allowed() -> None:
    pvc, ns = (
        ObjectId("", "PersistentVolumeClaim", "ns", "data"),
        ObjectId("", "Namespace", "", "ns"),
    )
    kept = plan.prune_plan([pvc, ns], [], PruneSettings())
    assert kept.delete == () and {oid for oid, _ in kept.retained} == {pvc, ns}
    allowed = plan.prune_plan(
        [pvc, ns], [], PruneSettings(persistent_volume_claims=True, namespaces=True)
    )
    assert set(allowed.delete) == {pvc, ns}


def test_disabled_prune_retains_everything_that_left() -> None:
    verdict = plan.prune_plan(ids(3), [], PruneSettings(enabled=False))
    assert verdict.delete == () and len(verdict.retained) == 3


def test_members_round_trip_through_the_parent_encoding() -> None:
    members = plan.members_of(
        [obj("Deployment", "d", api_version="apps/v1"), obj("Namespace", "n", "")]
    )
    assert plan.decode_members(plan.encode_members(members)) == members
    assert plan.group_kinds(members) == "Deployment.apps,Namespace"


# -- drift -----------------------------------------------------------------------------------------


def test_covers_ignores_server_defaults_and_foreign_fields() -> None:
    want = {"spec": {"ports": [{"port": 80}], "selector": {"app": "a"}}}
    live = {
        "spec": {
            "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}],
            "selector": {"app": "a"},
            "clusterIP": "10.0.0.3",
        },
        "status": {},
    }
    assert drift.covers(live, want)


def test_covers_sees_a_changed_value_and_a_list_of_another_length() -> None:
    assert not drift.covers({"data": {"k": "old"}}, {"data": {"k": "new"}})
    assert not drift.covers({"ports": [{"port": 1}, {"port": 2}]}, {"ports": [{"port": 1}]})


def test_covers_normalises_quantities_the_server_rewrites() -> None:
    assert drift.covers({"cpu": "500m", "memory": "1Gi"}, {"cpu": "0.5", "memory": "1024Mi"})
    assert drift.covers({"cpu": "2"}, {"cpu": 2})
    assert not drift.covers({"cpu": "500m"}, {"cpu": "1"})


def test_covers_treats_an_empty_map_as_absent() -> None:
    assert drift.covers({"metadata": {"name": "a"}}, {"metadata": {"name": "a", "annotations": {}}})


def _managed(manager: str, fields: dict[str, Any], **entry: str) -> dict[str, Any]:
    record = {"manager": manager, "operation": "Apply", "fieldsV1": fields, **entry}
    return {"metadata": {"name": "a", "managedFields": [record]}}


PORTS: dict[str, Any] = {
    "f:spec": {"f:ports": {'k:{"port":80,"protocol":"TCP"}': {".": {}, "f:port": {}}}}
}


def test_owned_finds_a_field_we_applied_that_the_branch_dropped_and_names_its_path() -> None:
    live = _managed("gen-agent", {"f:data": {"f:a": {}, "f:b": {}}})
    assert owned.removed(live, {"data": {"a": "1"}}, "gen-agent") == ".data.b"
    assert owned.removed(live, {"data": {"a": "1", "b": "2"}}, "gen-agent") == ""
    live = _managed("gen-agent", {"f:spec": {"f:finalizers": {'v:"x"': {}}}})
    assert (
        owned.removed(live, {"spec": {"finalizers": ["y"]}}, "gen-agent") == '.spec.finalizers["x"]'
    )


def test_owned_matches_keyed_entries_whose_defaulted_key_the_branch_leaves_out() -> None:
    live = _managed("gen-agent", PORTS)
    assert owned.removed(live, {"spec": {"ports": [{"port": 80}]}}, "gen-agent") == ""
    assert (
        owned.removed(live, {"spec": {"ports": [{"port": 81}]}}, "gen-agent")
        == ".spec.ports[port=80,protocol=TCP]"
    )


def test_owned_ignores_other_managers_updates_and_subresources() -> None:
    want: dict[str, Any] = {"spec": {"ports": []}}
    assert owned.removed(_managed("kubectl", PORTS), want, "gen-agent") == ""
    assert (
        owned.removed(_managed("gen-agent", PORTS, subresource="status"), want, "gen-agent") == ""
    )
    update = _managed("gen-agent", PORTS, operation="Update")
    assert owned.removed(update, want, "gen-agent") == ""
    assert owned.removed({"metadata": {"name": "a"}}, want, "gen-agent") == ""


def test_immutable_reads_the_field_from_the_servers_cause_and_ignores_other_refusals() -> None:
    job = Invalid(
        "PATCH ...: 422 Invalid",
        422,
        "Invalid",
        (("spec.template", "Invalid value: ...: field is immutable"),),
    )
    assert immutable.fields(job) == ["spec.template"]
    assert immutable.explain(job, "Job", "app", "migrate").startswith(
        "immutable field spec.template changed; this field cannot change in place: revert it"
    )
    assert immutable.explain(job, "StatefulSet", "app", "db").endswith(
        "or let the agent do both: on_immutable_change: recreate on the service (docs/agent.md)"
    )
    other = Invalid("...", 422, "Invalid", (("metadata.name", "a lowercase RFC 1123 label"),))
    assert immutable.fields(other) == [] and immutable.explain(other, "Job", "app", "x") == ""


def test_same_object_ignores_resource_version_and_managed_fields() -> None:
    a = {
        "metadata": {"name": "a", "resourceVersion": "1", "managedFields": [1]},
        "data": {"k": "v"},
    }
    b = {
        "metadata": {"name": "a", "resourceVersion": "2", "managedFields": [2]},
        "data": {"k": "v"},
    }
    assert drift.same_object(a, b)
    assert not drift.same_object(a, {**b, "data": {"k": "w"}})


# -- health ----------------------------------------------------------------------------------------


def deployment(replicas: int = 2, generation: int = 2, **status: Any) -> dict[str, Any]:
    return {
        "kind": "Deployment",
        "metadata": {"generation": generation},
        "spec": {"replicas": replicas},
        "status": status,
    }


def test_deployment_is_current_when_its_rollout_is_complete() -> None:
    done = deployment(
        observedGeneration=2, replicas=2, updatedReplicas=2, readyReplicas=2, availableReplicas=2
    )
    assert health.assess(done).current


def test_deployment_is_in_progress_until_its_generation_is_observed() -> None:
    stale = deployment(
        observedGeneration=1, replicas=2, updatedReplicas=2, readyReplicas=2, availableReplicas=2
    )
    assert health.assess(stale).state is State.IN_PROGRESS
    assert health.assess(deployment()).state is State.IN_PROGRESS


def test_deployment_past_its_progress_deadline_has_failed() -> None:
    stuck = deployment(
        observedGeneration=2,
        conditions=[
            {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}
        ],
    )
    assert health.assess(stuck).state is State.FAILED


def test_statefulset_waits_for_the_update_revision_and_respects_a_partition() -> None:
    base = {"kind": "StatefulSet", "metadata": {"generation": 1}, "spec": {"replicas": 3}}
    rolling: dict[str, Any] = {
        **base,
        "status": {
            "observedGeneration": 1,
            "readyReplicas": 3,
            "currentReplicas": 1,
            "updatedReplicas": 2,
            "currentRevision": "r1",
            "updateRevision": "r2",
        },
    }
    assert health.assess(rolling).state is State.IN_PROGRESS
    assert health.assess(
        {**rolling, "status": {**rolling["status"], "currentRevision": "r2"}}
    ).current
    partitioned = {
        **rolling,
        "spec": {"replicas": 3, "updateStrategy": {"rollingUpdate": {"partition": 1}}},
    }
    assert health.assess(partitioned).current


def test_pvc_is_current_only_when_bound_and_job_only_when_complete() -> None:
    assert health.assess({"kind": "PersistentVolumeClaim", "status": {"phase": "Bound"}}).current
    assert not health.assess(
        {"kind": "PersistentVolumeClaim", "status": {"phase": "Pending"}}
    ).current
    complete = {"kind": "Job", "status": {"conditions": [{"type": "Complete", "status": "True"}]}}
    failed = {
        "kind": "Job",
        "status": {"conditions": [{"type": "Failed", "status": "True", "message": "x"}]},
    }
    assert health.assess(complete).current and health.assess(failed).state is State.FAILED


def test_objects_without_status_are_current() -> None:
    assert health.assess({"kind": "ConfigMap", "metadata": {}}).current


# -- access ----------------------------------------------------------------------------------------


def test_rbac_grants_the_kinds_of_each_namespace_and_cluster_objects_by_name() -> None:
    objs = [
        obj("Namespace", "app", ""),
        obj("StatefulSet", "s", "app", "apps/v1"),
        obj("Service", "s", "app"),
        obj("PersistentVolumeClaim", "data", "app"),
        obj("ConfigMap", "c", "other"),
    ]
    rbac = access.rules(objs, "app", "gen-agent", {})
    by_ns = {e["namespace"]: e["rules"] for e in rbac["namespaces"]}
    assert set(by_ns) == {"app", "other", "gen-agent"}
    app = {(r["apiGroups"][0], res): r["verbs"] for r in by_ns["app"] for res in r["resources"]}
    assert app[("apps", "statefulsets")] == ["get", "list", "create", "patch", "delete"]
    assert "delete" not in app[("", "persistentvolumeclaims")]
    assert ("", "configmaps") not in app
    namespaces = next(r for r in rbac["cluster_rules"] if r["resources"] == ["namespaces"])
    assert namespaces["resourceNames"] == ["app"] and "delete" not in namespaces["verbs"]
    assert not any(
        "*" in r["resources"] or "*" in r["verbs"] for e in rbac["namespaces"] for r in e["rules"]
    )


def test_rbac_lets_prune_delete_pvcs_and_namespaces_only_when_allowed() -> None:
    objs = [obj("Namespace", "app", ""), obj("PersistentVolumeClaim", "data", "app")]
    rbac = access.rules(
        objs, "app", "gen-agent", {"persistent_volume_claims": True, "namespaces": True}
    )
    assert all("delete" in r["verbs"] for r in rbac["cluster_rules"])
    app = next(e for e in rbac["namespaces"] if e["namespace"] == "app")["rules"]
    assert any("persistentvolumeclaims" in r["resources"] and "delete" in r["verbs"] for r in app)


def test_rbac_uses_the_plural_and_scope_a_site_crd_declares() -> None:
    crd = obj(
        "CustomResourceDefinition",
        "widgets.example.com",
        "",
        "apiextensions.k8s.io/v1",
        spec={
            "group": "example.com",
            "scope": "Cluster",
            "names": {"kind": "Widget", "plural": "widgetz"},
        },
    )
    rbac = access.rules([crd, obj("Widget", "w", "", "example.com/v1")], "app", "gen-agent", {})
    assert {
        "apiGroups": ["example.com"],
        "resources": ["widgetz"],
        "resourceNames": ["w"],
        "verbs": ["get", "create", "patch", "delete"],
    } in rbac["cluster_rules"]


def test_plural_guesses_like_kubectl() -> None:
    assert [access.plural_of(k) for k in ("Ingress", "Policy", "Gateway", "Endpoints", "Box")] == [
        "ingresses",
        "policies",
        "gateways",
        "endpoints",
        "boxes",
    ]


# -- settings --------------------------------------------------------------------------------------


def test_durations_and_shares_parse_the_way_operators_write_them() -> None:
    assert [seconds(t) for t in ("30s", "5m", "1h", "250ms")] == [30, 300, 3600, 0.25]
    assert parse_share("30%") == pytest.approx(0.3) and parse_share("0.5") == 0.5
    with pytest.raises(GenError):
        parse_share("150%")
    with pytest.raises(GenError):
        seconds("soon")
    with pytest.raises(GenError, match=r"^--interval: '90' is not a positive duration: a unit is"):
        seconds("90")


def seconds(text: str) -> float:
    return units.positive_duration(text, "--interval").total_seconds()
