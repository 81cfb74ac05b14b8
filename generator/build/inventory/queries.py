"""reclass inventory queries, ``$[ ... ]``, over every target's ``exports:``, as Kapitan does.

    $[ exports:path ]                          {target: value} for targets exporting path
    $[ exports:path if exports:k == v ... ]    the same, for targets passing the test
    $[ if exports:k == v ... ]                 [target, ...] passing the test

A test is ``exports:path ==|!= operand`` where the operand is ``self:path`` (this target's
parameter), ``true``/``false``, an integer or a decimal number, or else the text as written; tests
join with ``and``/``or``, left to right. ``+IgnoreErrors`` and ``+AllEnvs`` may come first (Kapitan
always gives queries every target, so ``+AllEnvs`` changes nothing). Targets come in name order
(reclass takes the file system's order).
"""

from __future__ import annotations

import copy
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from generator.build.inventory.references import KeyPath
from generator.core import errors
from generator.core.jsonpath import format_path
from generator.core.location import Location

Exports = dict[str, dict[str, Any]]
"""Every target's resolved ``exports:``, by target name (in name order)."""
Lookup = Callable[[KeyPath], Any]
"""This target's resolved parameter at a key path (for ``self:`` operands)."""

_NUMBER = re.compile(r"-?[0-9]+")
_REAL = re.compile(r"-?(?:[0-9]+\.[0-9]+|\.[0-9]+|[0-9]+\.)")
_OPS = {"==": operator.eq, "!=": operator.ne}


@dataclass(frozen=True)
class _Test:
    export: KeyPath
    op: Callable[[Any, Any], bool]
    parameter: KeyPath | None
    value: Any


@dataclass(frozen=True)
class Parsed:
    value: KeyPath | None
    """The exported path whose values are returned; None for a list of targets."""
    tests: tuple[_Test, ...]
    joins: tuple[Callable[[Any, Any], Any], ...]


def parse(text: str, where: Location | None, path: KeyPath) -> Parsed:
    """A query's parts; anything else than the forms above is a located error."""
    words = text.split()
    while words and words[0].lower() in ("+ignoreerrors", "+allenvs"):
        words.pop(0)

    def fail(why: str) -> errors.ProblemReport:
        return errors.located(
            where, f"inventory query $[ {text} ]: {why}", format_path(path) if path else ""
        )

    value: KeyPath | None = None
    if words and words[0].lower() != "if":
        value = _export_path(words.pop(0), fail)
        if not words:
            return Parsed(value, (), ())
    if not words or words.pop(0).lower() != "if":
        raise fail("expected 'exports:<path>', 'exports:<path> if <test>' or 'if <test>'")
    tests: list[_Test] = []
    joins: list[Callable[[Any, Any], Any]] = []
    while True:
        if len(words) < 3 or words[1] not in _OPS:
            raise fail("a test is 'exports:<path> == <value>' (or !=)")
        left, op, right = words[:3]
        del words[:3]
        tests.append(_test(left, _OPS[op], right, fail))
        if not words:
            break
        join = words.pop(0).lower()
        if join not in ("and", "or"):
            raise fail(f"expected 'and' or 'or', not {join!r}")
        joins.append(operator.and_ if join == "and" else operator.or_)
    return Parsed(value, tuple(tests), tuple(joins))


def _export_path(word: str, fail: Callable[[str], errors.ProblemReport]) -> KeyPath:
    parts = word.split(":")
    if parts[0].lower() != "exports" or len(parts) < 2 or not all(parts[1:]):
        raise fail(f"{word!r} is not an exported path (exports:<key>:...)")
    return tuple(parts[1:])


def _test(
    left: str,
    op: Callable[[Any, Any], bool],
    right: str,
    fail: Callable[[str], errors.ProblemReport],
) -> _Test:
    export = _export_path(left, fail)
    head = right.split(":")[0].lower()
    if head == "self":
        return _Test(export, op, tuple(right.split(":")[1:]), None)
    if head == "exports":
        raise fail("the right side of a test cannot be an exported path")
    if head in ("true", "false"):
        return _Test(export, op, None, head == "true")
    if _NUMBER.fullmatch(right):
        return _Test(export, op, None, int(right))
    if _REAL.fullmatch(right):
        return _Test(export, op, None, float(right))
    return _Test(export, op, None, right)


def _get(items: Any, path: KeyPath) -> tuple[bool, Any]:
    node = items
    for part in path:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, str) and part.isdigit():
            if int(part) >= len(node):
                return False, None
            node = node[int(part)]
        else:
            return False, None
    return True, node


def evaluate(query: Parsed, exports: Exports, lookup: Lookup) -> Any:
    """The query's value, as reclass computes it."""

    def passes(items: dict[str, Any]) -> bool:
        result: Any = None
        for i, test in enumerate(query.tests):
            expected = lookup(test.parameter) if test.parameter is not None else test.value
            found, value = _get(items, test.export)
            ok = bool(found and test.op(value, expected))
            result = ok if i == 0 else query.joins[i - 1](result, ok)
        return bool(result) if query.tests else True

    if query.value is None:
        return [name for name, items in exports.items() if passes(items)]
    out: dict[str, Any] = {}
    for name, items in exports.items():
        found, value = _get(items, query.value)
        if found and passes(items):
            out[name] = copy.deepcopy(value)
    return out
