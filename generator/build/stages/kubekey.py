"""Stage: the site's KubeKey files, checked against KubeKey's own v1alpha2 types.

- ``kubekey-manifest.yaml``: the artifact Manifest (``kk artifact export -m``): every image the
  site's objects run and, for a site with ``site.kubekey``, its arches, operating systems,
  Kubernetes distribution and component versions;
- ``kubekey-cluster.yaml`` (only with ``site.kubekey``): the Cluster (``kk create cluster -f``):
  hosts and role groups from ``site.nodes``, the control-plane endpoint, Kubernetes, etcd, network
  and registry. Passwords and private keys stay ``?{age:<path>}`` references;
- ``kubekey-secrets.json``: the ciphertext of each reference in the Cluster, so that
  ``gen secrets kubekey-config`` can write the cleartext config inside the site with its key.

``site.kubekey.cluster`` and ``site.kubekey.manifest`` are merged over the generated specs, for
what KubeKey allows beyond gen's parameters. Both documents are checked against
``schemas/kubekey/``; a violation is located at the inventory line that set the value.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from generator.build import fastcheck, jsonschema_compat
from generator.build.stages import SiteBuild
from generator.build.stages.secrets import KUBEKEY_KEY
from generator.core import errors, layout, yamlio
from generator.core.errors import Problem
from generator.core.jsonpath import format_path
from generator.core.location import Location
from generator.formats import secret_refs as refs

if TYPE_CHECKING:
    import jsonschema

    from generator.build.pipeline import Context

API_VERSION = "kubekey.kubesphere.io/v1alpha2"
CLUSTER_SCHEMA = "schemas/kubekey/cluster.schema.json"
MANIFEST_SCHEMA = "schemas/kubekey/manifest.schema.json"
ROLES = ("etcd", "control-plane", "worker", "registry")
"""KubeKey's role groups, in the order the Cluster lists them."""

Locate = Callable[[tuple[str | int, ...]], Location | None]


def add(ctx: Context, build: SiteBuild) -> SiteBuild:
    """The site's KubeKey files added; ProblemReport with every schema violation, located."""
    site = build.params["site"]
    kubekey = site.get("kubekey")
    docs = {layout.KUBEKEY_MANIFEST: (manifest(build.name, site, build.images), MANIFEST_SCHEMA)}
    if kubekey is not None:
        docs[layout.KUBEKEY_CLUSTER] = (cluster(build.name, site), CLUSTER_SCHEMA)
    problems = [
        problem
        for rel, (doc, schema) in docs.items()
        for problem in check(ctx.root, rel, doc, schema, build.target.location, kubekey or {})
    ]
    if kubekey is not None:
        problems += roles(site, build.target.location)
    if problems:
        raise errors.ProblemReport(problems)
    files = dict(build.files)
    for rel, (doc, _) in docs.items():
        files[rel] = yamlio.dump(doc).encode()
    if kubekey is not None:
        sealed = ciphertexts(docs[layout.KUBEKEY_CLUSTER][0], build.params.get(KUBEKEY_KEY) or {})
        if sealed:
            files[layout.KUBEKEY_SECRETS] = secrets_file(build.name, sealed)
    schemas = tuple(s for _, s in docs.values())
    return replace(build, files=files, inputs=(*build.inputs, *schemas))


# --------------------------------------------------------------------------------------------
# the documents


def manifest(name: str, site: dict[str, Any], images: tuple[str, ...]) -> dict[str, Any]:
    """The artifact Manifest: the images, and with ``site.kubekey`` everything else kk exports."""
    kubekey = site.get("kubekey")
    spec: dict[str, Any] = {}
    if kubekey is not None:
        artifact = kubekey["artifact"]
        spec = {
            "arches": sorted({node["arch"] for node in site["nodes"]} or {"amd64"}),
            "operatingSystems": [_os(entry) for entry in artifact["operating_systems"]],
            "kubernetesDistributions": [
                {"type": "kubernetes", "version": _version(site["kubernetes_version"])}
            ],
            "components": _components(kubekey),
        }
    spec["images"] = list(images)
    return _document("Manifest", name, _merged(spec, (kubekey or {}).get("manifest") or {}))


def cluster(name: str, site: dict[str, Any]) -> dict[str, Any]:
    """The Cluster ``kk create cluster -f`` reads, secrets as references."""
    kubekey = site["kubekey"]
    nodes = site["nodes"]
    endpoint = kubekey["control_plane_endpoint"]
    network = kubekey["network"]
    spec = {
        "hosts": [_host(node, kubekey["ssh"]) for node in nodes],
        "roleGroups": {
            role: [n["name"] for n in nodes if role in n.get("roles", ())]
            for role in ROLES
            if any(role in n.get("roles", ()) for n in nodes)
        },
        "controlPlaneEndpoint": {
            "internalLoadbalancer": endpoint["internal_loadbalancer"],
            "domain": endpoint["domain"],
            "address": endpoint["address"],
            "port": endpoint["port"],
        },
        "kubernetes": {
            "version": _version(site["kubernetes_version"]),
            "clusterName": kubekey["cluster_name"],
            "autoRenewCerts": kubekey["auto_renew_certs"],
            "containerManager": kubekey["container_manager"],
        },
        "etcd": {"type": kubekey["etcd_type"]},
        "network": {
            "plugin": network["plugin"],
            "kubePodsCIDR": network["pods_cidr"],
            "kubeServiceCIDR": network["service_cidr"],
            "multusCNI": {"enabled": network["multus"]},
        },
        "registry": _registry(site),
    }
    return _document("Cluster", name, _merged(spec, kubekey["cluster"]))


def _document(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": kind, "metadata": {"name": name}, "spec": spec}


def _version(version: str) -> str:
    """KubeKey spells Kubernetes versions with a ``v``: ``1.25.16`` -> ``v1.25.16``."""
    return version if version.startswith("v") else f"v{version}"


def _host(node: dict[str, Any], ssh: dict[str, Any]) -> dict[str, Any]:
    host = {
        "name": node["name"],
        "address": node["address"],
        "internalAddress": node.get("internal_address", node["address"]),
        "port": node.get("port", ssh["port"]),
        "user": node.get("user", ssh["user"]),
    }
    for key, field in (("password", "password"), ("private_key", "privateKey")):
        if key in node or key in ssh:
            host[field] = node.get(key, ssh.get(key))
    if "private_key_path" in ssh and "private_key" not in host:
        host["privateKeyPath"] = ssh["private_key_path"]
    host["arch"] = node["arch"]
    if node.get("labels"):
        host["labels"] = dict(sorted(node["labels"].items()))
    return host


def _registry(site: dict[str, Any]) -> dict[str, Any]:
    settings = site["kubekey"]["registry"]
    registry: dict[str, Any] = {"type": settings["type"]} if settings["type"] else {}
    registry["privateRegistry"] = site["registry"]
    if "namespace_override" in settings:
        registry["namespaceOverride"] = settings["namespace_override"]
    for key, field in (
        ("registry_mirrors", "registryMirrors"),
        ("insecure_registries", "insecureRegistries"),
    ):
        if settings[key]:
            registry[field] = list(settings[key])
    auth = site.get("registry_auth") or {}
    if "password" in auth:  # a whole dockerconfigjson has no place in KubeKey's auths
        server = auth.get("server") or site["registry"].split("/", 1)[0]
        registry["auths"] = {server: {"username": auth["username"], "password": auth["password"]}}
    return registry


def _os(entry: dict[str, Any]) -> dict[str, Any]:
    system = {"arch": entry["arch"], "type": entry["type"], "id": entry["id"]}
    system["version"] = entry["version"]
    if "os_image" in entry:
        system["osImage"] = entry["os_image"]
    if "iso" in entry:
        iso = entry["iso"]
        system["repository"] = {"iso": {"localPath": iso["local_path"], "url": iso["url"]}}
    return system


def _components(kubekey: dict[str, Any]) -> dict[str, Any]:
    """Component versions; the registry's own parts only when kk installs that registry."""
    artifact = kubekey["artifact"]
    components: dict[str, Any] = {
        "helm": {"version": artifact["helm"]},
        "cni": {"version": artifact["cni"]},
        "etcd": {"version": artifact["etcd"]},
        "containerRuntimes": [
            {"type": kubekey["container_manager"], "version": artifact["container_runtime"]}
        ],
        "crictl": {"version": artifact["crictl"]},
    }
    registry = kubekey["registry"]["type"]
    if registry == "harbor":
        components["harbor"] = {"version": artifact["harbor"]}
        components["docker-compose"] = {"version": artifact["docker_compose"]}
    elif registry == "registry":
        components["docker-registry"] = {"version": artifact["docker_registry"]}
    return components


def _merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` merged into ``base``: dicts merge, anything else replaces."""
    merged = dict(base)
    for key, value in over.items():
        old = merged.get(key)
        merged[key] = (
            _merged(old, value) if isinstance(old, dict) and isinstance(value, dict) else value
        )
    return merged


# --------------------------------------------------------------------------------------------
# checks and secrets


_VALIDATORS: dict[str, jsonschema.Draft202012Validator] = {}
"""Validators by schema text: the schema is read for every site, compiled once."""
_FAST: dict[str, fastcheck.FastCheck | None] = {}
"""The fast yes/no checks (``fastcheck``) by schema text; None where the schema has none."""


def check(
    root: Path,
    rel: str,
    doc: dict[str, Any],
    schema: str,
    locate: Locate,
    overrides: dict[str, Any],
) -> Iterator[Problem]:
    """Each violation of KubeKey's schema: at the inventory line of the value where the site set
    it (``site.kubekey.cluster``/``.manifest``), else at ``site.kubekey``."""
    text = (root / schema).read_text(encoding="utf-8")
    if text not in _FAST:
        _FAST[text] = _fast_check(text, schema)
    fast = _FAST[text]
    if fast is not None:
        try:
            fast(doc)
            return  # valid: jsonschema (the reference, which explains) is not even imported
        except Exception:  # invalid (or the generated code choked): the reference decides
            pass
    if text not in _VALIDATORS:
        import jsonschema

        _VALIDATORS[text] = jsonschema.Draft202012Validator(json.loads(text))
    key = "cluster" if rel == layout.KUBEKEY_CLUSTER else "manifest"
    for error in sorted(_VALIDATORS[text].iter_errors(doc), key=lambda e: list(map(str, e.path))):
        path = tuple(error.path)
        inventory: tuple[str | int, ...] = ("site", "kubekey")
        if path[:1] == ("spec",) and _sets(overrides.get(key) or {}, path[1:]):
            inventory = (*inventory, key, *path[1:])
        yield Problem(
            locate(inventory) or locate(("site",)),
            format_path(inventory),
            f"{rel} {format_path(path)}: {error.message} (KubeKey {API_VERSION}, {schema})",
        )


def _fast_check(text: str, schema: str) -> fastcheck.FastCheck | None:
    """fastjsonschema's check of a KubeKey schema (with jsonschema's verdicts, see
    ``jsonschema_compat``); None when it cannot have one (the reference alone decides)."""

    def local(ref: str) -> str:
        if not ref.startswith("#"):
            raise jsonschema_compat.Unsupported(f"$ref {ref!r}")
        return ref

    try:
        fast = jsonschema_compat.to_draft7(json.loads(text), local)
        fast["$schema"] = jsonschema_compat.DRAFT7
        return fastcheck.cached(fast, {}, schema)
    except Exception:
        return None


def roles(site: dict[str, Any], locate: Locate) -> list[Problem]:
    """What ``kk create cluster`` would stop on: a role group it needs that no node has."""
    kubekey = site["kubekey"]
    needed: list[tuple[str, tuple[str, ...], str]] = [
        ("control-plane", ("site", "nodes"), "a Cluster")
    ]
    if kubekey["etcd_type"] == "kubekey":
        needed.append(("etcd", ("site", "nodes"), "etcd_type kubekey"))
    if kubekey["registry"]["type"]:
        where = ("site", "kubekey", "registry", "type")
        needed.append(("registry", where, f"registry type {kubekey['registry']['type']}"))
    have = {role for node in site["nodes"] for role in node.get("roles", ())}
    return [
        Problem(
            locate(path) or locate(("site",)),
            format_path(path),
            f"{why} needs a node with role {role} in site.nodes; no node has it",
        )
        for role, path, why in needed
        if role not in have
    ]


def _sets(override: Any, path: tuple[Any, ...]) -> bool:
    """Whether the site's override sets ``path`` (or a part of it)."""
    for part in path:
        if isinstance(override, dict) and part in override:
            override = override[part]
        elif isinstance(override, list) and isinstance(part, int) and part < len(override):
            override = override[part]
        else:
            return False
    return True


def ciphertexts(doc: dict[str, Any], sealed: dict[str, str]) -> dict[str, str]:
    """Secret path -> ciphertext of every reference in ``doc`` (the sealing stage read them)."""
    return {
        ref.path: sealed[ref.path]
        for ref in sorted({refs.parse(text) for _, text in refs.find(doc)})
        if ref.path in sealed
    }


def secrets_file(site: str, sealed: dict[str, str]) -> bytes:
    """``kubekey-secrets.json``: the site and its references' ciphertexts, sorted."""
    body = {"site": site, "secrets": dict(sorted(sealed.items()))}
    return (json.dumps(body, indent=1) + "\n").encode()
