"""Parameter validation: the fast path (fastjsonschema) agrees with the reference (jsonschema)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from generator.build import inventory, pipeline
from generator.build import schemas as validate
from generator.core import errors
from tests.support.project import REPO


@pytest.fixture(scope="module")
def schemas() -> tuple[validate.Schemas, validate.Schemas]:
    return validate.load(REPO, fast=True), validate.load(REPO, fast=False)


@pytest.fixture(scope="module")
def params() -> dict[str, Any]:
    return inventory.Inventory(REPO).target("cn-east-1").parameters


def test_fast_path_is_built_for_the_repository_schemas(
    schemas: tuple[validate.Schemas, validate.Schemas],
) -> None:
    fast, reference = schemas
    assert fast.fast is not None and reference.fast is None


BREAKAGES = {
    "wrong type": (("services", "gatekeeper", "replicas"), "three"),
    "below minimum": (("services", "gatekeeper", "replicas"), -1),
    "bad ipv4": (("site", "ingress", "ips"), ["10.86.67.300"]),
    "leading zero ipv4": (("site", "ingress", "ips"), ["010.86.67.1"]),
    "unknown key": (("site", "colour"), "blue"),
    "bad pattern": (("site", "namespace"), "Project_1"),
    "duration without a unit": (("site", "monitoring", "eval_interval"), "30"),
    "zero duration without a unit": (("site", "monitoring", "repeat_every"), "0"),
    "enum": (("services", "gatekeeper", "anti_affinity"), "sometimes"),
    "probe oneOf": (
        ("services", "gatekeeper", "probes", "readiness"),
        {"tcp_port": 1, "command": ["x"]},
    ),
    "bool is not integer": (("services", "gatekeeper", "replicas"), True),
    "version as number": (("site", "kubernetes_version"), 1.25),
    "unknown key of a component": (("services", "gatekeeper", "schedule"), "daily"),
    "site component parameter": (
        ("site", "external"),
        {"r": {"addresses": ["10.0.0.1"], "ports": [{"port": "x"}]}},
    ),
}


@pytest.mark.parametrize("case", sorted(BREAKAGES))
def test_fast_path_rejects_what_the_reference_rejects(
    case: str, params: dict[str, Any], schemas: tuple[validate.Schemas, validate.Schemas]
) -> None:
    path, value = BREAKAGES[case]
    broken = copy.deepcopy(params)
    node = broken
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    fast, reference = schemas
    assert list(reference.validator.iter_errors(broken)), "the reference must reject it"
    assert not validate._valid(fast, broken)


def test_fast_path_accepts_the_reference_platform(
    schemas: tuple[validate.Schemas, validate.Schemas],
) -> None:
    fast, reference = schemas
    for name in ("cn-east-1", "cn-north-2"):
        target = inventory.Inventory(REPO).target(name)
        assert validate._valid(fast, target.parameters)
        assert not list(reference.validator.iter_errors(target.parameters))


def test_defaults_are_filled_without_touching_the_input(
    params: dict[str, Any], schemas: tuple[validate.Schemas, validate.Schemas]
) -> None:
    before = copy.deepcopy(params)
    filled = validate.with_defaults(schemas[1], params)
    assert params == before
    assert filled["services"]["gatekeeper"]["service_type"] == "NodePort"
    assert filled["services"]["abc-service"]["service_type"] == "ClusterIP"
    assert filled["services"]["gatekeeper"]["ports"][0]["protocol"] == "TCP"


def test_defaults_are_shared_between_targets_and_survive_a_compile_unchanged(
    params: dict[str, Any], schemas: tuple[validate.Schemas, validate.Schemas]
) -> None:
    reference = schemas[1]
    other = inventory.Inventory(REPO).target("cn-north-2").parameters
    first = validate.with_defaults(reference, params)
    second = validate.with_defaults(reference, other)
    # The reference deep copy, as with_defaults made it before sharing: equal values.
    assert first == validate.with_defaults(reference, copy.deepcopy(params))
    shared = [
        (a, b)
        for name in set(first["services"]) & set(second["services"])
        for key in ("probes", "volumes", "host_paths", "ingress")
        if key not in params["services"][name] and key not in other["services"][name]
        for a, b in [(first["services"][name].get(key), second["services"][name].get(key))]
        if isinstance(a, dict | list)
    ]
    assert shared and all(a is b for a, b in shared)  # one default object, not a copy per target
    filled = copy.deepcopy([p.filled for p in reference.plans.values()])
    ctx = pipeline.Context.create(REPO, sites=2)
    ctx.schemas = reference
    outputs = pipeline.compile_sites(ctx, pipeline.select(ctx.inv, ()), jobs=1)
    assert outputs  # a whole compile read the shared defaults and changed none of them
    after = [p.filled for p in reference.plans.values()]
    assert [{k: now[k] for k in then} for now, then in zip(after, filled, strict=False)] == filled


def test_unreadable_schema_is_a_located_error(tmp_path: Path) -> None:
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "target.schema.json").write_text(
        '{"type": "object",\n  "required": [}\n'
    )
    with pytest.raises(
        errors.ProblemReport, match=r"schemas/target.schema.json:2:\d+  invalid JSON"
    ):
        validate.load(tmp_path)
