"""Stage: the agent's least-privilege RBAC, computed from the site's own objects, and its templates.

The site's templates have been rendered and its EncryptedSecrets placed. This stage computes the
RBAC from those objects (``rules``, pure) and renders the templates that read it, the template
variable ``agent_rbac`` (``components/gen-agent/rbac.yml.j2``), in a second, late render of just
those templates: no template is rendered twice. It grants exactly:

- per namespace the site's objects live in, a Role for the kinds found there: get, list (the
  agent's no-op check lists by its label), create, patch (server-side apply) and delete (prune);
  delete is left out for PersistentVolumeClaims unless the site allows pruning them;
- cluster-scoped kinds (Namespaces, CRDs, ...) through a ClusterRole restricted by ``resourceNames``
  to the site's own objects, with delete only where pruning may delete them (never Namespaces
  unless allowed);
- for the site's own ClusterRoles and Roles (e.g. the monitoring stack's Prometheus and
  kube-state-metrics): ``escalate`` and ``bind`` on exactly those names, since Kubernetes lets
  nobody write or bind a role granting more than they hold, and the agent holds none of what those
  roles grant (list and watch of nodes and pods, ...). What they grant is in the signed, reviewed
  compiled objects; no other role can be escalated or bound;
- in the agent's namespace: its ApplySet parent and status ConfigMaps, and Events;
- for a StatefulSet that opted in to the recreate policy (``core.objects.recreates``) and has
  volumeClaimTemplates: get, list and patch on the PVCs of its namespace (to grow them; never
  delete unless pruning them is allowed) and get on the StorageClasses its templates name
  (``resourceNames``), to read allowVolumeExpansion. Deleting the StatefulSet itself is the
  prune grant.

An EncryptedSecret counts as the Secret the agent turns it into. No wildcard, no cluster-admin,
nothing cluster-wide that is not one of the site's own objects. The agent applies this RBAC itself
afterwards: it may narrow it, and widening it (a new namespace or kind) needs an administrator
once, because Kubernetes forbids granting what one does not hold.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from generator.build.stages import SiteBuild
from generator.core.objects import is_namespaced, recreates
from generator.formats import encrypted_secret as encrypted

if TYPE_CHECKING:
    from generator.build.pipeline import Context

VARIABLE = "agent_rbac"
"""The template variable holding the RBAC: templates reading it are rendered by this stage."""
RBAC_GROUP = "rbac.authorization.k8s.io"
APPLY_VERBS = ("get", "list", "create", "patch")
CLUSTER_VERBS = ("get", "create", "patch")
RESIZE_VERBS = ("get", "list", "patch")
"""On the PVCs of a StatefulSet that opted in to the recreate policy: find and grow them."""
PVC = ("", "persistentvolumeclaims")
STORAGE_CLASSES = ("storage.k8s.io", "storageclasses")

# Resource names of the kinds compiled sites use; other kinds are pluralised the way kubectl
# guesses.
PLURALS = {
    "Endpoints": "endpoints",
    "EndpointSlice": "endpointslices",
    "Ingress": "ingresses",
    "IngressClass": "ingressclasses",
    "NetworkPolicy": "networkpolicies",
    "PriorityClass": "priorityclasses",
    "StorageClass": "storageclasses",
    "RuntimeClass": "runtimeclasses",
    "PodSecurityPolicy": "podsecuritypolicies",
    "CustomResourceDefinition": "customresourcedefinitions",
    "ResourceQuota": "resourcequotas",
    "Namespace": "namespaces",
    "ServiceAccount": "serviceaccounts",
}


def render(ctx: Context, build: SiteBuild) -> SiteBuild:
    """The site's objects plus those of the templates that read ``agent_rbac``, rendered with it."""
    site = build.params["site"]
    agent = site.get("agent") or {}
    rbac = rules(
        [item.obj for item in build.rendered],
        site["namespace"],
        agent.get("namespace", "gen-agent"),
        agent.get("prune") or {},
    )
    late = ctx.renderer.site(build.name, build.params, late={VARIABLE: rbac})
    return replace(build, rendered=(*build.rendered, *late)) if late else build


def rules(
    objects: list[dict[str, Any]],
    default_namespace: str,
    agent_namespace: str,
    prune: dict[str, Any],
) -> dict[str, Any]:
    """RBAC rules for applying and pruning ``objects`` and running the agent in
    ``agent_namespace``."""
    scopes = _crd_scopes(objects)
    namespaced: dict[str, set[tuple[str, str]]] = {
        agent_namespace: {("", "configmaps"), ("", "events")}
    }
    cluster: dict[tuple[str, str], set[str]] = {}
    roles: dict[str, set[str]] = {}
    """Namespace ("" for ClusterRoles) -> the site's own roles there, which the agent must be able
    to escalate and bind."""
    for obj in objects:
        group, kind = obj["apiVersion"].rpartition("/")[0], obj["kind"]
        if encrypted.is_encrypted(obj):
            group, kind = "", "Secret"
        plural, scoped = scopes.get((group, kind)) or (plural_of(kind), is_namespaced(kind))
        if (group, plural) in ((RBAC_GROUP, "roles"), (RBAC_GROUP, "clusterroles")):
            where = (obj["metadata"].get("namespace") or default_namespace) if scoped else ""
            roles.setdefault(where, set()).add(obj["metadata"]["name"])
        if scoped:
            namespace = obj["metadata"].get("namespace") or default_namespace
            namespaced.setdefault(namespace, set()).add((group, plural))
        else:
            cluster.setdefault((group, plural), set()).add(obj["metadata"]["name"])
    for resources in namespaced.values():
        resources |= {(RBAC_GROUP, "roles"), (RBAC_GROUP, "rolebindings")}
    name = cluster_role_name(agent_namespace)
    cluster.setdefault((RBAC_GROUP, "clusterroles"), set()).add(name)
    cluster.setdefault((RBAC_GROUP, "clusterrolebindings"), set()).add(name)
    resize, classes = _resizing(objects, default_namespace)
    return {
        "cluster_rules": _cluster_rules(cluster, prune)
        + _read_rules(classes)
        + _role_rules("clusterroles", roles.get("", set())),
        "namespaces": [
            {
                "namespace": ns,
                "rules": _namespaced_rules(res, prune, ns == agent_namespace, ns in resize)
                + _role_rules("roles", roles.get(ns, set())),
            }
            for ns, res in sorted(namespaced.items())
        ],
    }


def _role_rules(plural: str, names: set[str]) -> list[dict[str, Any]]:
    """``escalate`` and ``bind`` on the site's own roles of one kind, by name (none: no rule)."""
    if not names:
        return []
    return [
        {
            "apiGroups": [RBAC_GROUP],
            "resources": [plural],
            "resourceNames": sorted(names),
            "verbs": ["bind", "escalate"],
        }
    ]


def _resizing(objects: list[dict[str, Any]], default_namespace: str) -> tuple[set[str], set[str]]:
    """The namespaces whose PVCs the recreate policy may grow, and the StorageClasses it reads."""
    namespaces, classes = set(), set()
    for obj in objects:
        templates = (obj.get("spec") or {}).get("volumeClaimTemplates") or []
        if obj["kind"] != "StatefulSet" or not recreates(obj) or not templates:
            continue
        namespaces.add(obj["metadata"].get("namespace") or default_namespace)
        classes |= {t["spec"]["storageClassName"] for t in templates if _class_of(t)}
    return namespaces, classes


def _class_of(template: dict[str, Any]) -> str:
    return str((template.get("spec") or {}).get("storageClassName") or "")


def _read_rules(classes: set[str]) -> list[dict[str, Any]]:
    if not classes:
        return []
    group, plural = STORAGE_CLASSES
    return [
        {
            "apiGroups": [group],
            "resources": [plural],
            "resourceNames": sorted(classes),
            "verbs": ["get"],
        }
    ]


def cluster_role_name(agent_namespace: str) -> str:
    """Name of the agent's ClusterRole and ClusterRoleBinding (one agent per namespace)."""
    return f"gen-agent.{agent_namespace}"


def _namespaced_rules(
    resources: set[tuple[str, str]], prune: dict[str, Any], own: bool, resize: bool
) -> list[dict[str, Any]]:
    by_group: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    for group, plural in sorted(resources):
        verbs = _verbs(plural, prune, own)
        by_group.setdefault((group, verbs), []).append(plural)
    if resize and PVC not in resources:  # the site's own PVCs already grant get, list and patch
        by_group.setdefault((PVC[0], RESIZE_VERBS), []).append(PVC[1])
    return [
        {"apiGroups": [group], "resources": plurals, "verbs": list(verbs)}
        for (group, verbs), plurals in sorted(by_group.items())
    ]


def _verbs(plural: str, prune: dict[str, Any], own: bool) -> tuple[str, ...]:
    if plural == "events" and own:
        return ("create", "patch")
    if plural == "persistentvolumeclaims" and not prune.get("persistent_volume_claims", False):
        return APPLY_VERBS
    return (*APPLY_VERBS, "delete")


def _cluster_rules(
    cluster: dict[tuple[str, str], set[str]], prune: dict[str, Any]
) -> list[dict[str, Any]]:
    out = []
    for (group, plural), names in sorted(cluster.items()):
        deletable = plural != "namespaces" or prune.get("namespaces", False)
        verbs = [*CLUSTER_VERBS, "delete"] if deletable else list(CLUSTER_VERBS)
        out.append(
            {
                "apiGroups": [group],
                "resources": [plural],
                "resourceNames": sorted(names),
                "verbs": verbs,
            }
        )
    return out


def _crd_scopes(objects: list[dict[str, Any]]) -> dict[tuple[str, str], tuple[str, bool]]:
    """(group, kind) -> (plural, namespaced) for every CRD the site itself defines."""
    found = {}
    for obj in objects:
        if obj["kind"] == "CustomResourceDefinition":
            spec = obj.get("spec") or {}
            names = spec.get("names") or {}
            found[(spec.get("group", ""), names.get("kind", ""))] = (
                names.get("plural", ""),
                spec.get("scope") == "Namespaced",
            )
    return found


def plural_of(kind: str) -> str:
    """The resource name of a kind (kubectl's guess for kinds it does not know)."""
    if kind in PLURALS:
        return PLURALS[kind]
    lower = kind.lower()
    if lower.endswith(("s", "x", "z", "ch", "sh")):
        return lower + "es"
    if lower.endswith("y") and lower[-2:-1] not in "aeiou":
        return lower[:-1] + "ies"
    return lower + "s"
