"""The agent against a real kube-apiserver (etcd + kube-apiserver started once per session).

Each test has namespaces of its own and a deploy branch of real SSH-signed commits; the test plays
the operator (admin client) and the controllers envtest lacks (it writes ``/status`` itself).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from generator.build.stages import agent_rbac as access
from generator.cli import app
from generator.core.objects import ON_IMMUTABLE_CHANGE
from generator.deliver.ferry.transport import DropDir
from generator.formats import encrypted_secret as encrypted
from generator.run.agent import apply, kube, plan, prune, recreate, status
from generator.run.agent.metrics import Metrics, serve
from generator.run.agent.settings import EnvelopeSource, PruneSettings
from tests.support.agent import (
    Counting,
    Crash,
    Poller,
    Severed,
    Site,
    configmap,
    deployment,
    service,
    unique,
    unreachable_kubeconfig,
)
from tests.support.ferry import write_allowed_signers
from tests.support.project import REPO

AGE_KEY = REPO / "tests" / "fixtures" / "age" / "cn-east-1.key"
"""The reference platform's test-only site key (tests/fixtures/age/README.md)."""


def cms(site: Site, *names: str, value: str = "1") -> list[dict[str, Any]]:
    return [configmap(n, site.namespace, value=value) for n in names]


def versions(site: Site, objs: list[dict[str, Any]]) -> dict[str, str]:
    """resourceVersion of each object, by name (to prove nothing was written)."""
    out = {}
    for o in objs:
        live = site.get(
            o["apiVersion"], o["kind"], o["metadata"]["name"], o["metadata"].get("namespace", "")
        )
        assert live is not None, o["metadata"]["name"]
        out[f"{o['kind']}/{o['metadata']['name']}"] = live["metadata"]["resourceVersion"]
    return out


def parent(site: Site) -> prune.Parent:
    return prune.read(site.admin, site.settings)


# -- apply -----------------------------------------------------------------------------------------


def test_first_apply_brings_an_empty_cluster_to_the_reference_site(site: Site) -> None:
    compiled = REPO / "compiled" / "cn-east-1"
    files = {
        p.relative_to(compiled).as_posix(): p.read_bytes()
        for p in compiled.rglob("*")
        if p.is_file()
    }
    site.branch.commit(files=files)
    result = site.agent(namespace="gen-agent", age_identity=AGE_KEY).reconcile()
    wanted = _compiled_objects(compiled)
    assert result.errors == () and result.reasons == (
        "health",
    )  # envtest runs no pods: workloads wait
    assert len(result.applied) == len(wanted) == result.members
    for obj in wanted:
        if encrypted.is_encrypted(
            obj
        ):  # the agent applies the Secret it decrypts, never the ciphertext
            obj = {"apiVersion": "v1", "kind": "Secret", "metadata": obj["metadata"]}
        live = site.get(
            obj["apiVersion"],
            obj["kind"],
            obj["metadata"]["name"],
            obj["metadata"].get("namespace", ""),
        )
        assert live is not None and live["metadata"]["labels"][plan.PART_OF] == plan.applyset_id(
            "gen-agent-applyset", "gen-agent"
        )
    # nor binds claims: the agent's own PersistentVolumeClaims stay Pending
    assert {u.split(" ")[0] for u, _ in result.unhealthy} == {
        "StatefulSet.apps",
        "Deployment.apps",
        "DaemonSet.apps",  # the monitoring stack's node-exporter
        "PersistentVolumeClaim",
    }


def test_a_second_agent_finds_the_reference_site_unchanged_without_a_dry_run(site: Site) -> None:
    compiled = REPO / "compiled" / "cn-east-1"
    files = {
        p.relative_to(compiled).as_posix(): p.read_bytes()
        for p in compiled.rglob("*")
        if p.is_file()
    }
    site.branch.commit(files=files)
    site.agent(namespace="gen-agent", age_identity=AGE_KEY).reconcile()
    counting = Counting(site.admin)  # a new agent remembers nothing: every object is compared
    result = site.agent(counting, namespace="gen-agent", age_identity=AGE_KEY).reconcile()
    assert result.applied == () and result.errors == ()
    assert counting.writes == 0 and "dry-run" not in counting.calls, counting.calls


def _compiled_objects(compiled: Path) -> list[dict[str, Any]]:
    from generator.core import yamlio

    return [
        o
        for p in sorted((compiled / "manifests").rglob("*.yaml"))
        for o in yamlio.load_rendered(p.read_text(), str(p))
    ]


def test_noop_reconcile_writes_nothing(site: Site) -> None:
    objs = [*cms(site, "a", "b"), service("web", site.namespace)]
    site.branch.commit(objs)
    assert site.agent().reconcile().ok
    before = versions(site, objs)
    counting = Counting(site.admin)
    result = site.agent(counting).reconcile()
    assert result.ok and result.applied == () and result.unchanged == 3
    assert counting.writes == 0 and "dry-run" not in counting.calls
    assert versions(site, objs) == before


def test_a_changed_field_is_applied_and_nothing_else(site: Site) -> None:
    site.branch.commit([*cms(site, "a", "b"), deployment("web", site.namespace)])
    site.agent().reconcile()
    before = versions(site, cms(site, "b"))
    changed = configmap("a", site.namespace, value="2")
    site.branch.commit(
        [changed, *cms(site, "b"), deployment("web", site.namespace, image="registry.local/app:2")]
    )
    result = site.agent().reconcile()
    assert sorted(o.name for o in result.applied) == ["a", "web"]
    assert site.get("v1", "ConfigMap", "a")["data"] == {"value": "2"}  # type: ignore[index]
    live = site.get("apps/v1", "Deployment", "web")
    assert live["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.local/app:2"  # type: ignore[index]
    assert versions(site, cms(site, "b")) == before


def test_one_bad_object_is_reported_and_does_not_block_the_others(site: Site) -> None:
    bad = configmap("Not_A_Valid_Name", site.namespace)
    site.branch.commit([*cms(site, "a"), bad, service("web", site.namespace)])
    result = site.agent().reconcile()
    assert result.result == "degraded" and result.reasons == ("apply",)
    assert [what for what, _ in result.errors] == [f"ConfigMap {site.namespace}/Not_A_Valid_Name"]
    assert "Invalid" in result.errors[0][1]
    assert (
        site.get("v1", "ConfigMap", "a") is not None
        and site.get("v1", "Service", "web") is not None
    )
    assert "Not_A_Valid_Name" in site.status()["errors"]


# -- prune -----------------------------------------------------------------------------------------


def test_a_removed_object_is_pruned_but_a_foreign_one_with_a_copied_label_is_not(
    site: Site,
) -> None:
    site.branch.commit(cms(site, "a", "b", "c"))
    site.agent().reconcile()
    intruder = configmap("intruder", site.namespace)
    intruder["metadata"]["labels"] = {plan.PART_OF: site.set_id}
    site.admin.apply(site.admin.resource("v1", "ConfigMap"), intruder, "someone-else")
    site.branch.commit(cms(site, "a", "c"))
    result = site.agent().reconcile()
    assert result.ok and [o.name for o in result.pruned] == ["b"]
    assert site.get("v1", "ConfigMap", "b") is None
    assert site.get("v1", "ConfigMap", "intruder") is not None
    assert {o.name for o in parent(site).members} == {"a", "c"}


def test_an_object_that_lost_our_label_is_released_not_deleted(site: Site) -> None:
    site.branch.commit(cms(site, "a", "b"))
    site.agent().reconcile()
    taken = site.get("v1", "ConfigMap", "b")
    assert taken is not None
    taken["metadata"]["labels"] = {"owner": "ops"}
    del taken["metadata"]["managedFields"]
    site.admin.apply(
        site.admin.resource("v1", "ConfigMap"), taken, "gen-agent"
    )  # the operator takes it over
    site.branch.commit(cms(site, "a"))
    result = site.agent().reconcile()
    assert result.pruned == () and site.get("v1", "ConfigMap", "b") is not None
    assert any("no longer labelled" in why for _, why in result.retained)
    assert {o.name for o in parent(site).members} == {"a"}


def test_the_mass_delete_guard_refuses_and_keeps_the_set(site: Site) -> None:
    names = [f"cm{i}" for i in range(10)]
    site.branch.commit(cms(site, *names))
    site.agent().reconcile()
    site.branch.commit(cms(site, "cm0", "cm1"))
    result = site.agent().reconcile()
    assert result.result == "degraded" and "prune-guard" in result.reasons
    assert "8 of the 10" in result.message and result.pruned == ()
    assert all(site.get("v1", "ConfigMap", n) is not None for n in names)
    assert len(parent(site).members) == 10
    assert site.status()["reasons"] == "prune-guard"
    allowed = site.agent(prune=PruneSettings(max_share=1.0)).reconcile()
    assert allowed.ok and len(allowed.pruned) == 8 and len(parent(site).members) == 2


def test_pvcs_and_namespaces_are_kept_unless_allowed(site: Site) -> None:
    extra = unique("extra")
    pvc = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data", "namespace": site.namespace},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": extra}}
    site.branch.commit([*cms(site, "a", "b", "c"), pvc, namespace])
    site.agent().reconcile()
    site.branch.commit(cms(site, "a", "b", "c"))
    result = site.agent().reconcile()
    assert result.pruned == () and site.get("v1", "PersistentVolumeClaim", "data") is not None
    assert {why.split(" ")[0] for _, why in result.retained} == {
        "PersistentVolumeClaim",
        "Namespace",
    }
    assert len(parent(site).members) == 5  # kept in the set: pruned once it is allowed


# -- removed fields --------------------------------------------------------------------------------


def _rich(site: Site) -> list[dict[str, Any]]:
    """A ConfigMap and a Deployment with something to remove at every level the issue names."""
    cm = configmap("conf", site.namespace, value="1", extra="2")
    cm["metadata"]["labels"] = {"team": "core"}
    cm["metadata"]["annotations"] = {"note": "keep me?"}
    web = deployment("web", site.namespace)
    pod = web["spec"]["template"]["spec"]
    pod["containers"][0]["env"] = [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
    pod["containers"][0]["ports"] = [{"containerPort": 80}, {"containerPort": 81}]
    pod["volumes"] = [{"name": "cache", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}]
    return [cm, web]


REMOVALS: dict[str, tuple[int, tuple[str | int, ...], Any]] = {
    # name: (object index, path of the removed field, how to remove it from the branch)
    "label": (0, ("metadata", "labels", "team"), lambda o: o["metadata"].pop("labels")),
    "annotation": (
        0,
        ("metadata", "annotations", "note"),
        lambda o: o["metadata"].pop("annotations"),
    ),
    "configmap key": (0, ("data", "extra"), lambda o: o["data"].pop("extra")),
    "env var": (
        1,
        ("spec", "template", "spec", "containers", 0, "env", 1),
        lambda o: o["spec"]["template"]["spec"]["containers"][0]["env"].pop(),
    ),
    "port": (
        1,
        ("spec", "template", "spec", "containers", 0, "ports", 1),
        lambda o: o["spec"]["template"]["spec"]["containers"][0]["ports"].pop(),
    ),
    "keyed list entry": (
        1,
        ("spec", "template", "spec", "volumes", 1),
        lambda o: o["spec"]["template"]["spec"]["volumes"].pop(),
    ),
}


def _at(obj: Any, path: tuple[str | int, ...]) -> Any:
    for step in path:
        if isinstance(step, int):
            if not isinstance(obj, list) or step >= len(obj):
                return None
        elif not isinstance(obj, dict) or step not in obj:
            return None
        obj = obj[step]
    return obj


@pytest.mark.parametrize("removal", sorted(REMOVALS))
def test_a_field_removed_from_the_branch_is_removed_from_the_cluster(
    site: Site, removal: str
) -> None:
    index, path, remove = REMOVALS[removal]
    objs = _rich(site)
    site.branch.commit(objs)
    assert site.agent().reconcile().errors == ()
    name = objs[index]["metadata"]["name"]
    live = site.get(objs[index]["apiVersion"], objs[index]["kind"], name)
    assert _at(live, path) is not None
    remove(objs[index])
    site.branch.commit(objs)
    result = site.agent().reconcile()
    assert [o.name for o in result.applied] == [name] and result.errors == ()
    assert _at(site.get(objs[index]["apiVersion"], objs[index]["kind"], name), path) is None
    counting = Counting(site.admin)
    again = site.agent(counting).reconcile()
    assert again.applied == () and counting.writes == 0 and "dry-run" not in counting.calls


def test_a_removed_field_another_manager_also_owns_is_left_alone_and_not_retried(
    site: Site,
) -> None:
    site.branch.commit([configmap("conf", site.namespace, value="1", extra="2")])
    site.agent().reconcile()
    res = site.admin.resource("v1", "ConfigMap")
    site.admin.apply(res, configmap("conf", site.namespace, extra="2"), "ops-team")
    site.branch.commit([configmap("conf", site.namespace, value="1")])
    result = site.agent().reconcile()
    live = site.get("v1", "ConfigMap", "conf")
    assert live is not None and live["data"] == {"value": "1", "extra": "2"}
    assert [o.name for o in result.applied] == ["conf"]  # gave up its claim on extra, nothing else
    counting = Counting(site.admin)
    again = site.agent(counting).reconcile()
    assert again.applied == () and counting.writes == 0 and "dry-run" not in counting.calls


# -- immutable fields ------------------------------------------------------------------------------


def _statefulset(namespace: str, size: str) -> dict[str, Any]:
    web = deployment("db", namespace)
    web["kind"] = "StatefulSet"
    web["spec"]["serviceName"] = "db"
    web["spec"]["volumeClaimTemplates"] = [
        {
            "metadata": {"name": "data"},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": size}},
            },
        }
    ]
    return web


def _reselected(namespace: str) -> dict[str, Any]:
    web = deployment("db", namespace)
    web["spec"]["selector"]["matchLabels"]["tier"] = "db"
    web["spec"]["template"]["metadata"]["labels"]["tier"] = "db"
    return web


def _job(namespace: str, image: str) -> dict[str, Any]:
    pod = deployment("db", namespace, image=image)["spec"]["template"]
    pod["spec"]["restartPolicy"] = "Never"
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "db", "namespace": namespace},
        "spec": {"template": pod},
    }


Make = Callable[[str], dict[str, Any]]
IMMUTABLE: dict[str, tuple[Make, Make, str, str]] = {
    "statefulset volume size": (
        lambda ns: _statefulset(ns, "10Gi"),
        lambda ns: _statefulset(ns, "20Gi"),
        "immutable field spec changed; a StatefulSet's spec beyond replicas",
        "delete statefulset db --cascade=orphan",
    ),
    "deployment selector": (
        lambda ns: deployment("db", ns),
        _reselected,
        "immutable field spec.selector changed; this field cannot change in place",
        "delete deployment db) after checking nothing is lost",
    ),
    "job template": (
        lambda ns: _job(ns, "registry.local/app:1"),
        lambda ns: _job(ns, "registry.local/app:2"),
        "immutable field spec.template changed; this field cannot change in place",
        "delete job db) after checking nothing is lost",
    ),
}


@pytest.mark.parametrize("change", sorted(IMMUTABLE))
def test_an_immutable_change_is_reported_with_the_field_and_what_to_do_and_nothing_deleted(
    site: Site, change: str
) -> None:
    before, after, field_text, how = IMMUTABLE[change]
    site.branch.commit([before(site.namespace), *cms(site, "a")])
    assert site.agent().reconcile().errors == ()
    api_version, kind = before(site.namespace)["apiVersion"], before(site.namespace)["kind"]
    uid = site.get(api_version, kind, "db")["metadata"]["uid"]  # type: ignore[index]
    site.branch.commit([after(site.namespace), *cms(site, "a", value="2")])
    result = site.agent().reconcile()
    assert result.reasons[0] == "apply" and len(result.errors) == 1
    what, why = result.errors[0]
    assert what == f"{kind}.{api_version.split('/')[0]} {site.namespace}/db"
    assert why.startswith(field_text) and how in why, why
    assert site.get(api_version, kind, "db")["metadata"]["uid"] == uid  # type: ignore[index]
    assert site.get("v1", "ConfigMap", "a")["data"] == {"value": "2"}  # type: ignore[index]


class Collector(Poller):
    """The garbage collector envtest lacks, for one object: once it is being deleted, it drops
    the ``orphan`` finalizer (there are no pods to orphan), so the delete completes."""

    def __init__(self, site: Site, api_version: str, kind: str, name: str) -> None:
        super().__init__()
        self.site, self.res, self.name = site, site.admin.resource(api_version, kind), name
        self.orphaned: list[str] = []

    def tick(self) -> None:
        live = self.site.admin.get(self.res, self.site.namespace, self.name)
        if live is None or not live["metadata"].get("deletionTimestamp"):
            return
        self.orphaned += live["metadata"].get("finalizers") or []
        self.site.admin._request(
            "PATCH",
            self.res.path(self.site.namespace, self.name),
            body={"metadata": {"finalizers": None}},
            content_type="application/merge-patch+json",
        )


def _storage_class(site: Site, expandable: bool) -> str:
    name = unique("sc")
    site.admin.apply(
        site.admin.resource("storage.k8s.io/v1", "StorageClass"),
        {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {"name": name},
            "provisioner": "example.com/none",
            "allowVolumeExpansion": expandable,
        },
        "test-setup",
    )
    return name


def _opted_in(namespace: str, size: str, storage_class: str) -> dict[str, Any]:
    sts = _statefulset(namespace, size)
    sts["metadata"]["annotations"] = {ON_IMMUTABLE_CHANGE: "recreate"}
    sts["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"] = storage_class
    return sts


def _claims(site: Site, storage_class: str, size: str) -> dict[str, str]:
    """The bound PVCs the StatefulSet controller would have made for two replicas (and one of
    another StatefulSet with the same labels); their uids by name."""
    res = site.admin.resource("v1", "PersistentVolumeClaim")
    uids = {}
    for name in ("data-db-0", "data-db-1", "data-dbx-0"):
        pvc = site.admin.create(
            res,
            site.namespace,
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {"name": name, "namespace": site.namespace, "labels": {"app": "db"}},
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "storageClassName": storage_class,
                    "resources": {"requests": {"storage": size}},
                },
            },
        )
        pvc["status"] = {"phase": "Bound", "capacity": {"storage": size}}
        site.admin.update_status(res, pvc)
        uids[name] = pvc["metadata"]["uid"]
    return uids


def _sizes(site: Site) -> dict[str, str]:
    res = site.admin.resource("v1", "PersistentVolumeClaim")
    return {
        p["metadata"]["name"]: p["spec"]["resources"]["requests"]["storage"]
        for p in site.admin.list(res, site.namespace)
    }


@pytest.mark.parametrize("expandable", [True, False], ids=["expandable", "not-expandable"])
def test_an_opted_in_statefulset_is_recreated_orphaning_its_pvcs_and_grows_them_when_allowed(
    site: Site, expandable: bool
) -> None:
    sc = _storage_class(site, expandable)
    site.branch.commit([_opted_in(site.namespace, "10Gi", sc), *cms(site, "a")])
    assert site.agent().reconcile().errors == ()
    uid = site.get("apps/v1", "StatefulSet", "db")["metadata"]["uid"]  # type: ignore[index]
    claims = _claims(site, sc, "10Gi")
    site.branch.commit([_opted_in(site.namespace, "20Gi", sc), *cms(site, "a", value="2")])
    with Collector(site, "apps/v1", "StatefulSet", "db") as collector:
        result = site.agent().reconcile()
    assert result.errors == () and collector.orphaned == ["orphan"]
    live = site.get("apps/v1", "StatefulSet", "db")
    assert live is not None and live["metadata"]["uid"] != uid
    template = live["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]
    assert template["storage"] == "20Gi"
    res = site.admin.resource("v1", "PersistentVolumeClaim")
    assert {n: site.admin.get(res, site.namespace, n)["metadata"]["uid"] for n in claims} == claims  # type: ignore[index]
    ns, grown = site.namespace, "20Gi" if expandable else "10Gi"
    assert _sizes(site) == {"data-db-0": grown, "data-db-1": grown, "data-dbx-0": "10Gi"}
    recreated = (
        f"re-created StatefulSet {ns}/db (deleted with propagationPolicy Orphan: its pods and "
        "PVCs were kept)"
    )
    if expandable:
        pvcs = [f"grew PVC {ns}/data-db-{i} from 10Gi to 20Gi" for i in (0, 1)]
    else:
        pvcs = [
            f"PVC {ns}/data-db-{i} needs a manual step to grow from 10Gi to 20Gi: its "
            f"StorageClass {sc} does not set allowVolumeExpansion: move the data to a larger "
            "volume by hand"
            for i in (0, 1)
        ]
    assert result.steps == (recreated, *pvcs)
    assert site.get("v1", "ConfigMap", "a")["data"] == {"value": "2"}  # type: ignore[index]
    events = site.admin.list(site.admin.resource("v1", "Event"), site.agent_namespace)
    assert recreated in [e["message"] for e in events if e["reason"] == "Recreated"]
    again = site.agent().reconcile()
    assert again.errors == () and again.steps == () and again.applied == ()


def test_the_recreate_opt_in_on_another_kind_is_reported_and_nothing_deleted(site: Site) -> None:
    def annotated(obj: dict[str, Any]) -> dict[str, Any]:
        obj["metadata"]["annotations"] = {ON_IMMUTABLE_CHANGE: "recreate"}
        return obj

    site.branch.commit([annotated(deployment("db", site.namespace))])
    site.agent().reconcile()
    uid = site.get("apps/v1", "Deployment", "db")["metadata"]["uid"]  # type: ignore[index]
    site.branch.commit([annotated(_reselected(site.namespace))])
    result = site.agent().reconcile()
    ((_, why),) = result.errors
    assert why.startswith("immutable field spec.selector changed; this field cannot change")
    assert why.endswith("(the recreate policy covers StatefulSets only)") and result.steps == ()
    assert site.get("apps/v1", "Deployment", "db")["metadata"]["uid"] == uid  # type: ignore[index]


def _grant(site: Site, objs: list[dict[str, Any]]) -> None:
    """Apply, as an administrator, exactly the RBAC the compile stage computes for ``objs``."""
    rbac = access.rules(objs, site.namespace, site.agent_namespace, {})
    subject = {"kind": "ServiceAccount", "name": "gen-agent", "namespace": site.agent_namespace}
    name = access.cluster_role_name(site.agent_namespace)
    grants: list[dict[str, Any]] = [
        {"kind": "ClusterRole", "metadata": {"name": name}, "rules": rbac["cluster_rules"]},
        {
            "kind": "ClusterRoleBinding",
            "metadata": {"name": name},
            "roleRef": {"apiGroup": access.RBAC_GROUP, "kind": "ClusterRole", "name": name},
            "subjects": [subject],
        },
    ]
    for entry in rbac["namespaces"]:
        meta = {"name": "gen-agent", "namespace": entry["namespace"]}
        grants += [
            {"kind": "Role", "metadata": meta, "rules": entry["rules"]},
            {
                "kind": "RoleBinding",
                "metadata": meta,
                "roleRef": {"apiGroup": access.RBAC_GROUP, "kind": "Role", "name": "gen-agent"},
                "subjects": [subject],
            },
        ]
    for grant in grants:
        grant["apiVersion"] = f"{access.RBAC_GROUP}/v1"
        site.admin.apply(site.admin.resource(grant["apiVersion"], grant["kind"]), grant, "rbac")


def test_the_recreate_policy_runs_with_exactly_the_rbac_the_opt_in_grants(
    site: Site, control_plane: Any
) -> None:
    sc = _storage_class(site, True)
    after = _opted_in(site.namespace, "20Gi", sc)
    _grant(site, [after])
    identity = control_plane.kubeconfig_for(
        f"system:serviceaccount:{site.agent_namespace}:gen-agent",
        ["system:serviceaccounts", f"system:serviceaccounts:{site.agent_namespace}"],
    )
    as_agent = kube.connect(identity)
    site.branch.commit([_opted_in(site.namespace, "10Gi", sc)])
    assert site.agent(as_agent).reconcile().errors == ()
    _claims(site, sc, "10Gi")
    site.branch.commit([after])
    with Collector(site, "apps/v1", "StatefulSet", "db"):
        result = site.agent(as_agent).reconcile()
    assert result.errors == () and len(result.steps) == 3, result.steps
    assert _sizes(site) == {"data-db-0": "20Gi", "data-db-1": "20Gi", "data-dbx-0": "10Gi"}
    pvcs = as_agent.resource("v1", "PersistentVolumeClaim")
    with pytest.raises(kube.Forbidden):
        as_agent.delete(pvcs, site.namespace, "data-db-0", "", "")
    with pytest.raises(kube.Forbidden):
        as_agent.get(as_agent.resource("storage.k8s.io/v1", "StorageClass"), "", "standard")


def test_an_opted_in_statefulset_is_not_recreated_while_the_orphaning_delete_hangs(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(recreate, "GONE_TIMEOUT", 1.0)
    sc = _storage_class(site, True)
    site.branch.commit([_opted_in(site.namespace, "10Gi", sc)])
    site.agent().reconcile()
    claims = _claims(site, sc, "10Gi")
    site.branch.commit([_opted_in(site.namespace, "20Gi", sc)])
    result = site.agent().reconcile()  # no garbage collector: the orphan finalizer stays
    ((what, why),) = result.errors
    assert what == f"StatefulSet.apps {site.namespace}/db"
    assert why == (
        "recreating after an immutable change failed: deleted with propagationPolicy Orphan but "
        "still there after 1s (finalizers ['orphan']): is the garbage collector running? The "
        "agent re-creates it once it is gone"
    )
    assert _sizes(site) == {n: "10Gi" for n in claims} and result.steps == ()


# -- drift, signatures, crashes --------------------------------------------------------------------


def test_drift_is_corrected_on_the_next_reconcile_without_a_new_commit(site: Site) -> None:
    site.branch.commit([*cms(site, "a", "b")])
    site.agent().reconcile()
    res = site.admin.resource("v1", "ConfigMap")
    site.admin.apply(res, configmap("a", site.namespace, value="hand-edited"), "kubectl-edit")
    b = site.get("v1", "ConfigMap", "b")
    assert b is not None
    site.admin.delete(res, site.namespace, "b", b["metadata"]["uid"], "")
    result = site.agent().reconcile()
    assert sorted(o.name for o in result.applied) == ["a", "b"]
    assert site.get("v1", "ConfigMap", "a")["data"] == {"value": "1"}  # type: ignore[index]
    assert site.get("v1", "ConfigMap", "b") is not None


def test_one_agent_remembers_what_held_its_commit_but_still_sees_a_hand_edit(site: Site) -> None:
    site.branch.commit(cms(site, "a", "b"))
    counting = Counting(site.admin)
    agent = site.agent(counting)
    agent.reconcile()
    counting.calls.clear()
    assert agent.reconcile().unchanged == 2 and counting.writes == 0
    res = site.admin.resource("v1", "ConfigMap")
    site.admin.apply(res, configmap("a", site.namespace, value="hand-edited"), "kubectl-edit")
    result = agent.reconcile()
    assert [o.name for o in result.applied] == ["a"]
    assert site.get("v1", "ConfigMap", "a")["data"] == {"value": "1"}  # type: ignore[index]


def test_an_unsigned_tip_is_refused_and_the_cluster_left_as_it_is(site: Site) -> None:
    site.branch.commit(cms(site, "a"))
    site.agent().reconcile()
    before = versions(site, cms(site, "a"))
    site.branch.commit(cms(site, "a", value="evil"), signed=False)
    agent = site.agent()
    result = agent.reconcile()
    assert result.result == "refused" and "not signed" in result.message
    assert versions(site, cms(site, "a")) == before
    assert site.status()["result"] == "refused"
    assert "gen_agent_signature_refusals_total 1.0" in agent.metrics.text().decode()


def test_a_tip_signed_by_an_unknown_key_is_refused(site: Site) -> None:
    site.branch.commit(cms(site, "a"), key=site.branch.keys.stranger)
    result = site.agent().reconcile()
    assert result.result == "refused" and "does not trust" in result.message
    assert site.get("v1", "ConfigMap", "a") is None


def test_an_interval_reconcile_reads_and_verifies_an_unchanged_tip_once(
    site: Site, tmp_path: Path
) -> None:
    signers = tmp_path / "allowed_signers"
    signers.write_bytes(site.settings.allowed_signers.read_bytes())
    site.branch.commit(cms(site, "a"))
    agent = site.agent(allowed_signers=signers)
    assert agent.reconcile().result == "synced"
    loaded = agent._loaded
    assert agent.reconcile().unchanged == 1 and agent._loaded is loaded
    # The signers change (a key revoked): the same tip is checked again, and refused.
    write_allowed_signers(signers, site.branch.keys.stranger)
    result = agent.reconcile()
    assert result.result == "refused" and "not signed by an allowed signer" in result.message
    assert agent.reconcile().result == "refused"
    site.branch.commit(cms(site, "a", "b"))
    signers.write_bytes(site.settings.allowed_signers.read_bytes())
    assert [o.name for o in agent.reconcile().applied] == ["b"]
    assert agent._loaded is not loaded


def test_a_rewound_branch_is_refused(site: Site) -> None:
    first = site.branch.commit(cms(site, "a"))
    site.branch.commit(cms(site, "a", "b"))
    site.agent().reconcile()
    site.branch.tip = None  # a new history, even though signed: a rollback
    site.branch.commit(cms(site, "a"))
    result = site.agent().reconcile()
    assert result.result == "refused" and "does not descend" in result.message
    assert site.get("v1", "ConfigMap", "b") is not None and first


def test_a_crash_mid_apply_converges_on_the_next_run(site: Site) -> None:
    site.branch.commit(cms(site, "a", "b", "c"))
    site.agent().reconcile()
    site.branch.commit([*cms(site, "a"), *cms(site, "d", "e", "f", value="2")])
    with pytest.raises(Crash):
        site.agent(
            Counting(site.admin, crash_after=1)
        ).reconcile()  # the parent was widened, then one apply
    widened = {o.name for o in parent(site).members}
    assert widened == {"a", "b", "c", "d", "e", "f"}
    result = site.agent().reconcile()
    assert result.ok and sorted(o.name for o in result.pruned) == ["b", "c"]
    assert {o.name for o in parent(site).members} == {"a", "d", "e", "f"}
    assert all(site.get("v1", "ConfigMap", n) is not None for n in "adef")


# -- health, status, metrics -----------------------------------------------------------------------


def test_health_wait_reads_the_status_the_controller_writes(site: Site) -> None:
    site.branch.commit([deployment("web", site.namespace, replicas=2)])
    done = threading.Event()

    def controller() -> None:  # plays kube-controller-manager: reports the rollout complete
        res = site.admin.resource("apps/v1", "Deployment")
        while not done.is_set():
            live = site.admin.get(res, site.namespace, "web")
            if live is not None:
                live["status"] = {
                    "observedGeneration": live["metadata"]["generation"],
                    "replicas": 2,
                    "updatedReplicas": 2,
                    "readyReplicas": 2,
                    "availableReplicas": 2,
                }
                site.admin.update_status(res, live)
                return
            time.sleep(0.05)

    thread = threading.Thread(target=controller)
    thread.start()
    try:
        result = site.agent(health_timeout=60.0).reconcile()
    finally:
        done.set()
        thread.join()
    assert result.ok and result.unhealthy == ()


def test_an_unhealthy_rollout_is_reported_after_the_timeout(site: Site) -> None:
    site.branch.commit([deployment("web", site.namespace)])
    result = site.agent().reconcile()
    assert result.result == "degraded" and result.reasons == ("health",)
    assert "not yet observed" in site.status()["unhealthy"]


def test_the_health_wait_ends_at_its_timeout_not_a_poll_later(site: Site) -> None:
    site.branch.commit([deployment("web", site.namespace)])
    result = site.agent(health_timeout=1.0, health_poll=30.0).reconcile()
    assert result.result == "degraded" and result.reasons == ("health",)
    assert 1.0 <= result.duration < 4.0, result.duration  # a whole poll past it would be 30 s


def _commit_info(metrics: Metrics, name: str) -> list[str]:
    prefix = f"gen_agent_{name}_commit_info{{"
    return [line for line in metrics.text().decode().splitlines() if line.startswith(prefix)]


def test_a_commit_with_a_failed_object_is_attempted_but_not_named_applied(site: Site) -> None:
    good = site.branch.commit(cms(site, "a"))
    site.agent().reconcile()
    bad = site.branch.commit([*cms(site, "a"), configmap("Not_Valid", site.namespace)])
    agent = site.agent()
    result = agent.reconcile()
    assert result.reasons == ("apply",) and not result.complete
    assert json.loads(status.as_json(result))["complete"] is False
    branch = 'branch="refs/heads/deploy/test"'
    assert _commit_info(agent.metrics, "attempted") == [
        f'gen_agent_attempted_commit_info{{{branch},commit="{bad}"}} 1.0'
    ]
    assert _commit_info(agent.metrics, "applied") == []  # this process never applied one whole
    assert site.status()["commit"] == bad and site.status()["lastAppliedCommit"] == good
    fixed = site.branch.commit(cms(site, "a", "b"))
    assert agent.reconcile().complete
    assert _commit_info(agent.metrics, "applied") == [
        f'gen_agent_applied_commit_info{{{branch},commit="{fixed}"}} 1.0'
    ]
    assert site.status()["commit"] == site.status()["lastAppliedCommit"] == fixed


def test_status_events_and_metrics_report_what_happened(site: Site) -> None:
    commit = site.branch.commit(cms(site, "a"))
    agent = site.agent()
    metrics = Metrics(60)
    agent.metrics = metrics
    server = serve(metrics, "127.0.0.1", 0, agent.alive)
    try:
        agent.reconcile()
        text = (
            urllib.request.urlopen(f"http://127.0.0.1:{server.server_address[1]}/metrics")
            .read()
            .decode()
        )
        healthz = urllib.request.urlopen(
            f"http://127.0.0.1:{server.server_address[1]}/healthz"
        ).status
    finally:
        server.shutdown()
    assert (
        f'gen_agent_applied_commit_info{{branch="refs/heads/deploy/test",commit="{commit}"}} 1.0'
        in text
    )
    assert "gen_agent_objects_applied_total 1.0" in text and "gen_agent_sync_ok 1.0" in text
    assert healthz == 200
    status = site.status()
    assert status["result"] == "synced" and status["lastAppliedCommit"] == commit
    events = site.admin.list(site.admin.resource("v1", "Event"), site.agent_namespace)
    assert {e["reason"] for e in events} >= {"Applied", "Synced"}


def test_the_parent_is_one_kubectl_recognises(
    site: Site, control_plane: Any, tmp_path: Path
) -> None:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed")
    manifest = tmp_path / "cm.yaml"
    manifest.write_text(json.dumps(configmap("k", site.namespace)))
    name = unique("kubectl-set")
    subprocess.run(
        [
            "kubectl",
            "--kubeconfig",
            str(control_plane.kubeconfig),
            "apply",
            "--server-side",
            "--prune",
            f"--applyset=configmaps/{name}",
            "-n",
            site.namespace,
            "-f",
            str(manifest),
        ],
        check=True,
        capture_output=True,
        env={"KUBECTL_APPLYSET": "true", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    made = site.get("v1", "ConfigMap", name)
    assert made is not None and made["metadata"]["labels"][plan.ID_LABEL] == plan.applyset_id(
        name, site.namespace
    )


# -- sources ---------------------------------------------------------------------------------------


def test_envelopes_dropped_by_the_gatekeeper_are_imported_and_applied(
    site: Site, tmp_path: Path
) -> None:
    from generator.deliver.ferry import pack as packer

    site.branch.site = "cn-test"
    site.branch.commit(cms(site, "from-envelope"))
    drop = tmp_path / "inbox"
    drop.mkdir()
    keys = site.branch.keys
    packer.pack(
        packer.Request("cn-test", False, None),
        drop,
        packer.Settings(site.branch.path, keys.release.private, keys.release.principal),
    )
    result = site.agent(site="cn-test", source=EnvelopeSource(DropDir(drop))).reconcile()
    assert result.ok and [o.name for o in result.applied] == ["from-envelope"]
    assert any(n.startswith("imported") for n in result.notes) and list(
        (drop / "imported").iterdir()
    )


def test_an_unreachable_source_fails_the_reconcile_and_says_why(site: Site, tmp_path: Path) -> None:
    from generator.run.agent.settings import GitSource

    result = site.agent(source=GitSource(str(tmp_path / "nowhere.git"))).reconcile()
    assert (
        result.result == "failed"
        and result.reasons == ("source",)
        and "nowhere.git" in result.message
    )


# -- least privilege -------------------------------------------------------------------------------


def test_the_agent_as_its_own_service_account_applies_the_site_with_exactly_its_rbac(
    site: Site, control_plane: Any, tmp_path: Path
) -> None:
    compiled = _compile_site_into(tmp_path / "project", site.namespace, site.agent_namespace)
    objs = _compiled_objects(compiled)
    rbac_kinds = {
        "Namespace",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
    }
    bootstrap = [o for o in objs if o["kind"] in rbac_kinds]
    for obj in sorted(
        bootstrap,
        key=lambda o: plan.KIND_ORDER.index(o["kind"]) if o["kind"] in plan.KIND_ORDER else -1,
    ):
        site.admin.apply(
            site.admin.resource(obj["apiVersion"], obj["kind"]), obj, "bootstrap-admin"
        )
    files = {
        p.relative_to(compiled).as_posix(): p.read_bytes()
        for p in compiled.rglob("*")
        if p.is_file()
    }
    site.branch.commit(files=files)
    identity = control_plane.kubeconfig_for(
        f"system:serviceaccount:{site.agent_namespace}:gen-agent",
        ["system:serviceaccounts", f"system:serviceaccounts:{site.agent_namespace}"],
    )
    as_agent = kube.connect(identity)
    result = site.agent(as_agent, age_identity=AGE_KEY).reconcile()
    assert result.errors == (), result.errors
    assert len(result.applied) + result.unchanged == len(objs)
    assert site.status()["lastAppliedCommit"] == site.branch.tip
    again = site.agent(as_agent, age_identity=AGE_KEY).reconcile()
    assert again.errors == () and again.applied == ()
    with pytest.raises(kube.Forbidden):
        as_agent.list(as_agent.resource("v1", "Secret"), "kube-system")
    with pytest.raises(kube.Forbidden):
        as_agent.get(as_agent.resource("v1", "Namespace"), "", "kube-system")


def _compile_site_into(root: Path, namespace: str, agent_namespace: str) -> Path:
    """Compile cn-east-1 of a copy of the reference platform with its namespaces renamed."""
    from generator.build import pipeline as compiler

    for name in ("inventory", "components", "schemas", "secrets"):
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, root / name)
    target = root / "inventory" / "targets" / "cn-east-1.yml"
    text = target.read_text().replace(
        "parameters:\n  site:\n", f"parameters:\n  site:\n    namespace: {namespace}\n", 1
    )
    # The monitoring stack in a namespace of its own, its NodePort left to the server: another
    # test's real apply of the site holds 31700.
    text = text.replace(
        "    monitoring-stack:\n", f"    monitoring-stack:\n      namespace: {namespace}-mon\n", 1
    ).replace("        node_port: 31700\n", "", 1)
    target.write_text(text)
    common = root / "inventory" / "classes" / "common.yml"
    common.write_text(
        common.read_text().replace(
            "      namespace: gen-agent\n", f"      namespace: {agent_namespace}\n", 1
        )
    )
    compiler.run(compiler.Options(root, ("cn-east-1",), use_cache=False))
    compiled = root / "compiled" / "cn-east-1"
    role = (
        compiled
        / "manifests"
        / "_cluster"
        / f"clusterrole-{access.cluster_role_name(agent_namespace)}.yaml"
    )
    assert role.is_file()
    return compiled


# -- the command line ------------------------------------------------------------------------------


# -- an API server that goes away ------------------------------------------------------------------


def test_an_api_server_lost_mid_round_ends_it_in_seconds_with_one_message(
    site: Site, control_plane: Any, tmp_path: Path
) -> None:
    names = [f"cm{i:02}" for i in range(40)]
    site.branch.commit(cms(site, *names))
    dead = kube.connect(unreachable_kubeconfig(control_plane, tmp_path))
    severed = Severed(site.admin, dead)
    result = site.agent(severed).reconcile()
    assert result.result == "failed" and result.reasons == ("api",)
    assert result.message.startswith(
        f"the API server is unavailable ({apply.DOWN_AFTER} objects in a row failed after "
        "retries): PATCH /api/v1/namespaces/"
    )
    assert (
        result.message.endswith("not attempted, nothing pruned; retrying with backoff")
        and "the API server cannot be reached" in result.message
    )
    attempted = severed.calls["apply"] - 1  # the first apply widened the parent, before the cut
    assert attempted <= site.settings.workers + apply.DOWN_AFTER
    assert f"stopped with {len(names) - attempted} of {len(names)} object(s)" in result.message
    assert result.duration < 15, result.duration  # one retry cycle per object would be ~40 s
    assert result.status_error.startswith(
        "cannot record status: GET /api/v1/namespaces/"  # discovery was cached before the cut
    )
    assert json.loads(status.as_json(result))["status_error"] == result.status_error
    assert site.get("v1", "ConfigMap", "cm39") is None and site.status() == {}


def test_a_status_that_could_not_be_written_is_reported_by_the_next_successful_run(
    site: Site, control_plane: Any, tmp_path: Path
) -> None:
    site.branch.commit(cms(site, "a"))
    dead = kube.connect(unreachable_kubeconfig(control_plane, tmp_path))
    lost = site.agent(dead).reconcile()
    assert lost.result == "failed" and lost.reasons == ("api",)
    assert lost.message.startswith(
        "cannot read the ApplySet parent: GET /api/v1: the API server cannot be reached: "
    )
    pending = site.settings.state_dir / status.UNRECORDED
    missed = pending.read_text()
    assert missed.endswith(
        f"failed, commit -, 0 applied, 0 unchanged, 0 pruned in "
        f"{lost.duration:.2f}s: {lost.message}\n"
    )
    result = site.agent().reconcile()
    assert result.ok and result.status_error == ""
    assert site.status()["unrecorded"] == missed and not pending.exists()


def test_gen_agent_run_once_json_reports_a_status_it_could_not_write(
    site: Site, control_plane: Any, tmp_path: Path
) -> None:
    site.branch.commit(cms(site, "cli"))
    env = {
        "GEN_AGENT_SITE": "test",
        "GEN_AGENT_GIT_URL": str(site.branch.path),
        "GEN_ALLOWED_SIGNERS": str(site.settings.allowed_signers),
        "GEN_AGENT_STATE": str(tmp_path / "cli-state"),
        "GEN_AGENT_KUBECONFIG": str(unreachable_kubeconfig(control_plane, tmp_path)),
        "GEN_AGENT_NAMESPACE": site.agent_namespace,
    }
    out = CliRunner().invoke(app, ["agent", "run", "--once", "--format", "json"], env=env)
    assert out.exit_code == 1, out.output
    report = json.loads(out.stdout)
    assert report["result"] == "failed" and report["reasons"] == ["api"]
    assert report["status_error"].startswith(
        "cannot record status: GET /api/v1: the API server cannot be reached: "
    )
    assert (tmp_path / "cli-state" / status.UNRECORDED).is_file()


def test_gen_agent_run_once_reconciles_and_exits_by_result(
    site: Site, control_plane: Any, tmp_path: Path
) -> None:
    site.branch.commit(cms(site, "cli"))
    env = {
        "GEN_AGENT_SITE": "test",
        "GEN_AGENT_GIT_URL": str(site.branch.path),
        "GEN_ALLOWED_SIGNERS": str(site.settings.allowed_signers),
        "GEN_AGENT_STATE": str(tmp_path / "cli-state"),
        "GEN_AGENT_KUBECONFIG": str(control_plane.kubeconfig),
        "GEN_AGENT_NAMESPACE": site.agent_namespace,
    }
    ok = CliRunner().invoke(app, ["agent", "run", "--once", "--format", "json"], env=env)
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["result"] == "synced"
    site.branch.commit(cms(site, "cli", value="2"), signed=False)
    refused = CliRunner().invoke(app, ["agent", "run", "--once"], env=env)
    assert refused.exit_code == 1 and "refused" in refused.output


# -- n9e -------------------------------------------------------------------------------------------


def test_the_commits_n9e_rules_are_synced_when_configured(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    from generator.run.agent.settings import N9eSettings
    from generator.run.n9e import client as n9e_client
    from tests.support.n9e import ApiDouble, add_site_datasource

    n9e_dir = REPO / "compiled" / "cn-east-1" / "n9e"
    files = {
        **_site_files(cms(site, "a")),
        **{f"n9e/{p.name}": p.read_bytes() for p in n9e_dir.iterdir()},
    }
    site.branch.commit(files=files)
    double = ApiDouble()
    add_site_datasource(double)  # apply refuses rules that select no datasource
    double.login = lambda: None  # type: ignore[attr-defined]
    monkeypatch.setattr(n9e_client, "Client", lambda settings, credentials: double)
    result = site.agent(n9e=N9eSettings("http://n9e.invalid:17000", token="t")).reconcile()
    assert result.ok, result.errors
    names = {r["name"] for rules in double.rules.values() for r in rules}
    assert {
        "gen-agent: sync stale",
        "gen-agent: sync failing",
        "gen-agent: unsigned commit refused",
    } <= names
    writes = double.writes
    assert site.agent(n9e=N9eSettings("http://n9e.invalid:17000", token="t")).reconcile().ok
    assert double.writes == writes  # nothing changed, nothing written


def _site_files(objs: list[dict[str, Any]]) -> dict[str, bytes]:
    from tests.support.agent import site_files

    return site_files(objs)


# -- secrets ---------------------------------------------------------------------------------------


def test_an_encrypted_secret_the_agent_cannot_open_is_reported_and_kept_in_the_set(
    site: Site,
) -> None:
    sealed = encrypted.build("db", site.namespace, {}, "Opaque", {"password": "not age ciphertext"})
    site.branch.commit([*cms(site, "a"), sealed])
    result = site.agent().reconcile()
    assert result.result == "degraded" and result.reasons == ("apply",)
    assert [what for what, _ in result.errors] == [f"Secret {site.namespace}/db"]
    assert (
        "GEN_AGENT_AGE_IDENTITY" in result.errors[0][1]
        and "not age ciphertext" not in result.message
    )
    assert site.get("v1", "ConfigMap", "a") is not None and site.get("v1", "Secret", "db") is None
    assert {o.name for o in parent(site).members} == {"a", "db"}
