"""Component types: the parameters and checks a component brings besides its templates.

``components/<name>/schema.json`` is optional. When present (JSON Schema 2020-12) it describes the
parameters of a service whose ``component: <name>``, on top of those every service has
(``schemas/service.schema.json``); such a service may have no others. Its ``$defs.site``, if any,
describes ``site.<name>``: the parameters of a site component. ``"x-gen-checks"`` names
cross-checks of ``component_checks`` to run on its services. A component without schema.json
takes any parameters.

``root`` composes all of it with the target schema into the one schema parameters are checked
against, so the reference validator, the fast path and located errors work as for ``schemas/``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from generator.build import component_checks
from generator.core import errors
from generator.core.fsutil import write_atomic
from generator.core.jsonpath import format_path
from generator.core.location import Location

SCHEMA_FILE = "schema.json"
CHECKS_KEY = "x-gen-checks"
ROOT_ID = "https://gen.invalid/generated/parameters.json"
"""The composed schema: the target schema plus every component's."""


@dataclass(frozen=True)
class Component:
    """A component that ships a schema.json."""

    name: str
    uri: str
    """The schema's ``$id``, or ``https://gen.invalid/components/<name>/schema.json``."""
    document: dict[str, Any]
    """The schema as registered (without ``x-gen-checks``, which is not JSON Schema)."""
    checks: tuple[str, ...]
    service_schema: dict[str, Any]
    """A reference to the schema of its services' own parameters."""
    site_schema: dict[str, Any] | None
    """A reference to the schema of ``site.<name>``, if the component has one."""


def load(root: Path, common: Iterable[str]) -> list[Component]:
    """Every ``components/*/schema.json``; a broken one is a located user error.

    ``common`` names the parameters every service has: a component may not redefine them.
    """
    directory = root / "components"
    if not directory.is_dir():
        return []
    paths = sorted(d / SCHEMA_FILE for d in directory.iterdir() if (d / SCHEMA_FILE).is_file())
    return [_load_one(path, path.relative_to(root).as_posix(), set(common)) for path in paths]


def _load_one(path: Path, display: str, common: set[str]) -> Component:
    try:
        contents = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise errors.located(Location(display, e.lineno, e.colno), f"invalid JSON: {e.msg}") from e
    if not isinstance(contents, dict):
        raise errors.located(Location(display), "a component schema must be a JSON object")
    checks = contents.pop(CHECKS_KEY, [])
    _check_checks(display, checks)
    _check_shape(display, contents, common)
    name = path.parent.name
    uri = contents.get("$id") or f"https://gen.invalid/components/{name}/{SCHEMA_FILE}"
    site = {"$ref": f"{uri}#/$defs/site"} if "site" in contents.get("$defs", {}) else None
    return Component(name, uri, contents, tuple(checks), {"$ref": uri}, site)


def _check_checks(display: str, checks: Any) -> None:
    if not isinstance(checks, list):
        raise errors.located(
            Location(display), "a list of check names expected", format_path((CHECKS_KEY,))
        )
    for i, check in enumerate(checks):
        if check not in component_checks.CHECKS:
            raise errors.located(
                Location(display),
                f"unknown check {check!r}; expected one of: "
                f"{', '.join(sorted(component_checks.CHECKS))}",
                format_path((CHECKS_KEY, i)),
            )


class InvalidSchema(Exception):
    """A schema that is not a valid JSON Schema 2020-12 (jsonschema's ``SchemaError``, carried
    out of ``check_schema`` so its callers need not import jsonschema)."""

    def __init__(self, message: str, path: tuple[str | int, ...]) -> None:
        super().__init__(message)
        self.message = message
        self.absolute_path = path


def check_schema(contents: Any) -> None:
    """``jsonschema.Draft202012Validator.check_schema``, remembered: a schema once found valid is
    not checked again (a marker named by its content and jsonschema's version, under
    ``kube_schema.cache_root()``; checking the few schemas of a project against the meta-schema
    cost ~0.15 s of every compile that compiles anything, and importing jsonschema ~0.1 s). An
    invalid schema is always checked, so its error is reported as ever (``InvalidSchema``)."""
    from generator.build import kube_schema, versions

    text = json.dumps(contents, sort_keys=True, separators=(",", ":"))
    key = hashlib.sha256(f"{versions.version('jsonschema')}\n{text}".encode()).hexdigest()
    marker = kube_schema.cache_root() / "valid-schemas" / key
    if marker.exists():
        return
    import jsonschema

    try:
        jsonschema.Draft202012Validator.check_schema(contents)
    except jsonschema.SchemaError as e:
        raise InvalidSchema(e.message, tuple(e.absolute_path)) from e
    with contextlib.suppress(OSError):
        marker.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(marker, b"")


def _check_shape(display: str, contents: dict[str, Any], common: set[str]) -> None:
    try:
        check_schema(contents)
    except InvalidSchema as e:
        raise errors.located(
            Location(display), f"invalid schema: {e.message}", format_path(e.absolute_path)
        ) from e
    if "additionalProperties" in contents:
        # gen closes the list itself: the common parameters plus the component's, no others.
        raise errors.located(
            Location(display),
            "leave additionalProperties out: a service takes "
            "the common parameters and the component's, and no others",
            format_path(("additionalProperties",)),
        )
    for key in contents.get("properties", {}):
        if key in common:
            raise errors.located(
                Location(display),
                f"{key!r} is a parameter every service has "
                "(schemas/service.schema.json); a component may not redefine it",
                format_path(("properties", key)),
            )


def root(target_uri: str, common: Iterable[str], components: list[Component]) -> dict[str, Any]:
    """The schema of a target's parameters: the target schema, each service also against its
    component's schema (closed to other keys), each ``site.<name>`` against ``$defs.site``."""
    known = list(common)
    dispatch = [_service_schema(c, known) for c in components]
    sites = {c.name: c.site_schema for c in components if c.site_schema}
    properties: dict[str, Any] = {}
    if sites:
        properties["site"] = {"properties": sites}
    if dispatch:
        properties["services"] = {"additionalProperties": {"allOf": dispatch}}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": ROOT_ID,
        "allOf": [{"$ref": target_uri}],
        "properties": properties,
    }


def _service_schema(component: Component, common: list[str]) -> dict[str, Any]:
    known = [*common, *component.document.get("properties", {})]
    # A service that is no object, or names no component, fails the common schema already.
    chosen = {
        "type": "object",
        "required": ["component"],
        "properties": {"component": {"enum": [component.name]}},
    }
    return {
        "if": chosen,
        "then": {
            "allOf": [component.service_schema],
            "properties": {k: True for k in known},
            "additionalProperties": False,
        },
    }
