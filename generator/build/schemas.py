"""Merged target parameters -> a list of located problems (JSON Schema 2020-12 plus a few
cross-checks).

The schemas live in ``schemas/`` of the project (``target.schema.json`` is the root; the others are
found by their ``$id``) and in ``components/<name>/schema.json`` (see ``components``: a service's
parameters beyond the common ones are its component's). Every problem points at the class or
target file that set the offending value. ``with_defaults`` fills in the schemas' ``default``
values for the renderer.
"""

from __future__ import annotations

import copy
import functools
import ipaddress
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import unquote, urljoin

import fastjsonschema

from generator.build import component_checks, fastcheck, jsonschema_compat
from generator.build import components as component_types
from generator.build.inventory import Target
from generator.core import errors
from generator.core.errors import Problem
from generator.core.jsonpath import format_path
from generator.core.location import Location

if TYPE_CHECKING:  # imported when the reference runs: a compile whose targets pass never does
    import jsonschema
    import referencing
    from jsonschema.exceptions import ValidationError

ROOT_SCHEMA = "target.schema.json"
SERVICE_SCHEMA = "service.schema.json"


@dataclass(frozen=True)
class Schemas:
    """The project's parameter schemas, compiled once and reused for every target."""

    documents: dict[str, Any]
    """Every schema by URI (its ``$id``, else its file's URI), the composed root included."""
    files: tuple[str, ...]
    fast: Callable[[Any], Any] | None = None
    """A compiled yes/no check with the same verdicts (fastjsonschema); the reference explains
    failures."""
    target: Any = None
    """The target schema, whose defaults ``with_defaults`` fills in first."""
    components: dict[str, component_types.Component] = field(default_factory=dict)
    """Components that ship a schema.json, by name."""
    plans: dict[int, _Plan] = field(default_factory=dict, compare=False, repr=False)
    """What ``with_defaults`` does for each schema, by id of the schema (built on first use)."""
    root_id: str = ""
    """The URI of the target schema."""

    @property
    def resolver(self) -> _Refs:
        """``$ref`` lookups from the target schema."""
        return _Refs(self, self.root_id)

    @functools.cached_property
    def validator(self) -> jsonschema.protocols.Validator:
        """The reference (jsonschema, 2020-12), built on first need: it explains failures."""
        import jsonschema

        checker = jsonschema.FormatChecker(_FORMATS)
        composed = self.documents[component_types.ROOT_ID]
        return jsonschema.Draft202012Validator(
            composed, registry=self.registry, format_checker=checker
        )

    @functools.cached_property
    def registry(self) -> referencing.Registry[Any]:
        """referencing's registry of ``documents``, built on first need."""
        import referencing
        from referencing.jsonschema import DRAFT202012

        return referencing.Registry().with_resources(
            [(uri, DRAFT202012.create_resource(doc)) for uri, doc in self.documents.items()]
        )


def load(root: Path, fast: bool = True) -> Schemas:
    """Load ``schemas/*.json`` and ``components/*/schema.json``; a broken one is a located user
    error.

    ``fast`` also compiles the fast path (``fastcheck``: generated once per schema and kept in
    the cache directory; about 0.2 s when it is not there yet).
    """
    directory = root / "schemas"
    documents: dict[str, Any] = {}
    files: list[str] = []
    root_id = None
    for path in sorted(directory.glob("*.json")):
        display = path.relative_to(root).as_posix()
        files.append(display)
        try:
            contents = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise errors.located(
                Location(display, e.lineno, e.colno), f"invalid JSON: {e.msg}"
            ) from e
        uri = contents.get("$id") or path.resolve().as_uri()
        documents[uri] = contents
        if path.name == ROOT_SCHEMA:
            root_id = uri
    if root_id is None:
        raise errors.located(
            Location(f"schemas/{ROOT_SCHEMA}"), "missing: the root schema of target parameters"
        )
    target_schema = documents[root_id]
    try:
        component_types.check_schema(target_schema)
    except component_types.InvalidSchema as e:
        raise errors.located(
            Location(f"schemas/{ROOT_SCHEMA}"), f"invalid schema: {e.message}"
        ) from e
    loaded = Schemas(dict(documents), tuple(files), root_id=root_id)
    common = _common_parameters(loaded, root_id)
    found = component_types.load(root, common)
    composed = component_types.root(root_id, common, found)
    documents.update((c.uri, c.document) for c in found)
    documents[component_types.ROOT_ID] = composed
    fast_path = _fast_validator(documents, component_types.ROOT_ID) if fast else None
    return Schemas(
        documents,
        tuple(files),
        fast_path,
        target_schema,
        {c.name: c for c in found},
        root_id=root_id,
    )


def _common_parameters(schemas: Schemas, root_id: str) -> list[str]:
    """The parameters every service has: the properties of schemas/service.schema.json."""
    try:
        common = _Refs(schemas, root_id).lookup(SERVICE_SCHEMA).contents
    except Exception as e:
        import referencing.exceptions

        if not isinstance(e, referencing.exceptions.Unresolvable):
            raise
        raise errors.located(
            Location(f"schemas/{SERVICE_SCHEMA}"), "missing: the schema of what every service has"
        ) from e
    return list(common.get("properties", {}))


class _Found(NamedTuple):
    contents: Any
    resolver: _Refs | referencing._core.Resolver[Any]


class _Refs:
    """``$ref`` lookups among the loaded schemas, as referencing's resolver makes them, for what
    gen's schemas use (a schema's URI and a JSON pointer into it, no ``$id`` on the way); anything
    else (an anchor, an ``$id`` below a schema's root, a URI no schema has) is left to referencing
    itself (imported then). Spares importing referencing and building its registry."""

    __slots__ = ("_base", "_schemas")

    def __init__(self, schemas: Schemas, base: str) -> None:
        self._schemas = schemas
        self._base = base

    def lookup(self, ref: str) -> _Found:
        uri, _, fragment = urljoin(self._base, ref).partition("#")
        contents = self._schemas.documents.get(uri, _UNSET)
        if contents is not _UNSET and (not fragment or fragment.startswith("/")):
            found = _pointer(contents, fragment)
            if found is not _UNSET:
                return _Found(found, _Refs(self._schemas, uri))
        resolved = self._schemas.registry.resolver(self._base).lookup(ref)
        return _Found(resolved.contents, resolved.resolver)


def _pointer(contents: Any, pointer: str) -> Any:
    """What JSON pointer ``pointer`` points at in ``contents``; _UNSET when it points nowhere or
    passes a schema with its own ``$id`` (a new base URI: referencing's business)."""
    if not pointer:
        return contents
    for segment in unquote(pointer[1:]).split("/"):
        if type(contents) is dict:
            contents = contents.get(segment.replace("~1", "/").replace("~0", "~"), _UNSET)
        elif type(contents) is list and segment.isdigit() and int(segment) < len(contents):
            contents = contents[int(segment)]
        else:
            return _UNSET
        if contents is _UNSET or (type(contents) is dict and "$id" in contents):
            return _UNSET
    return contents


# The fast path: all schemas bundled into one draft-07 document for fastjsonschema (about 20x
# faster than jsonschema), translated by jsonschema_compat; a schema it cannot translate exactly
# means no fast path, and jsonschema alone decides.
_FORMATS = frozenset({"ipv4"})
"""The formats the reference checks (its FormatChecker); the fast path checks the same ones."""


def _fast_validator(documents: dict[str, Any], root_id: str) -> Callable[[Any], Any] | None:
    names = {uri: f"d{i}" for i, uri in enumerate(sorted(documents))}
    try:
        bundle = {
            "$schema": jsonschema_compat.DRAFT7,
            "$ref": f"#/$defs/{names[root_id]}",
            "$defs": {names[uri]: _fast_schema(doc, uri, names) for uri, doc in documents.items()},
        }
        return fastcheck.cached(bundle, {"ipv4": _is_ipv4}, "the parameter schemas")
    except Exception:
        return None


def _fast_schema(schema: Any, base: str, names: dict[str, str]) -> Any:
    """``schema`` (of document ``base``) with every ``$ref`` pointing into the bundle."""

    def ref(value: str) -> str:
        document, _, fragment = urljoin(base, value).partition("#")
        if document not in names:
            raise jsonschema_compat.Unsupported(value)
        return f"#/$defs/{names[document]}{fragment}"

    return jsonschema_compat.to_draft7(schema, ref, _FORMATS)


def _is_ipv4(value: str) -> bool:
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        return False
    return True


def _valid(schemas: Schemas, instance: Any) -> bool:
    if schemas.fast is None:
        return False
    try:
        schemas.fast(instance)
    except fastjsonschema.JsonSchemaValueException:
        return False
    return True


def check(schemas: Schemas, target: Target, components: Iterable[str]) -> list[Problem]:
    """Every problem of one target: schema violations first, then cross-checks if the shape is
    right."""
    problems = (
        []
        if _valid(schemas, target.parameters)
        else [p for e in _errors(schemas, target.parameters) for p in _problem(target, e)]
    )
    if not problems:
        problems = list(_cross_checks(target, set(components), schemas.components))
    return problems


def _errors(schemas: Schemas, instance: Any) -> Iterator[ValidationError]:
    """The reference's errors (jsonschema imported here: only a failing target needs it)."""
    yield from sorted(
        schemas.validator.iter_errors(instance),
        key=lambda e: (list(map(str, e.absolute_path)), e.message),
    )


def _problem(target: Target, error: ValidationError) -> list[Problem]:
    path = tuple(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = set((error.schema or {}).get("properties", {}))
        extras = [k for k in error.instance if k not in known]
        return [
            Problem(
                target.location((*path, k)),
                format_path((*path, k)),
                f"unknown key {k!r}; expected one of: {', '.join(sorted(known))}",
            )
            for k in extras
        ]
    message = error.message
    if error.context:
        from jsonschema.exceptions import best_match

        message += f" ({best_match(error.context).message})"
    message += _why(error)
    return [Problem(target.location(path), format_path(path), message)]


def _why(error: ValidationError) -> str:
    """``: <description>`` for an error of an if/then rule whose failing schema says why it holds
    ("'x' is a required property" alone does not tell which condition asked for x); else ``""``."""
    where = list(error.absolute_schema_path)
    if "then" not in where:
        return ""
    # Only the rule's own keywords and its properties, at any depth: a then that $refs a whole
    # schema (a component type's) is not a rule, and its description is not a reason.
    tail = where[len(where) - where[::-1].index("then") :]
    if len(tail) % 2 == 0 or any(part != "properties" for part in tail[:-1:2]):
        return ""
    description = error.schema.get("description") if isinstance(error.schema, dict) else None
    return f": {description}" if isinstance(description, str) else ""


def _cross_checks(
    target: Target, components: set[str], types: dict[str, component_types.Component]
) -> Iterator[Problem]:
    params = target.parameters
    site = params["site"]
    services = params["services"]
    external = site.get("external", {})

    def at(*path: str | int) -> Callable[[str], Problem]:
        return lambda message: Problem(target.location(path), format_path(path), message)

    if site["name"] != target.name:
        yield at("site", "name")(
            f"site name {site['name']!r} differs from the target name {target.name!r}; "
            "compiled/<site>/ must be unambiguous (use ${_reclass_:name:short})"
        )
    for i, name in enumerate(site.get("components", [])):
        if name not in components:
            yield at("site", "components", i)(f"component {name!r} not found in components/")
    for name in external:
        if name in services:
            yield at("site", "external", name)(
                f"external resource {name!r} has the name of a service; "
                "both would compile to a Service of that name"
            )
    for name, svc in services.items():
        kind = types.get(svc["component"])
        yield from _service_checks(name, svc, services, site, components, kind, at)


def _service_checks(
    name: str,
    svc: dict[str, Any],
    services: dict[str, Any],
    site: dict[str, Any],
    components: set[str],
    component: component_types.Component | None,
    at: Any,
) -> Iterator[Problem]:
    """What every service must satisfy, then the checks its component type names."""
    base = ("services", name)
    if svc["component"] not in components:
        yield at(*base, "component")(f"component {svc['component']!r} not found in components/")
    view = component_checks.Service(name, svc, site, lambda *path: at(*base, *path))
    for check in component.checks if component else ():
        yield from component_checks.CHECKS[check](view)
    known = set(services) | set(site.get("external", {}))
    for i, dep in enumerate(svc.get("depends_on", [])):
        if dep not in known:
            yield at(*base, "depends_on", i)(
                f"{dep!r} is neither a service nor an external resource"
            )


def with_defaults(schemas: Schemas, params: dict[str, Any]) -> dict[str, Any]:
    """``params`` with the schemas' ``default`` values filled in where keys are absent: the target
    schema's, then each service's component's and each site component's.

    Copy on write: ``params`` is left as it is; the result shares every subtree that gains no
    default with it, and every default value (filled once per schema, see ``_Plan``) with the
    other targets. Nothing may modify the result in place (the stages never do; see
    ``generator.build.stages``).
    """
    out = dict(_apply(_plan(schemas, schemas.resolver, schemas.target), params))
    site = out.get("site")
    if isinstance(site, dict):
        site = dict(site)
        for name, component in schemas.components.items():
            if component.site_schema and name in site:
                plan = _plan(schemas, schemas.resolver, component.site_schema)
                site[name] = _apply(plan, site[name])
        out["site"] = site
    services = out.get("services")
    if isinstance(services, dict):
        services = dict(services)
        for key, service in services.items():
            kind = service.get("component") if isinstance(service, dict) else None
            if isinstance(kind, str) and kind in schemas.components:
                plan = _plan(schemas, schemas.resolver, schemas.components[kind].service_schema)
                services[key] = _apply(plan, service)
        out["services"] = services
    return out


_UNSET: Any = object()


class _Plan:
    """What filling defaults for one schema does, derived from it once per compile: the plans of
    its ``$ref`` targets (applied first), then per property its default and its plan, the plan of
    other properties (``additionalProperties``) and of list items."""

    __slots__ = ("empty", "extra", "filled", "items", "known", "props", "refs", "schema")

    def __init__(self, schema: Any) -> None:
        self.schema = schema
        """Held so that its id, the plan's key, stays its own."""
        self.refs: list[_Plan] = []
        self.props: list[tuple[str, Any, _Plan]] = []
        """(key, default or _UNSET, plan of the property's schema)."""
        self.known: frozenset[str] = frozenset()
        self.extra: _Plan | None = None
        self.items: _Plan | None = None
        self.filled: dict[str, Any] = {}
        """Default values with their own defaults filled in, by key: shared by every target."""
        self.empty = False
        """Fills nothing anywhere below: skipped."""


def _plan(schemas: Schemas, resolver: _Refs, schema: Any) -> _Plan:
    """The plan of ``schema`` (built once per schema object, cycles included)."""
    plans = schemas.plans
    found = plans.get(id(schema))
    if found is not None:
        return found
    built: list[_Plan] = []
    plan = _build(schemas, resolver, schema, plans, built)
    # A plan is empty if it has no default and every plan below is empty: settle the cycles.
    for p in built:
        p.empty = True
    changed = True
    while changed:
        changed = False
        for p in built:
            if p.empty and (
                any(d is not _UNSET for _, d, _ in p.props)
                or any(
                    not q.empty
                    for q in (*p.refs, *(sub for _, _, sub in p.props), p.extra, p.items)
                    if q is not None
                )
            ):
                p.empty = False
                changed = True
    return plan


def _build(
    schemas: Schemas,
    resolver: _Refs | referencing._core.Resolver[Any],
    schema: Any,
    plans: dict[int, _Plan],
    built: list[_Plan],
) -> _Plan:
    found = plans.get(id(schema))
    if found is not None:
        return found
    plan = plans[id(schema)] = _Plan(schema)
    built.append(plan)
    if not isinstance(schema, dict):
        return plan
    if "$ref" in schema:
        resolved = resolver.lookup(schema["$ref"])
        plan.refs.append(_build(schemas, resolved.resolver, resolved.contents, plans, built))
    properties = schema.get("properties", {})
    for key, sub in properties.items():
        default = sub["default"] if isinstance(sub, dict) and "default" in sub else _UNSET
        plan.props.append((key, default, _build(schemas, resolver, sub, plans, built)))
    plan.known = frozenset(properties)
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        plan.extra = _build(schemas, resolver, extra, plans, built)
    if isinstance(schema.get("items"), dict):
        plan.items = _build(schemas, resolver, schema["items"], plans, built)
    return plan


def _apply(plan: _Plan, instance: Any) -> Any:
    """``instance`` with the plan's defaults filled in: the same object if nothing is added, else
    new containers along the paths that gain something."""
    if plan.empty:
        return instance
    for ref in plan.refs:
        instance = _apply(ref, instance)
    if type(instance) is dict:
        out = None
        for key, default, sub in plan.props:
            if key in instance:
                value = instance[key]
                new = _apply(sub, value)
                if new is value:
                    continue
            elif default is not _UNSET:
                new = plan.filled.get(key, _UNSET)
                if new is _UNSET:
                    new = plan.filled[key] = _apply(sub, copy.deepcopy(default))
            else:
                continue
            if out is None:
                out = dict(instance)
            out[key] = new
        if plan.extra is not None and not plan.extra.empty:
            current = instance if out is None else out
            for key, value in current.items():
                if key not in plan.known:
                    new = _apply(plan.extra, value)
                    if new is not value:
                        if out is None:
                            out = dict(instance)
                        out[key] = new
        return instance if out is None else out
    if type(instance) is list and plan.items is not None and not plan.items.empty:
        items = [_apply(plan.items, item) for item in instance]
        if any(a is not b for a, b in zip(items, instance, strict=True)):
            return items
    return instance


def dedupe(per_target: dict[str, list[Problem]]) -> list[Problem]:
    """One line per distinct problem; a problem in a shared class names the targets it affects."""
    where: dict[Problem, list[str]] = {}
    for name, problems in per_target.items():
        for problem in problems:
            where.setdefault(problem, []).append(name)
    out = []
    for problem, names in where.items():
        loc_file = problem.location.file if problem.location else ""
        if loc_file.startswith("inventory/targets/") and len(names) == 1:
            out.append(problem)
        else:
            out.append(
                Problem(
                    problem.location,
                    problem.path,
                    f"{problem.message} (target{'s' if len(names) > 1 else ''}: "
                    f"{', '.join(sorted(names))})",
                )
            )
    return out
