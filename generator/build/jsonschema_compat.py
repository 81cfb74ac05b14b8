"""JSON Schema 2020-12 -> draft-07, for fastjsonschema, with the verdicts of jsonschema (2020-12).

jsonschema (2020-12) is the reference: it explains failures. fastjsonschema, about 20x faster, is
the fast path, but speaks draft-07. A schema is translated only when every keyword it uses means
the same in both (or has an exact draft-07 spelling); anything else raises ``Unsupported`` and the
caller lets the reference alone decide. Both the parameter schemas (``build.schemas``) and the
Kubernetes schemas (``build.kube_schema``) go through this one translator.

    annotations, ``x-*``    dropped (no verdict)
    ``format``              kept when the reference checks that format, else dropped (an annotation)
    ``const``               ``enum: [value]``
    ``dependentRequired``   ``dependencies`` (its array form)
    ``prefixItems``         ``items: [...]``, and ``items`` beside it becomes ``additionalItems``
    ``$ref`` with siblings  ``allOf: [{$ref}]`` plus the siblings (draft-07 ignores $ref's siblings)
    ``enum``, ``const``     only strings and null (the enum safety check): jsonschema tells
                            1 from True; fastjsonschema has compared enum values with ``==``
                            (``1 == True``), and pyproject accepts any release >= 2.19
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

DRAFT7 = "http://json-schema.org/draft-07/schema#"

_ANNOTATIONS = frozenset(
    {
        "$schema",
        "$id",
        "$comment",
        "title",
        "description",
        "default",
        "examples",
        "deprecated",
        "readOnly",
        "writeOnly",
    }
)
_KEPT = frozenset(
    {
        "type",
        "required",
        "pattern",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "multipleOf",
        "minLength",
        "maxLength",
        "minItems",
        "maxItems",
        "uniqueItems",
        "minProperties",
        "maxProperties",
    }
)
_SUBSCHEMA = frozenset({"additionalProperties", "propertyNames", "not", "if", "then", "else"})
_SUBSCHEMA_LIST = frozenset({"allOf", "anyOf", "oneOf"})
_SUBSCHEMA_MAP = frozenset({"properties", "patternProperties", "$defs"})


class Unsupported(Exception):
    """The schema uses something fastjsonschema cannot reproduce exactly: use the reference."""


def to_draft7(schema: Any, ref: Callable[[str], str], formats: Collection[str] = ()) -> Any:
    """A draft-07 copy of 2020-12 ``schema`` on which fastjsonschema gives jsonschema's verdicts.

    ``ref`` maps each ``$ref`` to one fastjsonschema resolves (it raises ``Unsupported`` to refuse,
    e.g. a remote document); ``formats`` are the formats the reference validator checks. Only
    keyword positions are translated: a *property* named ``$ref`` or ``enum`` stays a name.
    Raises ``Unsupported`` for any keyword not in the table of this module's docstring.
    """
    return _Translator(ref, frozenset(formats)).schema(schema)


def enum_ok(values: object) -> bool:
    """Whether every fastjsonschema release agrees with jsonschema on ``enum: values``."""
    return isinstance(values, list) and all(v is None or isinstance(v, str) for v in values)


@dataclass(frozen=True)
class _Translator:
    ref: Callable[[str], str]
    formats: frozenset[str]

    def schema(self, schema: Any) -> Any:
        if isinstance(schema, bool):
            return schema
        if not isinstance(schema, dict):
            raise Unsupported(f"schema {schema!r}")
        out: dict[str, Any] = {}
        for key, value in schema.items():
            if key not in _ANNOTATIONS and not key.startswith("x-"):
                out.update(self.keyword(key, value, "prefixItems" in schema))
        if "$ref" in out and len(out) > 1:  # 2020-12 applies $ref's siblings, draft-07 ignores them
            out = {"allOf": [{"$ref": out.pop("$ref")}], **out}
        return out

    def keyword(self, key: str, value: Any, prefixed: bool) -> dict[str, Any]:
        """The draft-07 spelling of one keyword: usually itself, sometimes another, or nothing."""
        if key == "$ref":
            if not isinstance(value, str):
                raise Unsupported(f"$ref {value!r}")
            return {key: self.ref(value)}
        if key in _SUBSCHEMA_MAP:
            return {key: {name: self.schema(sub) for name, sub in _mapping(key, value).items()}}
        if key in _SUBSCHEMA_LIST:
            return {key: [self.schema(sub) for sub in _array(key, value)]}
        if key in _SUBSCHEMA:
            return {key: self.schema(value)}
        if key == "items":
            return {"additionalItems" if prefixed else "items": self.schema(value)}
        if key == "prefixItems":
            return {"items": [self.schema(sub) for sub in _array(key, value)]}
        return _value_keyword(key, value, self.formats)


def _value_keyword(key: str, value: Any, formats: frozenset[str]) -> dict[str, Any]:
    if key in _KEPT:
        return {key: value}
    if key == "format":
        return {key: value} if value in formats else {}
    if key in ("enum", "const"):
        values = value if key == "enum" else [value]
        if not enum_ok(values):
            raise Unsupported(f"{key} {value!r}: fastjsonschema may take 1 for True")
        return {"enum": values}
    if key == "dependentRequired":
        return {"dependencies": value}
    raise Unsupported(f"keyword {key!r}")


def _mapping(key: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Unsupported(f"{key} {value!r}")
    return value


def _array(key: str, value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise Unsupported(f"{key} {value!r}")
    return value
