"""From ``gen secrets set`` to a Secret in a real kube-apiserver (etcd + kube-apiserver, no
kubelet).

What the agent does at apply time is played by ``gen secrets materialize`` (the same ``materialize``
the agent calls) piped into ``kubectl apply --server-side`` with the agent's field manager. Each
test applies into namespaces of its own.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from generator.build import secret_store as store
from generator.core import yamlio
from generator.formats import age as crypto
from generator.formats import encrypted_secret as encrypted
from generator.formats import secret_refs as refs
from tests.support.project import REPO
from tests.support.secrets import SecretProject

EAST = "cn-east-1"
ABC_CLASS = "inventory/classes/services/abc-service.yml"
_names = itertools.count(1)


class Cluster:
    """kubectl as cluster-admin against the test control plane."""

    def __init__(self, kubeconfig: Path) -> None:
        self.kubeconfig = kubeconfig

    def kubectl(self, *args: str, stdin: bytes | None = None) -> bytes:
        proc = subprocess.run(
            ["kubectl", "--kubeconfig", str(self.kubeconfig), *args],
            input=stdin,
            capture_output=True,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr.decode()
        return proc.stdout

    def namespace(self, prefix: str) -> str:
        name = f"{prefix}-{os.getpid() % 10000}-{next(_names)}"
        self.kubectl("create", "namespace", name)
        return name

    def apply(self, objects: list[dict[str, Any]]) -> None:
        """Server-side apply, as the agent does (field manager gen-agent, conflicts forced)."""
        body = json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}).encode()
        self.kubectl(
            "apply",
            "--server-side",
            "--field-manager",
            "gen-agent",
            "--force-conflicts",
            "-f",
            "-",
            stdin=body,
        )

    def secret(self, namespace: str, name: str) -> dict[str, Any]:
        found: dict[str, Any] = json.loads(
            self.kubectl(
                "get", "secret", "-n", namespace, name, "-o", "json", "--show-managed-fields"
            )
        )
        return found


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A control plane for this module (skipped with the reason when it cannot start)."""
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed")
    try:
        from tests.support.servers.kube import start_control_plane

        with start_control_plane(tmp_path_factory.mktemp("secrets-envtest")) as cp:
            yield Cluster(cp.kubeconfig)
    except Exception as e:
        if os.environ.get("GEN_REQUIRE_ENVTEST"):
            raise
        pytest.skip(f"no control plane: {e}")


def materialized(project: SecretProject, site: str, key: Path) -> list[dict[str, Any]]:
    """``gen secrets materialize`` of a compiled site, parsed."""
    result = project.gen("secrets", "materialize", "-t", site, "-i", str(key))
    assert result.exit_code == 0, result.output
    return [o for o in yaml.safe_load_all(result.stdout) if o]


def moved(objects: list[dict[str, Any]], namespaces: dict[str, str]) -> list[dict[str, Any]]:
    """The objects with their namespaces renamed (each test has its own)."""
    return [
        {**o, "metadata": {**o["metadata"], "namespace": namespaces[o["metadata"]["namespace"]]}}
        for o in objects
    ]


def value(secret: dict[str, Any], key: str) -> bytes:
    return base64.b64decode(secret["data"][key])


def test_a_secret_set_with_gen_reaches_the_api_server_as_a_secret(
    secret_project: SecretProject, cluster: Cluster
) -> None:
    project = secret_project
    env_line = "        REDIS_PASSWORD: ?{age:redis/password}\n"
    text = (project.root / ABC_CLASS).read_text()
    (project.root / ABC_CLASS).write_text(
        text.replace(env_line, env_line + "        API_TOKEN: ?{age:abc/token}\n")
    )
    assert (
        project.gen("secrets", "set", "-t", EAST, "abc/token", stdin=b"tok-\xc3\xa9-1\n").exit_code
        == 0
    )
    assert project.gen("compile", "-t", EAST).exit_code == 0
    ns = {
        "project": cluster.namespace("secrets-app"),
        "gen-agent": cluster.namespace("secrets-agent"),
        "monitoring": cluster.namespace("secrets-mon"),
    }
    cluster.apply(moved(materialized(project, EAST, project.keys[EAST]), ns))
    live = cluster.secret(ns["project"], "abc-service-secrets")
    assert live["type"] == "Opaque" and value(live, "API_TOKEN") == "tok-é-1".encode()
    assert value(live, "REDIS_PASSWORD") == project.values[(EAST, "redis/password")]
    assert live["metadata"]["labels"]["app"] == "abc-service"
    assert [m["manager"] for m in live["metadata"]["managedFields"]] == ["gen-agent"]
    pull = cluster.secret(ns["gen-agent"], "registry-pull")
    assert pull["type"] == "kubernetes.io/dockerconfigjson"


def test_rotation_changes_the_secret_in_the_cluster(
    secret_project: SecretProject, cluster: Cluster
) -> None:
    project = secret_project
    ns = {
        "project": cluster.namespace("rotate-app"),
        "gen-agent": cluster.namespace("rotate-agent"),
        "monitoring": cluster.namespace("rotate-mon"),
    }
    cluster.apply(moved(materialized(project, EAST, project.keys[EAST]), ns))
    before = cluster.secret(ns["project"], "abc-service-secrets")
    assert (
        project.gen(
            "secrets", "rotate", "-t", EAST, "redis/password", stdin=b"rotated-redis-pw"
        ).exit_code
        == 0
    )
    assert project.gen("compile", "-t", EAST).exit_code == 0
    cluster.apply(moved(materialized(project, EAST, project.keys[EAST]), ns))
    after = cluster.secret(ns["project"], "abc-service-secrets")
    assert value(before, "REDIS_PASSWORD") == project.values[(EAST, "redis/password")]
    assert value(after, "REDIS_PASSWORD") == b"rotated-redis-pw"
    digest = encrypted.DIGEST_ANNOTATION
    assert after["metadata"]["annotations"][digest] != before["metadata"]["annotations"][digest]
    untouched = cluster.secret(ns["project"], "registry-pull")
    assert (
        untouched["metadata"]["annotations"][digest]
        == cluster.secret(ns["gen-agent"], "registry-pull")["metadata"]["annotations"][digest]
    )


@pytest.mark.parametrize(
    ("site", "username", "server"),
    [
        ("cn-east-1", "admin", "dockerhub.kubekey.local"),
        ("cn-north-2", "paas-pull", "harbor.cn-north-2.internal:5000"),
    ],
)
def test_the_reference_platform_creates_its_registry_and_redis_secrets(
    cluster: Cluster, site: str, username: str, server: str
) -> None:
    keys = crypto.load_identities(REPO / "tests" / "fixtures" / "age" / f"{site}.key")
    paths = ("redis/password", "registry/password", "monitoring/db-password")
    plain = {p: store.show(REPO, site, p, keys) for p in paths}
    compiled = REPO / "compiled" / site / "manifests"
    objects = [
        o
        for p in sorted(compiled.rglob("encryptedsecret-*.yaml"))
        for o in yamlio.load_rendered(p.read_text(), str(p))
    ]
    assert sorted((o["metadata"]["namespace"], o["metadata"]["name"]) for o in objects) == [
        ("gen-agent", "registry-pull"),
        ("monitoring", "n9e-secrets"),
        ("monitoring", "registry-pull"),
        ("project", "abc-service-secrets"),
        ("project", "registry-pull"),
    ]
    secrets, failed = encrypted.materialize_all(objects, keys)
    assert failed == {}
    ns = {
        "project": cluster.namespace(f"{site}-app"),
        "gen-agent": cluster.namespace(f"{site}-agent"),
        "monitoring": cluster.namespace(f"{site}-mon"),
    }
    cluster.apply(moved(secrets, ns))
    assert (
        value(cluster.secret(ns["project"], "abc-service-secrets"), "REDIS_PASSWORD")
        == plain["redis/password"]
    )
    assert (
        value(cluster.secret(ns["monitoring"], "n9e-secrets"), "DB_PASSWORD")
        == plain["monitoring/db-password"]
    )
    for namespace in ns.values():
        pull = cluster.secret(namespace, "registry-pull")
        auth = json.loads(value(pull, ".dockerconfigjson"))["auths"][server]
        assert pull["type"] == "kubernetes.io/dockerconfigjson"
        assert (auth["username"], auth["password"].encode()) == (
            username,
            plain["registry/password"],
        )


def test_the_reference_secret_files_are_ascii_armored_age_for_one_recipient() -> None:
    for site in ("cn-east-1", "cn-north-2"):
        for path in ("redis/password", "registry/password", "kubekey/ssh-password"):
            data = (REPO / refs.file_for(site, path)).read_bytes()
            assert crypto.inspect(data).recipients == 1, (site, path)
