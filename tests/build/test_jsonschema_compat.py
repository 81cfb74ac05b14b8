"""generator.build.jsonschema_compat: one 2020-12 -> draft-07 translator, same verdicts."""

from __future__ import annotations

import re
from typing import Any

import fastjsonschema
import jsonschema
import pytest

from generator.build import jsonschema_compat as compat
from generator.build.jsonschema_compat import Unsupported


def no_refs(ref: str) -> str:
    raise Unsupported(ref)


Schema = dict[str, Any]


def fast_verdict(schema: Schema, instance: Any, formats: frozenset[str] = frozenset()) -> bool:
    draft7 = {"$schema": compat.DRAFT7, **compat.to_draft7(schema, lambda r: r, formats)}
    check = fastjsonschema.compile(draft7, use_default=False)
    try:
        check(instance)
    except fastjsonschema.JsonSchemaValueException:
        return False
    return True


def reference_verdict(schema: Schema, instance: Any, formats: frozenset[str] = frozenset()) -> bool:
    checker = jsonschema.FormatChecker(formats)
    return bool(jsonschema.Draft202012Validator(schema, format_checker=checker).is_valid(instance))


# -- the enum safety check ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "schema",
    [
        {"enum": [1, 2]},
        {"enum": [True]},
        {"enum": ["a", 0]},
        {"const": 1},
        {"const": False},
        {"properties": {"mode": {"enum": [0, 1]}}},
        {"anyOf": [{"const": 1.0}]},
        {"enum": "abc"},
    ],
)
def test_an_enum_of_numbers_or_booleans_means_no_fast_path(schema: Schema) -> None:
    with pytest.raises(Unsupported):
        compat.to_draft7(schema, no_refs)


@pytest.mark.parametrize(
    "schema, translated",
    [
        ({"enum": ["a", "b", None]}, {"enum": ["a", "b", None]}),
        ({"const": "sms"}, {"enum": ["sms"]}),
    ],
)
def test_string_and_null_enums_are_kept(schema: Schema, translated: Schema) -> None:
    assert compat.to_draft7(schema, no_refs) == translated


# -- the keyword table ----------------------------------------------------------------------------


def test_annotations_and_extensions_are_dropped_and_names_stay_names() -> None:
    properties = {"$ref": {"type": "string"}, "enum": {"type": "integer"}}
    schema = {
        "description": "d",
        "title": "t",
        "default": 1,
        "x-kubernetes-list-type": "map",
        "readOnly": True,
        "type": "object",
        "properties": properties,
    }
    assert compat.to_draft7(schema, no_refs) == {"type": "object", "properties": properties}


def test_refs_are_rewritten_and_their_siblings_kept_under_allof() -> None:
    schema = {"$ref": "other.json#/$defs/a", "required": ["x"]}
    assert compat.to_draft7(schema, lambda r: "#/$defs/" + r.rpartition("/")[2]) == {
        "allOf": [{"$ref": "#/$defs/a"}],
        "required": ["x"],
    }


def test_a_ref_the_caller_refuses_means_no_fast_path() -> None:
    with pytest.raises(Unsupported):
        compat.to_draft7({"properties": {"a": {"$ref": "https://example.com/x.json"}}}, no_refs)


@pytest.mark.parametrize(
    "keyword", ["unevaluatedProperties", "dependentSchemas", "contains", "$dynamicRef"]
)
def test_a_keyword_outside_the_table_means_no_fast_path(keyword: str) -> None:
    with pytest.raises(Unsupported, match=re.escape(keyword)):
        compat.to_draft7({"type": "object", keyword: {}}, no_refs)


def test_format_is_kept_only_when_the_reference_checks_it() -> None:
    schema = {"type": "string", "format": "ipv4"}
    assert compat.to_draft7(schema, no_refs, {"ipv4"}) == schema
    assert compat.to_draft7(schema, no_refs) == {"type": "string"}


VERDICTS: list[tuple[Schema, list[Any]]] = [
    (
        {"prefixItems": [{"type": "string"}, {"type": "integer"}], "items": False},
        [["a", 1], ["a"], [1, "a"], ["a", 1, 2], []],
    ),
    (
        {"prefixItems": [{"type": "string"}], "items": {"type": "integer"}},
        [["a", 1, 2], ["a", "b"]],
    ),
    (
        {"type": "object", "dependentRequired": {"username": ["password"]}},
        [{"username": "u"}, {"username": "u", "password": "p"}, {}],
    ),
    (
        {
            "$defs": {"n": {"type": "integer", "minimum": 1}},
            "properties": {"r": {"$ref": "#/$defs/n", "maximum": 3}},
        },
        [{"r": 2}, {"r": 0}, {"r": 4}, {"r": True}, {"r": "2"}],
    ),
    ({"type": "string", "pattern": "^[a-z]+$", "maxLength": 3}, ["abc", "abcd", "ABC", ""]),
    (
        {
            "type": "object",
            "patternProperties": {"^x-": {"type": "integer"}},
            "additionalProperties": False,
        },
        [{"x-a": 1}, {"x-a": "1"}, {"y": 1}],
    ),
    ({"const": "sms"}, ["sms", "SMS", None]),
    (
        {"type": "array", "items": {"enum": ["a", None]}, "uniqueItems": True},
        [["a", None], ["a", "a"], [1]],
    ),
]


@pytest.mark.parametrize("schema, instances", VERDICTS)
def test_the_fast_path_gives_the_references_verdicts(schema: Schema, instances: list[Any]) -> None:
    for instance in instances:
        assert fast_verdict(schema, instance) == reference_verdict(schema, instance), instance


def test_checked_formats_give_the_same_verdicts() -> None:
    schema = {"type": "string", "format": "ipv4"}
    for instance in ["10.0.0.1", "10.0.0.300", "x"]:
        assert fast_verdict(schema, instance, frozenset({"ipv4"})) == reference_verdict(
            schema, instance, frozenset({"ipv4"})
        ), instance
