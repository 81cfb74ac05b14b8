"""The compile stages: the agent's RBAC comes from the objects already rendered,
never a re-render."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from generator.build import pipeline, render
from generator.build.stages import agent_rbac
from generator.core import yamlio
from generator.core.objects import ON_IMMUTABLE_CHANGE

RBAC_TEMPLATE = "gen-agent/rbac.yml.j2"


def count_renders(monkeypatch: pytest.MonkeyPatch) -> Counter[tuple[str, str]]:
    """(template, unit) -> times rendered, from now on."""
    counts: Counter[tuple[str, str]] = Counter()
    original = render.Renderer._render

    def counting(
        self: render.Renderer, name: str, context: dict[str, Any], source: str, unit: str
    ) -> str:
        counts[(name, unit)] += 1
        return original(self, name, context, source, unit)

    monkeypatch.setattr(render.Renderer, "_render", counting)
    return counts


def test_every_template_is_rendered_once_per_unit_agent_rbac_included(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    counts = count_renders(monkeypatch)
    pipeline.run(pipeline.Options(project, targets=("cn-east-1",), use_cache=False, jobs=1))
    assert counts[(RBAC_TEMPLATE, "service gen-agent")] == 1
    assert max(counts.values()) == 1, [k for k, n in counts.items() if n > 1]


def test_the_agent_rbac_covers_the_site_objects_and_its_secrets(project: Path) -> None:
    pipeline.run(pipeline.Options(project, targets=("cn-east-1",), use_cache=False, jobs=1))
    site = project / "compiled" / "cn-east-1" / "manifests"
    kinds = {p.name.split("-", 1)[0] for p in site.rglob("*.yaml")}
    granted = set()
    for role in site.rglob("role-gen-agent.yaml"):
        for rule in yamlio.load_rendered(role.read_text(), str(role))[0]["rules"]:
            granted |= set(rule["resources"])
    assert {"statefulsets", "services", "configmaps", "roles", "rolebindings"} <= granted
    assert ("encryptedsecret" in kinds) == ("secrets" in granted)


def test_a_template_reading_a_late_variable_waits_for_its_value(tmp_path: Path) -> None:
    (tmp_path / "components" / "c").mkdir(parents=True)
    early = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: early}\n"
    late = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: late}\ndata: {n: '{{ count }}'}\n"
    (tmp_path / "components" / "c" / "a.yml.j2").write_text(early)
    (tmp_path / "components" / "c" / "b.yml.j2").write_text(late)
    renderer = render.Renderer(tmp_path, late=frozenset({"count"}))
    params: dict[str, Any] = {
        "site": {"components": ["c"], "kubernetes_version": "1.33"},
        "services": {},
    }
    assert [r.obj["metadata"]["name"] for r in renderer.site("s", params)] == ["early"]
    [item] = renderer.site("s", params, late={"count": 1})
    assert item.obj["data"] == {"n": "1"}


def _statefulset(annotations: dict[str, str], storage_class: str = "") -> dict[str, Any]:
    template: dict[str, Any] = {"metadata": {"name": "data"}, "spec": {}}
    if storage_class:
        template["spec"]["storageClassName"] = storage_class
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "db", "namespace": "apps", "annotations": annotations},
        "spec": {"volumeClaimTemplates": [template]},
    }


def test_the_recreate_opt_in_grants_growing_pvcs_and_reading_their_storage_class_only() -> None:
    opted = _statefulset({ON_IMMUTABLE_CHANGE: "recreate"}, "fast")
    rbac = agent_rbac.rules([opted], "apps", "gen-agent", {})
    [apps] = [n["rules"] for n in rbac["namespaces"] if n["namespace"] == "apps"]
    assert {"apiGroups": [""], "resources": ["persistentvolumeclaims"],
            "verbs": ["get", "list", "patch"]} in apps  # fmt: skip
    assert rbac["cluster_rules"][-1] == {
        "apiGroups": ["storage.k8s.io"],
        "resources": ["storageclasses"],
        "resourceNames": ["fast"],
        "verbs": ["get"],
    }
    plain = agent_rbac.rules([_statefulset({})], "apps", "gen-agent", {})
    text = str(plain)
    assert "persistentvolumeclaims" not in text and "storageclasses" not in text
    unnamed = agent_rbac.rules([_statefulset({ON_IMMUTABLE_CHANGE: "recreate"})], "apps", "g", {})
    assert "storageclasses" not in str(unnamed) and "persistentvolumeclaims" in str(unnamed)
