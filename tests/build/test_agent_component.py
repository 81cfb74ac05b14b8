"""The agent's own manifests (component gen-agent): Pod Security "restricted" by default, state on
a PersistentVolumeClaim, and a hostPath drop folder only as the documented, privileged opt-in."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from generator.build import pipeline
from generator.core import errors
from tests.support.project import REPO, tree_digest

SITES = ("cn-east-1", "cn-north-2")
ENVELOPES = "          claim: {size: 2Gi, volume_name: gen-ferry-inbox}\n"
HOST_INBOX = (
    "          volume: {hostPath: {path: /data0/gen-ferry/inbox, type: DirectoryOrCreate}}\n"
)
WHY = (
    "a hostPath envelope volume is an explicit opt-in: Pod Security restricted and baseline "
    "forbid hostPath, so it needs pod_security: privileged (docs/agent.md)"
)
RESTRICTED_VOLUMES = {"persistentVolumeClaim", "emptyDir", "configMap", "secret"}


def manifest(compiled: Path, relative: str) -> dict[str, Any]:
    data = yaml.safe_load((compiled / "manifests" / relative).read_text())
    assert isinstance(data, dict)
    return data


def pod_spec(compiled: Path) -> dict[str, Any]:
    spec: dict[str, Any] = manifest(compiled, "gen-agent/deployment-gen-agent.yaml")["spec"]
    return spec["template"]["spec"]  # type: ignore[no-any-return]


def edit_agent(project: Path, old: str, new: str) -> None:
    common = project / "inventory" / "classes" / "common.yml"
    text = common.read_text()
    assert old in text
    common.write_text(text.replace(old, new, 1))


def compile_(project: Path) -> None:
    pipeline.run(pipeline.Options(project, use_cache=False))


@pytest.mark.parametrize("site", SITES)
def test_the_reference_sites_agent_namespace_enforces_restricted(site: str) -> None:
    labels = manifest(REPO / "compiled" / site, "_cluster/namespace-gen-agent.yaml")["metadata"][
        "labels"
    ]
    for mode in ("enforce", "audit", "warn"):
        assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted"


@pytest.mark.parametrize("site", SITES)
def test_the_reference_sites_agent_pod_has_no_hostpath_and_meets_restricted(site: str) -> None:
    compiled = REPO / "compiled" / site
    spec = pod_spec(compiled)
    assert {key for volume in spec["volumes"] for key in volume if key != "name"} <= (
        RESTRICTED_VOLUMES
    )
    assert "initContainers" not in spec
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = spec["containers"]
    assert container["securityContext"] == {
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in spec["volumes"][:1]}
    assert claims == {"state": "gen-agent-state"}
    state = manifest(compiled, "gen-agent/persistentvolumeclaim-gen-agent-state.yaml")
    assert state["spec"]["resources"] == {"requests": {"storage": "1Gi"}}


def test_the_state_claim_takes_the_sites_storage_class() -> None:
    east = manifest(
        REPO / "compiled" / "cn-east-1", "gen-agent/persistentvolumeclaim-gen-agent-state.yaml"
    )
    north = manifest(
        REPO / "compiled" / "cn-north-2", "gen-agent/persistentvolumeclaim-gen-agent-state.yaml"
    )
    assert "storageClassName" not in east["spec"]
    assert north["spec"]["storageClassName"] == "local-path"


def test_the_startup_probe_is_separate_from_liveness() -> None:
    (container,) = pod_spec(REPO / "compiled" / "cn-east-1")["containers"]
    startup, liveness = container["startupProbe"], container["livenessProbe"]
    assert startup["httpGet"] == liveness["httpGet"] == {"path": "/healthz", "port": 9090}
    assert startup["periodSeconds"] * startup["failureThreshold"] == 300
    assert "initialDelaySeconds" not in liveness


def test_a_hostpath_drop_folder_without_the_privileged_opt_in_is_refused_and_nothing_written(
    project: Path,
) -> None:
    before = tree_digest(project / "compiled")
    edit_agent(project, ENVELOPES, HOST_INBOX)
    with pytest.raises(errors.ProblemReport) as info:
        compile_(project)
    report = str(info.value)
    assert "inventory/classes/common.yml:" in report
    assert f"$.site.agent  'pod_security' is a required property: {WHY}" in report
    assert "nothing was written" in report
    assert tree_digest(project / "compiled") == before


def test_a_hostpath_drop_folder_at_the_restricted_level_is_refused(project: Path) -> None:
    before = tree_digest(project / "compiled")
    edit_agent(project, ENVELOPES, HOST_INBOX + "      pod_security: restricted\n")
    with pytest.raises(errors.ProblemReport) as info:
        compile_(project)
    assert f"$.site.agent.pod_security  'privileged' was expected: {WHY}" in str(info.value)
    assert tree_digest(project / "compiled") == before


def test_a_volume_type_restricted_forbids_is_refused(project: Path) -> None:
    before = tree_digest(project / "compiled")
    edit_agent(project, ENVELOPES, "          volume: {nfs: {server: nas, path: /inbox}}\n")
    with pytest.raises(errors.ProblemReport) as info:
        compile_(project)
    assert "$.site.agent.source.envelopes.volume  'nfs' is not one of" in str(info.value)
    assert tree_digest(project / "compiled") == before


def test_the_privileged_hostpath_opt_in_labels_the_namespace_and_hands_the_folder_to_the_agent(
    project: Path,
) -> None:
    edit_agent(project, ENVELOPES, HOST_INBOX + "      pod_security: privileged\n")
    compile_(project)
    compiled = project / "compiled" / "cn-east-1"
    labels = manifest(compiled, "_cluster/namespace-gen-agent.yaml")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "privileged"
    spec = pod_spec(compiled)
    (init,) = spec["initContainers"]
    assert init["command"] == ["chown", "10001:10001", "/var/lib/gen-agent/inbox"]
    assert init["securityContext"]["runAsUser"] == 0
    assert init["securityContext"]["capabilities"] == {"drop": ["ALL"], "add": ["CHOWN"]}
    inbox = next(v for v in spec["volumes"] if v["name"] == "inbox")
    assert inbox == {
        "name": "inbox",
        "hostPath": {"path": "/data0/gen-ferry/inbox", "type": "DirectoryOrCreate"},
    }
    assert not (
        compiled / "manifests/gen-agent/persistentvolumeclaim-gen-agent-inbox.yaml"
    ).exists()


def _env(compiled: Path) -> dict[str, str]:
    (container,) = pod_spec(compiled)["containers"]
    return {e["name"]: e.get("value", "") for e in container["env"]}


def test_automatic_rollback_is_off_unless_the_site_opts_in(project: Path) -> None:
    assert "GEN_AGENT_AUTO_ROLLBACK" not in _env(REPO / "compiled" / "cn-east-1")
    edit_agent(
        project,
        "      health_timeout: 3m\n",
        "      health_timeout: 3m\n      auto_rollback: true\n",
    )
    compile_(project)
    assert _env(project / "compiled" / "cn-east-1")["GEN_AGENT_AUTO_ROLLBACK"] == "true"
