"""The whole air-gap chain for the reference site, one hop after the other, with real parts only.

edit an inventory value -> ``gen compile`` -> ``gen diff`` shows it -> commit -> ``gen publish``
(signed) -> ``gen ferry pack`` -> copy to a drop folder -> ``gen agent run --once`` importing the
envelope -> the object changed in a real kube-apiserver and nothing else written -> the site's
alert rules in a real n9e (the agent's n9e sync) -> a second run changes nothing anywhere.
Every ``gen`` step is the CLI in a subprocess. Its wall time is printed (goal: under 60 s).

The site is cn-east-1 of a copy of the reference platform, its two namespaces renamed so that it
cannot meet another test's objects in the session's control plane.

Health, honestly: envtest has no kubelet and no controllers, so no workload ever rolls out by
itself and no claim is ever bound. The test plays kube-controller-manager: a thread writes a
completed rollout to the ``/status`` subresource of each of the site's Deployments and StatefulSets
whose status has not observed its generation yet, and phase ``Bound`` to each of its
PersistentVolumeClaims (the agent's state and inbox claims). The agent is not bypassed: it waits
and reads health from the server.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from generator.core import yamlio
from generator.formats import encrypted_secret as encrypted
from generator.run.agent import kube
from tests.support.agent import unique
from tests.support.ferry import IDENTITY, Keys, git, rev
from tests.support.n9e import ROOT_PASSWORD, ROOT_USER, root_client
from tests.support.project import REPO

SITE = "cn-east-1"
AGE_KEY = REPO / "tests" / "fixtures" / "age" / f"{SITE}.key"
CONFIG = ("v1", "ConfigMap", "abc-service-config")
"""The object the edit changes (abc-service's log level); its StatefulSet has the checksum."""
WORKLOADS = (("apps/v1", "Deployment"), ("apps/v1", "StatefulSet"), ("apps/v1", "DaemonSet"))


def gen(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m generator ARGS`` in a subprocess (the caller judges its exit status)."""
    return subprocess.run(
        [sys.executable, "-m", "generator", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=False,
    )


def ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, (
        f"{done.args[3:]}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    )
    return done.stdout


def project(root: Path, namespace: str, agent_namespace: str, stack_namespace: str) -> None:
    """A committed copy of the reference platform, the site in ``namespace``/``agent_namespace``,
    its monitoring stack in ``stack_namespace``."""
    for name in ("inventory", "components", "schemas", "secrets"):
        shutil.copytree(REPO / name, root / name)
    target = root / "inventory" / "targets" / f"{SITE}.yml"
    target.write_text(
        target.read_text().replace(
            "parameters:\n  site:\n", f"parameters:\n  site:\n    namespace: {namespace}\n", 1
        )
    )
    target.write_text(
        target.read_text()
        .replace(
            "    monitoring-stack:\n",
            f"    monitoring-stack:\n      namespace: {stack_namespace}\n",
            1,
        )
        .replace("        node_port: 31700\n", "", 1)  # another test's real apply holds it
    )
    common = root / "inventory" / "classes" / "common.yml"
    common.write_text(
        common.read_text().replace(
            "      namespace: gen-agent\n", f"      namespace: {agent_namespace}\n", 1
        )
    )
    ok(gen("compile", "-C", str(root), "-t", SITE))
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "reference platform")


def live_objects(admin: kube.Client, compiled: Path) -> dict[str, dict[str, Any]]:
    """Every compiled object of the site as the server holds it (an EncryptedSecret's Secret)."""
    out = {}
    for path in sorted((compiled / "manifests").rglob("*.yaml")):
        for obj in yamlio.load_rendered(path.read_text(), str(path)):
            api_version, kind = obj["apiVersion"], obj["kind"]
            if encrypted.is_encrypted(obj):
                api_version, kind = "v1", "Secret"
            res = admin.resource(api_version, kind)
            meta = obj["metadata"]
            live = admin.get(res, meta.get("namespace", "") if res.namespaced else "", meta["name"])
            assert live is not None, f"{kind} {meta['name']} is not in the cluster"
            out[f"{kind} {meta.get('namespace', '')}/{meta['name']}"] = live
    return out


def versions(objs: dict[str, dict[str, Any]]) -> dict[str, str]:
    return {name: obj["metadata"]["resourceVersion"] for name, obj in objs.items()}


def n9e_state(api: Any, busi_group: str) -> dict[str, Any]:
    """What the site's n9e holds, with the server's update stamps (a write would change them)."""
    answer = api.get("/busi-groups", {"all": "true", "limit": "5000", "query": busi_group}) or []
    groups = cast(
        "list[dict[str, Any]]", answer.get("list") if isinstance(answer, dict) else answer
    )
    ids = [g["id"] for g in groups if g["name"] == busi_group]
    rules = api.get(f"/busi-group/{ids[0]}/alert-rules") if ids else []
    stamp = {"rules": {r["name"]: r["update_at"] for r in rules}}
    for collection in ("/notify-channel-configs", "/message-templates", "/notify-rules"):
        stamp[collection] = {
            o["name"]: o.get("update_at") for o in api.get(collection) or [] if SITE in o["name"]
        }
    return stamp


@pytest.fixture
def controller(admin: kube.Client) -> Iterator[set[str]]:
    """Plays kube-controller-manager in the namespaces added to the yielded set (module doc)."""
    namespaces: set[str] = set()
    stop = threading.Event()

    def rollouts() -> None:
        claims = admin.resource("v1", "PersistentVolumeClaim")
        while not stop.wait(0.1):
            for ns in list(namespaces):
                for api_version, kind in WORKLOADS:
                    res = admin.resource(api_version, kind)
                    for live in admin.list(res, ns):
                        _complete(admin, res, live)
                for live in admin.list(claims, ns):
                    _bind(admin, claims, live)

    thread = threading.Thread(target=rollouts, daemon=True)
    thread.start()
    try:
        yield namespaces
    finally:
        stop.set()
        thread.join()


def _bind(admin: kube.Client, res: kube.Resource, live: dict[str, Any]) -> None:
    """What the PersistentVolume controller does once a volume is found: the claim is Bound."""
    if (live.get("status") or {}).get("phase") == "Bound":
        return
    live["status"] = {"phase": "Bound", "accessModes": live["spec"].get("accessModes", [])}
    try:
        admin.update_status(res, live)
    except kube.KubeError:  # a newer version was written meanwhile: the next pass sees it
        pass


def _complete(admin: kube.Client, res: kube.Resource, live: dict[str, Any]) -> None:
    generation = live["metadata"].get("generation")
    if (live.get("status") or {}).get("observedGeneration") == generation:
        return
    replicas = (live.get("spec") or {}).get("replicas", 1)
    if live["kind"] == "DaemonSet":  # one node, and the pod on it ready
        live["status"] = {
            "observedGeneration": generation,
            **dict.fromkeys(
                (
                    "desiredNumberScheduled",
                    "currentNumberScheduled",
                    "updatedNumberScheduled",
                    "numberAvailable",
                    "numberReady",
                ),
                1,
            ),
            "numberMisscheduled": 0,
        }
        try:
            admin.update_status(res, live)
        except kube.KubeError:
            pass
        return
    live["status"] = {
        "observedGeneration": generation,
        "replicas": replicas,
        "readyReplicas": replicas,
        "updatedReplicas": replicas,
        "availableReplicas": replicas,
        "currentReplicas": replicas,
    }
    try:
        admin.update_status(res, live)
    except kube.KubeError:  # a newer version was written meanwhile: the next pass sees it
        pass


def test_an_inventory_edit_travels_the_whole_chain_and_a_second_run_changes_nothing(
    tmp_path: Path,
    admin: kube.Client,
    control_plane: Any,
    keys: Keys,
    real_n9e: Any,
    controller: set[str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    started = time.monotonic()
    namespace, agent_namespace = unique("chain"), unique("chain-agent")
    stack_namespace = unique("chain-mon")
    controller.update({namespace, agent_namespace, stack_namespace})
    root, deploy, outbox, drop = (tmp_path / d for d in ("source", "deploy.git", "outbox", "drop"))
    drop.mkdir()
    project(root, namespace, agent_namespace, stack_namespace)
    compiled = root / "compiled" / SITE
    signing = ["--deploy-repo", str(deploy), "--signing-key", str(keys.release.private)]
    author = f"{IDENTITY.name} <{IDENTITY.email}>"
    agent = [
        "agent",
        "run",
        "--once",
        "--output",
        "json",
        "--site",
        SITE,
        "--envelopes",
        str(drop),
        "--allowed-signers",
        str(keys.allowed_signers),
        "--state-dir",
        str(tmp_path / "state"),
        "--kubeconfig",
        str(control_plane.kubeconfig),
        "--namespace",
        agent_namespace,
        "--age-identity",
        str(AGE_KEY),
        "--health-timeout",
        "30s",
    ]
    n9e_env = {"GEN_N9E_USER": ROOT_USER, "GEN_N9E_PASSWORD": ROOT_PASSWORD}

    shipped: list[str] = []

    def ship() -> None:
        """gen publish (signed) -> gen ferry pack -> the gatekeeper copies it to the drop."""
        ok(gen("publish", "-C", str(root), "-t", SITE, "--author", author, *signing))
        ok(
            gen(
                "ferry", "pack", "-t", SITE, "-o", str(outbox), "--sender", IDENTITY.email, *signing
            )
        )
        (envelope,) = [p for p in outbox.iterdir() if p.name not in shipped]
        shutil.copytree(envelope, drop / envelope.name)
        shipped.append(envelope.name)

    # The site as it is, in the cluster (no n9e yet: that hop is the agent's sync below).
    ship()
    first = json.loads(ok(gen(*agent)))
    assert first["result"] == "synced" and first["commit"] == rev(
        deploy, f"refs/heads/deploy/{SITE}"
    )
    before = live_objects(admin, compiled)

    # 1. edit an inventory value
    service = root / "inventory" / "classes" / "services" / "abc-service.yml"
    service.write_text(service.read_text().replace("log_level: info", "log_level: debug", 1))
    # 2. gen compile; 3. gen diff shows it
    ok(gen("compile", "-C", str(root), "-t", SITE))
    diff = gen("diff", "-C", str(root), "-t", SITE, "--worktree")
    assert diff.returncode == 1, diff.stderr  # 1: there are differences
    assert f"~ ConfigMap {namespace}/abc-service-config" in diff.stdout, diff.stdout
    assert "-log_level: info" in diff.stdout and "+log_level: debug" in diff.stdout
    # 4. commit; 5. gen publish (signed); 6. gen ferry pack; 7. copy to the drop folder
    git(root, "commit", "-q", "-am", "abc-service: debug logs")
    ship()
    tip = rev(deploy, f"refs/heads/deploy/{SITE}")
    signed = subprocess.run(
        ["git", "--git-dir", str(deploy), "cat-file", "commit", str(tip)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "-----BEGIN SSH SIGNATURE-----" in signed
    # 8. gen agent run --once imports the envelope and syncs n9e too
    real_n9e_api = root_client(real_n9e.url)
    assert n9e_state(real_n9e_api, "paas-cn-east-1")["rules"] == {}
    second = json.loads(ok(gen(*agent, "--n9e-url", real_n9e.url, env=n9e_env)))
    assert second["result"] == "synced" and second["commit"] == tip, second
    # 9. the object changed in the kube-apiserver, and nothing else was written
    after = live_objects(admin, compiled)
    config = f"ConfigMap {namespace}/abc-service-config"
    assert "log_level: debug" in after[config]["data"]["app.yaml"]
    changed = {
        name for name, version in versions(after).items() if versions(before)[name] != version
    }
    assert changed == {
        config,
        f"StatefulSet {namespace}/abc-service",
    }  # its pod template has the checksum
    assert sorted(second["applied"]) == [config, f"StatefulSet.apps {namespace}/abc-service"]
    # 10. the site's alert rules in the real n9e, through the agent's n9e sync
    rules = json.loads((compiled / "n9e" / "alert-rules.json").read_text())
    synced = n9e_state(real_n9e_api, "paas-cn-east-1")
    assert synced["rules"].keys() == {r["name"] for r in rules}
    # 11. a second run changes nothing anywhere
    third = json.loads(ok(gen(*agent, "--n9e-url", real_n9e.url, env=n9e_env)))
    assert third["result"] == "synced" and third["applied"] == [] and third["pruned"] == []
    assert versions(live_objects(admin, compiled)) == versions(after)
    assert n9e_state(real_n9e_api, "paas-cn-east-1") == synced
    wall = time.monotonic() - started
    with capsys.disabled():
        print(f"\nthe whole chain (3 agent runs, 2 envelopes): {wall:.1f} s wall (goal < 60 s)")
