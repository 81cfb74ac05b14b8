"""Every compiled object of both reference sites, monitoring stack included, is accepted by a real
kube-apiserver in a server-side dry run (strict field validation: an unknown or misplaced field
fails).

The apiserver has no EncryptedSecret CRD (the agent never applies one: it applies the Secret it
decrypts), so each EncryptedSecret is checked as that Secret, with the same name, namespace,
labels, type and keys (placeholder values: the site's key is not needed to validate a shape).
Namespaces are created for real (a namespaced dry run needs its namespace), under names unique to
the test so that other tests sharing the server are not disturbed; for the same reason a Service's
fixed nodePort is left to the server (a real apply of the site by another test may hold it).
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from generator.core import layout
from generator.formats import encrypted_secret as encrypted
from tests.support.agent import unique
from tests.support.project import REPO

SITES = ("cn-east-1", "cn-north-2")


def compiled_objects(site: str) -> list[dict[str, Any]]:
    manifests = REPO / "compiled" / site / layout.MANIFESTS
    return [yaml.safe_load(p.read_text()) for p in sorted(manifests.rglob("*.yaml"))]


def as_secret(obj: dict[str, Any]) -> dict[str, Any]:
    """The Secret the agent makes of an EncryptedSecret, with placeholder values."""
    spec = obj["spec"]
    keys = list(spec.get("encryptedData") or {})
    data = {key: base64.b64encode(b"placeholder").decode() for key in keys}
    if spec.get("type") == encrypted.DOCKER_CONFIG_TYPE:
        data = {encrypted.DOCKER_CONFIG_KEY: base64.b64encode(b'{"auths": {}}').decode()}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": obj["metadata"],
        "type": spec.get("type", "Opaque"),
        "data": data,
    }


def renamed(objs: list[dict[str, Any]], names: dict[str, str]) -> list[dict[str, Any]]:
    """``objs`` with every namespace (of objects, Namespaces and RBAC subjects) renamed."""
    text = json.dumps(objs)
    out: list[dict[str, Any]] = json.loads(text)
    for obj in out:
        meta = obj["metadata"]
        if obj["kind"] == "Namespace":
            meta["name"] = names[meta["name"]]
        if "namespace" in meta:
            meta["namespace"] = names[meta["namespace"]]
        for subject in obj.get("subjects", []):
            if "namespace" in subject:
                subject["namespace"] = names[subject["namespace"]]
        if obj["kind"] == "Service":  # a fixed nodePort is cluster-wide: another test's real
            for port in obj["spec"].get("ports", []):  # apply of the same site may hold it
                port.pop("nodePort", None)
    return out


def kubectl(control_plane: Any, tmp_path: Path, objs: list[dict[str, Any]], *args: str) -> Any:
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


@pytest.mark.parametrize("site", SITES)
def test_a_real_apiserver_accepts_every_compiled_object_of_the_site_in_a_dry_run(
    control_plane: Any, tmp_path: Path, site: str
) -> None:
    objs = [as_secret(o) if encrypted.is_encrypted(o) else o for o in compiled_objects(site)]
    kinds = {o["kind"] for o in objs}
    assert {"StatefulSet", "DaemonSet", "Deployment", "ClusterRole", "ConfigMap"} <= kinds
    assert any(o["metadata"].get("namespace") == "monitoring" for o in objs)
    namespaces = sorted(o["metadata"]["name"] for o in objs if o["kind"] == "Namespace")
    used = {o["metadata"]["namespace"] for o in objs if "namespace" in o["metadata"]}
    assert used <= set(namespaces), "every namespace the site uses is compiled"
    names = {n: unique(f"dr-{n}")[:63] for n in namespaces}
    objs = renamed(objs, names)
    made = kubectl(
        control_plane,
        tmp_path,
        [o for o in objs if o["kind"] == "Namespace"],
        "apply",
        "--server-side",
        "--field-manager=dry-run-test",
    )
    assert made.returncode == 0, made.stderr
    rest = [o for o in objs if o["kind"] != "Namespace"]
    checked = kubectl(
        control_plane,
        tmp_path,
        rest,
        "apply",
        "--server-side",
        "--dry-run=server",
        "--validate=strict",
        "--field-manager=dry-run-test",
        "--force-conflicts",  # cluster-scoped objects other tests' agents applied for real
    )
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.count("serverside-applied (server dry run)") == len(rest), checked.stdout


def test_a_misplaced_field_in_a_compiled_object_is_refused_by_the_same_check(
    control_plane: Any, tmp_path: Path
) -> None:
    """The dry run is strict: it is not an echo (a field Kubernetes does not know fails)."""
    objs = compiled_objects("cn-east-1")
    (prometheus,) = [
        o for o in objs if o["kind"] == "StatefulSet" and o["metadata"]["name"] == "prometheus"
    ]
    broken = json.loads(json.dumps(prometheus))
    broken["spec"]["template"]["spec"]["containers"][0]["retention"] = "15d"
    namespace = unique("dr-broken")
    made = kubectl(
        control_plane,
        tmp_path,
        [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}],
        "apply",
        "--server-side",
    )
    assert made.returncode == 0, made.stderr
    broken["metadata"]["namespace"] = namespace
    refused = kubectl(
        control_plane,
        tmp_path,
        [broken],
        "apply",
        "--server-side",
        "--dry-run=server",
        "--validate=strict",
    )
    assert refused.returncode != 0 and 'unknown field "retention"' in refused.stderr, refused.stderr
