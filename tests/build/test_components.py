"""Component types: a component's schema.json and checks apply to its services, and only to them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from generator.build import inventory, pipeline
from generator.build import schemas as validate
from generator.core import errors
from tests.support.project import REPO
from tests.support.tree import write_tree

TARGET = "inventory/targets/x.yml"
SITE = """
parameters:
  site:
    name: x
    kubernetes_version: "1.25.16"
    namespace: apps
    registry: registry.local
    ingress: {ips: [10.0.0.1]}
    components: []
  services:
"""
BACKUP_JOB = {
    "components/backup-job/schema.json": """
        {
          "$schema": "https://json-schema.org/draft/2020-12/schema",
          "type": "object",
          "required": ["schedule"],
          "x-gen-checks": ["unique-ports"],
          "properties": {
            "schedule": {"type": "string", "pattern": "^[-*/,0-9 ]+$"},
            "retries": {"type": "integer", "minimum": 0, "default": 3},
            "ports": {"type": "array", "items": {"type": "object", "properties": {
              "port": {"type": "integer"}, "name": {"type": "string"}}}, "default": []}
          }
        }
        """,
    "components/backup-job/configmap.yml.j2": """
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: {{ name }}
        data:
          schedule: {{ service.schedule | tojson }}
          retries: {{ service.retries | string | tojson }}
        """,
    "components/plain/configmap.yml.j2": """
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: {{ name }}
        data:
          colour: {{ service.colour | tojson }}
          enabled: {{ service.enabled | string | tojson }}
        """,
}


def make_project(root: Path, services: str, extra: dict[str, str] | None = None) -> Path:
    """The repository's schemas/ and stateful-service, backup-job, and plain (no schema.json)."""
    shutil.copytree(REPO / "schemas", root / "schemas")
    stateful = Path("components", "stateful-service")
    shutil.copytree(REPO / stateful, root / stateful)
    return write_tree(root, {**BACKUP_JOB, TARGET: SITE + services, **(extra or {})})


def problems(root: Path) -> list[str]:
    schemas = validate.load(root, fast=False)
    target = inventory.Inventory(root).target("x")
    components = [p.name for p in (root / "components").iterdir()]
    return [p.format() for p in validate.check(schemas, target, components)]


def test_a_component_schema_validates_its_services_and_fills_its_defaults(tmp_path: Path) -> None:
    root = make_project(
        tmp_path,
        """
    nightly:
      component: backup-job
      schedule: "0 3 * * *"
""",
    )
    assert problems(root) == []
    pipeline.run(pipeline.Options(root, use_cache=False))
    text = (root / "compiled/x/manifests/apps/configmap-nightly.yaml").read_text()
    assert 'schedule: "0 3 * * *"' in text and 'retries: "3"' in text


def test_parameters_of_another_component_are_unknown_keys(tmp_path: Path) -> None:
    root = make_project(
        tmp_path,
        """
    nightly:
      component: backup-job
      schedule: "0 3 * * *"
      replicas: 2
""",
    )
    assert problems(root) == [
        f"{TARGET}:14:7  $.services.nightly.replicas  unknown key 'replicas'; expected one of: "
        "component, depends_on, description, enabled, labels, monitoring, ports, retries, schedule"
    ]


def test_a_wrong_or_missing_component_parameter_is_a_located_error(tmp_path: Path) -> None:
    root = make_project(
        tmp_path,
        """
    nightly:
      component: backup-job
      schedule: 3am
      retries: -1
    other:
      component: backup-job
""",
    )
    assert problems(root) == [
        f"{TARGET}:14:7  $.services.nightly.retries  -1 is less than the minimum of 0",
        f"{TARGET}:13:7  $.services.nightly.schedule  '3am' does not match '^[-*/,0-9 ]+$'",
        f"{TARGET}:15:5  $.services.other  'schedule' is a required property",
    ]


def test_stateful_service_still_requires_its_own_parameters(tmp_path: Path) -> None:
    root = make_project(
        tmp_path,
        """
    web:
      component: stateful-service
      schedule: "0 3 * * *"
""",
    )
    assert problems(root) == [
        f"{TARGET}:11:5  $.services.web  'image' is a required property",
        f"{TARGET}:11:5  $.services.web  'ports' is a required property",
        f"{TARGET}:11:5  $.services.web  'tag' is a required property",
        f"{TARGET}:13:7  $.services.web.schedule  unknown key 'schedule'; expected one of: "
        "annotations, anti_affinity, args, command, component, config, depends_on, description, "
        "enabled, env, host_paths, image, ingress, labels, monitoring, on_immutable_change, ports, "
        "probes, replicas, resources, service_type, tag, volumes",
    ]


def test_a_component_gets_only_the_checks_it_names(tmp_path: Path) -> None:
    root = make_project(
        tmp_path,
        """
    nightly:
      component: backup-job
      schedule: "0 3 * * *"
      ports: [{port: 80}, {port: 80}]
""",
        {"components/backup-job/configmap.yml.j2": ""},
    )
    duplicate = f"{TARGET}:14:28  $.services.nightly.ports[1].port  duplicate port 80"
    assert problems(root) == [duplicate]
    (root / "components/backup-job/schema.json").write_text(
        (root / "components/backup-job/schema.json").read_text().replace('["unique-ports"]', "[]")
    )
    assert problems(root) == []


@pytest.mark.parametrize(
    ("setting", "annotations"),
    [
        ("", None),
        ("on_immutable_change: report", {"team": "db"}),
        (
            "on_immutable_change: recreate",
            {"team": "db", "gen-gitops.io/on-immutable-change": "recreate"},
        ),
    ],
)
def test_only_the_recreate_opt_in_annotates_the_statefulset_for_the_agent(
    tmp_path: Path, setting: str, annotations: dict[str, str] | None
) -> None:
    own = "annotations: {team: db}" if annotations else ""
    root = make_project(
        tmp_path,
        f"""
    web:
      component: stateful-service
      image: web
      tag: v1
      ports: [{{port: 80}}]
      volumes: [{{name: data, mount_path: /data, size: 10Gi}}]
      {own}
      {setting}
""",
    )
    pipeline.run(pipeline.Options(root, use_cache=False))
    sts = yaml.safe_load(next((root / "compiled/x").rglob("statefulset-web.yaml")).read_text())
    assert sts["metadata"].get("annotations") == annotations


def test_a_wrong_on_immutable_change_is_a_located_error(tmp_path: Path) -> None:
    root = make_project(
        tmp_path,
        """
    web:
      component: stateful-service
      image: web
      tag: v1
      ports: [{port: 80}]
      on_immutable_change: delete
""",
    )
    assert problems(root) == [
        f"{TARGET}:16:7  $.services.web.on_immutable_change  'delete' is not one of "
        "['report', 'recreate']"
    ]


def test_stateful_service_checks_still_apply_to_its_services(tmp_path: Path) -> None:
    root = make_project(
        tmp_path,
        """
    web:
      component: stateful-service
      image: web
      tag: v1
      ports: [{port: 80}]
      ingress: [{port: 81}]
""",
    )
    assert problems(root) == [
        f"{TARGET}:16:18  $.services.web.ingress[0].port  "
        "port 81 is not one of the service's ports [80]"
    ]


def test_a_component_without_schema_takes_any_parameters_as_before(tmp_path: Path) -> None:
    root = make_project(
        tmp_path,
        """
    paint:
      component: plain
      colour: blue
      anything: {at: all}
""",
    )
    assert problems(root) == []
    pipeline.run(pipeline.Options(root, use_cache=False))
    text = (root / "compiled/x/manifests/apps/configmap-paint.yaml").read_text()
    assert "colour: blue" in text and 'enabled: "True"' in text


def test_the_common_parameters_are_checked_for_every_component(tmp_path: Path) -> None:
    root = make_project(
        tmp_path,
        """
    paint:
      component: plain
      enabled: "yes"
""",
    )
    assert problems(root) == [
        f"{TARGET}:13:7  $.services.paint.enabled  'yes' is not of type 'boolean'"
    ]


SCHEMA = "components/backup-job/schema.json"
BROKEN = {
    '{"x-gen-checks": ["nope"]}': f"{SCHEMA}  $.x-gen-checks[0]  unknown check 'nope'; "
    "expected one of: ingress, unique-mounts, unique-ports",
    '{"properties": {"enabled": {"type": "string"}}}': f"{SCHEMA}  $.properties.enabled  "
    "'enabled' is a parameter every service has "
    "(schemas/service.schema.json); a component may not redefine it",
    '{"additionalProperties": false}': f"{SCHEMA}  $.additionalProperties  "
    "leave additionalProperties out: a service takes "
    "the common parameters and the component's, and no others",
    '{"type": 5}': f"{SCHEMA}  $.type  "
    "invalid schema: 5 is not valid under any of the given schemas",
    '{"type": "object",\n "required": [}': f"{SCHEMA}:2:15  invalid JSON: Expecting value",
}


@pytest.mark.parametrize("schema", BROKEN)
def test_a_broken_component_schema_is_a_located_error(tmp_path: Path, schema: str) -> None:
    root = make_project(tmp_path, "", {SCHEMA: schema})
    with pytest.raises(errors.ProblemReport) as info:
        validate.load(root)
    assert str(info.value) == BROKEN[schema]


def test_creating_a_component_schema_recompiles_the_sites_using_it(tmp_path: Path) -> None:
    root = make_project(
        tmp_path,
        """
    paint:
      component: plain
      colour: blue
""",
    )
    assert pipeline.run(pipeline.Options(root)).compiled == ("x",)
    assert pipeline.run(pipeline.Options(root)).skipped == ("x",)
    write_tree(root, {"components/plain/schema.json": '{"properties": {"colour": {"const": 1}}}'})
    with pytest.raises(errors.ProblemReport, match=r"\$.services.paint.colour  1 was expected"):
        pipeline.run(pipeline.Options(root))
