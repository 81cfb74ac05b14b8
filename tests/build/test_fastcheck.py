"""The fast checks kept on disk (fastcheck), the $ref lookups of the parameter schemas, the
installed versions: what a compile uses instead of jsonschema, referencing and
importlib.metadata when everything is valid."""

from __future__ import annotations

import json
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import fastjsonschema
import pytest

from generator.build import fastcheck, versions
from generator.build import schemas as validate
from tests.support.project import REPO

SCHEMA: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "properties": {
        "items": {"type": "array", "items": {"type": "string", "format": "ip"}},
        "by_key": {"type": "object", "additionalProperties": {"type": "integer"}},
    },
    "required": ["items"],
}
FORMATS = {"ip": lambda v: v.count(".") == 3}
CASES: list[Any] = [
    {"items": []},
    {"items": ["1.2.3.4"], "by_key": {"a": 1}},
    {"items": ["nope"]},
    {"items": [1]},
    {"by_key": {}},
    {"items": [], "by_key": {"a": "x"}},
    [],
]


def _verdict(check: Any, instance: Any) -> bool:
    try:
        check(instance)
    except fastjsonschema.JsonSchemaValueException:
        return False
    return True


def test_a_cached_check_gives_fastjsonschemas_verdicts(tmp_path: Path) -> None:
    reference = fastjsonschema.compile(SCHEMA, formats=FORMATS, use_default=False)
    cached = fastcheck.cached(SCHEMA, FORMATS, "test", tmp_path)
    assert [_verdict(cached, c) for c in CASES] == [_verdict(reference, c) for c in CASES]
    assert [_verdict(cached, c) for c in CASES] == [True, True, False, False, False, False, False]


def test_a_tuple_is_no_array_to_a_cached_check(tmp_path: Path) -> None:
    cached = fastcheck.cached(SCHEMA, FORMATS, "test", tmp_path)
    assert not _verdict(cached, {"items": ("1.2.3.4",)})  # jsonschema, the reference, says so


def test_a_cached_check_is_generated_once_and_loaded_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fastcheck.cached(SCHEMA, FORMATS, "test", tmp_path)
    files = sorted(p.suffix for p in (tmp_path / "fast-checks").iterdir())
    assert files == [".py", ".pyc"]

    def no_codegen(*args: object, **kwargs: object) -> str:
        raise AssertionError("generated again although it is on disk")

    monkeypatch.setattr(fastjsonschema, "compile_to_code", no_codegen)
    assert _verdict(fastcheck.cached(SCHEMA, FORMATS, "test", tmp_path), {"items": []})


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_a_damaged_cached_check_is_generated_again(tmp_path: Path, damage: str) -> None:
    fastcheck.cached(SCHEMA, FORMATS, "test", tmp_path)
    py = next((tmp_path / "fast-checks").glob("*.py"))
    text = py.read_bytes()
    py.write_bytes({"garbage": b"\x00 not (", "truncated": text[:-30], "empty": b""}[damage])
    check = fastcheck.cached(SCHEMA, FORMATS, "test", tmp_path)
    assert [_verdict(check, c) for c in CASES] == [True, True, False, False, False, False, False]
    assert py.read_bytes() == text


def test_an_unwritable_cache_still_gives_a_check(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    check = fastcheck.cached(SCHEMA, FORMATS, "test", blocker)
    assert _verdict(check, {"items": []}) and not _verdict(check, {"items": [1]})


def test_every_ref_of_the_parameter_schemas_resolves_as_referencing_resolves_it() -> None:
    schemas = validate.load(REPO, fast=False)
    refs: list[tuple[str, str]] = []

    def walk(node: Any, base: str) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                refs.append((base, node["$ref"]))
            for value in node.values():
                walk(value, base)
        elif isinstance(node, list):
            for value in node:
                walk(value, base)

    for uri, document in schemas.documents.items():
        walk(document, uri)
    assert len(refs) > 20
    for base, ref in refs:
        ours = validate._Refs(schemas, base).lookup(ref)
        theirs = schemas.registry.resolver(base).lookup(ref)
        assert ours.contents is theirs.contents, (base, ref)
        assert isinstance(ours.resolver, validate._Refs)  # no fallback was needed


def test_versions_are_those_importlib_metadata_reads() -> None:
    for dist in ("jinja2", "PyYAML", "ruamel.yaml", "jsonschema", "fastjsonschema"):
        assert versions.version(dist) == metadata.version(dist), dist
    assert versions.version("surely-not-installed-gen-test") is None


def test_a_valid_compile_without_monitoring_imports_no_jsonschema(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The parameter, KubeKey and Kubernetes checks pass on their fast paths (monitoring's alert
    rules have none: their schema tells 1 from true, which fastjsonschema does not)."""
    import importlib.util
    import subprocess

    spec = importlib.util.spec_from_file_location("bench_compile", REPO / "bench" / "compile.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, bench)  # its dataclasses look themselves up
    spec.loader.exec_module(bench)
    project = tmp_path / "project"
    bench.generate(project, 4, 3)
    code = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from generator.build import pipeline\n"
        f"pipeline.run(pipeline.Options(Path({str(project)!r}), use_cache=False))\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('jsonschema', 'referencing'))))\n"
    )
    env = {"PYTHONPATH": str(REPO), "GEN_CACHE_DIR": str(tmp_path / "cache"), "PATH": "/usr/bin"}
    # The first compile generates the fast checks (and checks the schemas against the
    # meta-schema, which needs jsonschema); the second one loads them.
    runs = [
        subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        ).stdout
        for _ in range(2)
    ]
    assert json.loads(runs[1].splitlines()[-1]) == []
