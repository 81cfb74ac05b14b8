"""KubeKey's Cluster and Manifest compiled per site: the article's structure, KubeKey's schema,
every image of the site, located errors, and no secret in clear."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from generator.build import pipeline
from generator.core import errors, layout, yamlio
from generator.core.objects import containers, pod_specs
from generator.formats import secret_refs as refs
from tests.support.project import REPO, tree_digest
from tests.support.review import edit

EAST = "cn-east-1"
SITES = ("cn-east-1", "cn-north-2")
EAST_TARGET = "inventory/targets/cn-east-1.yml"

# The seed article's config-sample.yaml and manifest-sample.yaml (its host names are
# kubesphere0N.ys in hosts but kubesphere0N.py in roleGroups; the inventory names them
# kubesphere0N, consistently).
ARTICLE_HOSTS = [
    ("kubesphere01", "10.89.3.12"),
    ("kubesphere02", "10.74.3.25"),
    ("kubesphere03", "10.86.3.66"),
    ("kubesphere04", "10.86.3.67"),
    ("kubesphere05", "10.86.3.11"),
]
ARTICLE_ROLES = {
    "etcd": ["kubesphere01", "kubesphere02", "kubesphere03"],
    "control-plane": ["kubesphere01", "kubesphere02", "kubesphere03"],
    "worker": ["kubesphere05"],
    "registry": ["kubesphere04"],
}
ARTICLE_COMPONENTS = {
    "helm": {"version": "v3.6.3"},
    "cni": {"version": "v0.9.1"},
    "etcd": {"version": "v3.4.13"},
    "containerRuntimes": [{"type": "docker", "version": "20.10.8"}],
    "crictl": {"version": "v1.22.0"},
    "harbor": {"version": "v2.4.1"},
    "docker-compose": {"version": "v2.2.2"},
}


def compiled(root: Path, site: str, rel: str) -> dict[str, Any]:
    [doc] = yamlio.load_rendered((root / "compiled" / site / rel).read_text(), rel)
    return doc


def schema(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((REPO / "schemas/kubekey" / name).read_text())
    return loaded


def line_of(root: Path, rel: str, needle: str) -> int:
    lines = (root / rel).read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if needle in line)


def problems_of(root: Path) -> list[str]:
    with pytest.raises(errors.ProblemReport) as caught:
        pipeline.run(pipeline.Options(root, use_cache=False))
    return [p.format() for p in caught.value.problems]


def test_the_cluster_of_cn_east_1_has_the_articles_hosts_roles_endpoint_and_network() -> None:
    spec = compiled(REPO, EAST, layout.KUBEKEY_CLUSTER)["spec"]
    assert [(h["name"], h["address"], h["internalAddress"]) for h in spec["hosts"]] == [
        (name, address, address) for name, address in ARTICLE_HOSTS
    ]
    assert {h["user"] for h in spec["hosts"]} == {"kubesphere"}
    assert {h["password"] for h in spec["hosts"]} == {"?{age:kubekey/ssh-password}"}
    assert spec["roleGroups"] == ARTICLE_ROLES
    assert spec["controlPlaneEndpoint"] == {
        "internalLoadbalancer": "haproxy",
        "domain": "lb.kubesphere.local",
        "address": "",
        "port": 6443,
    }
    assert spec["kubernetes"]["version"] == "v1.25.16"
    assert spec["kubernetes"]["clusterName"] == "cluster.local"
    assert spec["network"] == {
        "plugin": "calico",
        "kubePodsCIDR": "10.233.64.0/18",
        "kubeServiceCIDR": "10.233.0.0/18",
        "multusCNI": {"enabled": False},
    }
    assert spec["registry"]["type"] == "harbor"
    assert spec["registry"]["auths"] == {
        "dockerhub.kubekey.local": {"username": "admin", "password": "?{age:registry/password}"}
    }


def test_the_manifest_of_cn_east_1_has_the_articles_arches_distribution_and_components() -> None:
    spec = compiled(REPO, EAST, layout.KUBEKEY_MANIFEST)["spec"]
    assert spec["arches"] == ["amd64"]
    assert spec["kubernetesDistributions"] == [{"type": "kubernetes", "version": "v1.25.16"}]
    assert spec["components"] == ARTICLE_COMPONENTS
    assert [os["id"] for os in spec["operatingSystems"]] == ["centos"]


@pytest.mark.parametrize("site", SITES)
def test_the_compiled_cluster_and_manifest_validate_against_kubekeys_schema(site: str) -> None:
    for rel, name in (
        (layout.KUBEKEY_CLUSTER, "cluster.schema.json"),
        (layout.KUBEKEY_MANIFEST, "manifest.schema.json"),
    ):
        jsonschema.Draft202012Validator(schema(name)).validate(compiled(REPO, site, rel))


def test_the_kubekey_schemas_are_closed_objects() -> None:
    cluster = jsonschema.Draft202012Validator(schema("cluster.schema.json"))
    doc = compiled(REPO, EAST, layout.KUBEKEY_CLUSTER)
    doc["spec"]["hosts"][0]["passwd"] = "x"
    doc["spec"]["network"]["kubePodCIDR"] = "x"
    assert sorted(e.message for e in cluster.iter_errors(doc)) == [
        "Additional properties are not allowed ('kubePodCIDR' was unexpected)",
        "Additional properties are not allowed ('passwd' was unexpected)",
    ]


@pytest.mark.parametrize("site", SITES)
def test_the_manifest_lists_exactly_the_images_of_the_compiled_objects(site: str) -> None:
    images = set()
    for path in (REPO / "compiled" / site / layout.MANIFESTS).rglob("*.yaml"):
        for obj in yamlio.load_rendered(path.read_text(), path.name):
            for pod in pod_specs(obj):
                images |= {c["image"] for c in containers(pod)}
    listed = compiled(REPO, site, layout.KUBEKEY_MANIFEST)["spec"]["images"]
    assert listed == sorted(images)
    assert len(images) >= 3  # the agent and the two platform services at least


@pytest.mark.parametrize("site", SITES)
def test_the_clusters_secrets_are_references_with_their_ciphertext_beside_them(site: str) -> None:
    cluster = compiled(REPO, site, layout.KUBEKEY_CLUSTER)
    found = {refs.parse(text).path for _, text in refs.find(cluster)}
    assert found == {"kubekey/ssh-password", "registry/password"}
    sealed = json.loads((REPO / "compiled" / site / layout.KUBEKEY_SECRETS).read_text())
    assert sealed["site"] == site
    for path in found:
        stored = (REPO / refs.file_for(site, path)).read_text()
        assert sealed["secrets"][path] == stored


def test_a_site_without_kubekey_gets_an_images_only_manifest_and_no_cluster(
    project: Path,
) -> None:
    target = project / "inventory/targets/cn-north-2.yml"
    text = target.read_text()
    start = text.index("    # Installed with KubeKey too")
    end = text.index("    external:")
    target.write_text(text[:start] + text[end:])
    pipeline.run(pipeline.Options(project, use_cache=False))
    north = project / "compiled" / "cn-north-2"
    assert not (north / layout.KUBEKEY_CLUSTER).exists()
    assert not (north / layout.KUBEKEY_SECRETS).exists()
    assert list(compiled(project, "cn-north-2", layout.KUBEKEY_MANIFEST)["spec"]) == ["images"]


def test_a_wrong_field_in_the_clusters_overrides_is_a_located_error_and_nothing_is_written(
    project: Path,
) -> None:
    edit(
        project / EAST_TARGET,
        "    secrets:\n",
        "    kubekey:\n      cluster:\n        kubernetes:\n          maxPod: 200\n    secrets:\n",
    )
    before = tree_digest(project / "compiled")
    line = line_of(project, EAST_TARGET, "kubernetes:")
    assert problems_of(project) == [
        f"{EAST_TARGET}:{line}:9  $.site.kubekey.cluster.kubernetes  kubekey-cluster.yaml "
        "$.spec.kubernetes: Additional properties are not allowed ('maxPod' was unexpected) "
        "(KubeKey kubekey.kubesphere.io/v1alpha2, schemas/kubekey/cluster.schema.json)"
    ]
    assert tree_digest(project / "compiled") == before


def test_a_wrong_value_in_the_manifests_overrides_is_located_at_its_line(project: Path) -> None:
    edit(
        project / EAST_TARGET,
        "    secrets:\n",
        "    kubekey:\n      manifest:\n        arches: [x86]\n    secrets:\n",
    )
    line = line_of(project, EAST_TARGET, "arches: [x86]")
    assert problems_of(project) == [
        f"{EAST_TARGET}:{line}:18  $.site.kubekey.manifest.arches[0]  kubekey-manifest.yaml "
        "$.spec.arches[0]: 'x86' is not one of ['amd64', 'arm64'] "
        "(KubeKey kubekey.kubesphere.io/v1alpha2, schemas/kubekey/manifest.schema.json)"
    ]


def test_an_override_merges_into_the_generated_cluster(project: Path) -> None:
    edit(
        project / EAST_TARGET,
        "    secrets:\n",
        "    kubekey:\n      cluster:\n        system:\n          ntpServers: [10.86.3.1]\n"
        "        kubernetes:\n          maxPods: 200\n    secrets:\n",
    )
    pipeline.run(pipeline.Options(project, use_cache=False))
    spec = compiled(project, EAST, layout.KUBEKEY_CLUSTER)["spec"]
    assert spec["system"] == {"ntpServers": ["10.86.3.1"]}
    assert spec["kubernetes"]["maxPods"] == 200
    assert spec["kubernetes"]["version"] == "v1.25.16"  # merged, not replaced


def test_a_plain_text_ssh_password_is_refused_without_being_echoed(project: Path) -> None:
    rel = "inventory/classes/sites/kubekey.yml"
    edit(project / rel, "password: ?{age:kubekey/ssh-password}", "password: Kubesphere123")
    before = tree_digest(project / "compiled")
    found = problems_of(project)
    line = line_of(project, rel, "password: Kubesphere123")
    assert found == [
        f"{rel}:{line}:9  $.site.kubekey.ssh.password  must be a secret reference ?{{age:<path>}}: "
        "passwords never appear in plain text in the inventory; store it with "
        "`gen secrets set -t cn-east-1 <path>` (target: cn-east-1)"
    ]
    assert "Kubesphere123" not in "".join(found)
    assert tree_digest(project / "compiled") == before


def test_a_node_may_have_its_own_ssh_secret(project: Path) -> None:
    edit(
        project / EAST_TARGET,
        "roles: [worker]}",
        'roles: [worker], user: root, password: "?{age:redis/password}"}',
    )
    pipeline.run(pipeline.Options(project, use_cache=False))
    hosts = compiled(project, EAST, layout.KUBEKEY_CLUSTER)["spec"]["hosts"]
    assert (hosts[4]["user"], hosts[4]["password"]) == ("root", "?{age:redis/password}")
    assert hosts[0]["password"] == "?{age:kubekey/ssh-password}"
    sealed = json.loads((project / "compiled" / EAST / layout.KUBEKEY_SECRETS).read_text())
    assert sorted(sealed["secrets"]) == [
        "kubekey/ssh-password",
        "redis/password",
        "registry/password",
    ]


def test_a_registry_kk_installs_needs_a_registry_node_and_nothing_is_written(
    project: Path,
) -> None:
    edit(project / EAST_TARGET, "roles: [registry]}", "roles: [worker]}")
    before = tree_digest(project / "compiled")
    rel = "inventory/classes/sites/kubekey.yml"
    line = line_of(project, rel, "type: harbor")
    assert problems_of(project) == [
        f"{rel}:{line}:9  $.site.kubekey.registry.type  registry type harbor needs a node with "
        "role registry in site.nodes; no node has it (target: cn-east-1)"
    ]
    assert tree_digest(project / "compiled") == before


def test_kubekeys_etcd_needs_etcd_nodes(project: Path) -> None:
    target = project / EAST_TARGET
    target.write_text(
        target.read_text().replace("roles: [etcd, control-plane]", "roles: [control-plane]")
    )
    line = line_of(project, EAST_TARGET, "nodes:")
    assert problems_of(project) == [
        f"{EAST_TARGET}:{line}:5  $.site.nodes  etcd_type kubekey needs a node with "
        "role etcd in site.nodes; no node has it"
    ]


def test_a_cluster_needs_control_plane_nodes(project: Path) -> None:
    target = project / EAST_TARGET
    target.write_text(target.read_text().replace("roles: [etcd, control-plane]", "roles: [etcd]"))
    line = line_of(project, EAST_TARGET, "nodes:")
    assert problems_of(project) == [
        f"{EAST_TARGET}:{line}:5  $.site.nodes  a Cluster needs a node with role control-plane "
        "in site.nodes; no node has it"
    ]
