"""The agent's compiled objects at a site that enforces Pod Security: a real kube-apiserver
(PodSecurity admission on, as by default) admits them, pod template included, and refuses the
hostPath opt-in anywhere but in the privileged namespace that opt-in compiles."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from generator.build import pipeline
from tests.support.agent import unique
from tests.support.project import REPO

AGENT_NAMESPACE = "gen-agent"
ENVELOPES = "          claim: {size: 2Gi, volume_name: gen-ferry-inbox}\n"
HOST_INBOX = (
    "          volume: {hostPath: {path: /data0/gen-ferry/inbox, type: DirectoryOrCreate}}\n"
)


def agent_objects(compiled: Path, namespace: str) -> list[dict[str, Any]]:
    """The site's agent Namespace and gen-agent/ objects (Kubernetes kinds only: an EncryptedSecret
    becomes a Secret in the agent), moved from gen-agent to ``namespace``."""
    manifests = compiled / "manifests"
    paths = [manifests / "_cluster" / f"namespace-{AGENT_NAMESPACE}.yaml"]
    paths += sorted((manifests / "gen-agent").glob("*.yaml"))
    objs = [yaml.safe_load(p.read_text()) for p in paths]
    moved = []
    for obj in objs:
        if obj["kind"] == "EncryptedSecret":
            continue
        if obj["kind"] == "Namespace":
            obj["metadata"]["name"] = namespace
        else:
            assert obj["metadata"]["namespace"] == AGENT_NAMESPACE
            obj["metadata"]["namespace"] = namespace
        for subject in obj.get("subjects", []):
            subject["namespace"] = namespace
        moved.append(obj)
    return moved


def pod_of(deployment: dict[str, Any], namespace: str) -> dict[str, Any]:
    """The Pod the Deployment's controller would create (what PodSecurity really judges)."""
    template = deployment["spec"]["template"]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": unique("gen-agent-pod"),
            "namespace": namespace,
            **template["metadata"],
        },
        "spec": template["spec"],
    }


def kubectl(control_plane: Any, tmp_path: Path, objs: list[dict[str, Any]], *args: str) -> Any:
    """Run kubectl on ``objs`` (a List on stdin) as the administrator; never raises."""
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed")
    return subprocess.run(
        ["kubectl", "--kubeconfig", str(control_plane.kubeconfig), *args, "-f", "-"],
        input=json.dumps({"apiVersion": "v1", "kind": "List", "items": objs}),
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        check=False,
    )


def apply(control_plane: Any, tmp_path: Path, objs: list[dict[str, Any]]) -> Any:
    return kubectl(control_plane, tmp_path, objs, "apply", "--server-side")


def dry_run_create(control_plane: Any, tmp_path: Path, obj: dict[str, Any]) -> Any:
    return kubectl(control_plane, tmp_path, [obj], "create", "--dry-run=server")


@pytest.mark.parametrize("site", ["cn-east-1", "cn-north-2"])
def test_the_reference_sites_agent_objects_are_admitted_under_restricted(
    control_plane: Any, tmp_path: Path, site: str
) -> None:
    namespace = unique("pss")
    objs = agent_objects(REPO / "compiled" / site, namespace)
    (ns,) = [o for o in objs if o["kind"] == "Namespace"]
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    made = apply(control_plane, tmp_path, [ns])
    assert made.returncode == 0, made.stderr
    rest = [o for o in objs if o["kind"] != "Namespace"]
    applied = apply(control_plane, tmp_path, rest)
    # warn=restricted: a Deployment whose pods would be refused is admitted with a warning
    assert applied.returncode == 0 and applied.stderr == "", applied.stderr
    assert applied.stdout.count("serverside-applied") == len(rest)
    (deployment,) = [o for o in rest if o["kind"] == "Deployment"]
    pod = dry_run_create(control_plane, tmp_path, pod_of(deployment, namespace))
    assert pod.returncode == 0 and pod.stderr == "", pod.stderr
    assert "created (server dry run)" in pod.stdout


def test_the_hostpath_opt_in_is_refused_under_restricted_and_admitted_where_it_compiles_to(
    control_plane: Any, tmp_path: Path, project: Path
) -> None:
    common = project / "inventory" / "classes" / "common.yml"
    text = common.read_text()
    assert ENVELOPES in text
    common.write_text(text.replace(ENVELOPES, HOST_INBOX + "      pod_security: privileged\n"))
    pipeline.run(pipeline.Options(project, ("cn-east-1",), use_cache=False))
    opt_in = unique("pss-privileged")
    objs = agent_objects(project / "compiled" / "cn-east-1", opt_in)
    (ns,) = [o for o in objs if o["kind"] == "Namespace"]
    (deployment,) = [o for o in objs if o["kind"] == "Deployment"]
    strict = unique("pss-restricted")
    strict_ns = {**ns, "metadata": {**ns["metadata"], "name": strict}}
    strict_ns["metadata"]["labels"] = {
        **ns["metadata"]["labels"],
        "pod-security.kubernetes.io/enforce": "restricted",
    }
    made = apply(control_plane, tmp_path, [ns, strict_ns])
    assert made.returncode == 0, made.stderr
    refused = dry_run_create(control_plane, tmp_path, pod_of(deployment, strict))
    assert refused.returncode != 0
    assert 'violates PodSecurity "restricted:latest"' in refused.stderr
    assert 'restricted volume types (volume "inbox" uses restricted volume type "hostPath")' in (
        refused.stderr
    )
    assert 'runAsUser=0 (container "own-inbox" must not set runAsUser=0)' in refused.stderr
    assert '"gen-agent"' not in refused.stderr.split("restricted:latest")[1]
    admitted = dry_run_create(control_plane, tmp_path, pod_of(deployment, opt_in))
    assert admitted.returncode == 0 and admitted.stderr == "", admitted.stderr
