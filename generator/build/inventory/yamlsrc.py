"""Read hand-written YAML (inventory classes and targets) as Kapitan does, with the position of
every value.

Kapitan reads inventory files with PyYAML's safe loader (YAML 1.1, libyaml's C parser when it is
there), so this does too: ``0550`` is the octal 360, ``yes``/``no``/``on``/``off`` are booleans,
``1:30`` is 90, ``<<: *anchor`` merges, and a duplicate key keeps the last value. libyaml composes
the node tree in C; one walk over it builds plain dicts and lists plus a ``LocTree`` from the nodes'
marks. What Kapitan accepts silently but is almost always a mistake comes back as located
``warnings``: a plain scalar that YAML 1.2 reads differently (quote it to make it portable), a
duplicate key. Dates stay the text written (YAML 1.2's reading; a warning says so): parameters are
JSON data.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from generator.core import errors
from generator.core.errors import Problem
from generator.core.jsonpath import format_path
from generator.core.location import Location
from generator.core.sourcemap import LocTree

_Loader: Any = getattr(yaml, "CSafeLoader", None) if yaml.__with_libyaml__ else None
_Loader = _Loader or yaml.SafeLoader

_TAG = "tag:yaml.org,2002:"
_STR, _INT, _FLOAT, _BOOL, _NULL = (_TAG + t for t in ("str", "int", "float", "bool", "null"))
_TIMESTAMP, _MERGE, _MAP, _SEQ, _VALUE = (
    _TAG + t for t in ("timestamp", "merge", "map", "seq", "value")
)

# A plain scalar YAML 1.2 (core schema) may read as something other than a string starts with one
# of these; anything else is a string in both versions (or 1.1 made it something else: compared).
_CORE12_FIRST = frozenset("0123456789+-.~nNtTfF")
_CORE12_INT = re.compile(r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+")
_CORE12_FLOAT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?")
_CORE12_INF = re.compile(r"[-+]?\.(?:inf|Inf|INF)")
_CORE12_NAN = re.compile(r"\.(?:nan|NaN|NAN)")


@dataclass(frozen=True)
class Document:
    """A parsed YAML file: plain data, where each value was written, what deserves a warning."""

    data: Any
    locs: LocTree
    file: str
    warnings: tuple[Problem, ...] = field(default=())
    """Accepted as Kapitan does, but worth fixing: YAML 1.1-only scalars, duplicate keys."""


def load_file(path: Path, display: str) -> Document:
    """Parse one YAML file; ``display`` is the name used in messages (relative to the root)."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise errors.located(
            Location(display), f"not UTF-8 text: {e.reason} at byte {e.start}"
        ) from e
    except OSError as e:
        raise errors.located(Location(display), f"cannot read: {e.strerror}") from e
    return load_text(text, display)


def load_text(text: str, display: str) -> Document:
    """Parse YAML text as Kapitan does; syntax errors become located user errors."""
    try:
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as e:
        where = _mark_location(display, e.problem_mark or e.context_mark)
        what = " ".join(s for s in (e.context, e.problem) if s)
        raise errors.located(where, f"invalid YAML: {what}") from e
    except yaml.YAMLError as e:
        raise errors.located(Location(display), f"invalid YAML: {e}") from e
    top = Location(display, 1, 1)
    if node is None:
        return Document(None, LocTree(top), display)
    builder = _Builder(display)
    data, locs = builder.build(node, top, ())
    return Document(data, locs, display, tuple(builder.warnings))


def _mark_location(display: str, mark: Any) -> Location:
    if mark is None:
        return Location(display)
    return Location(display, mark.line + 1, mark.column + 1)


class _Builder:
    """One walk over a composed node tree: values as PyYAML's SafeLoader constructs them."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.warnings: list[Problem] = []
        self._active: set[int] = set()

    def loc(self, node: Node) -> Location:
        mark = node.start_mark
        return Location(self.file, mark.line + 1, mark.column + 1)

    def build(self, node: Node, here: Location, path: tuple[str | int, ...]) -> tuple[Any, LocTree]:
        if isinstance(node, ScalarNode):
            return self.scalar(node, here, path), LocTree(here)
        if id(node) in self._active:
            raise errors.located(
                here, "recursive YAML alias: a node contains itself", format_path(path)
            )
        self._active.add(id(node))
        try:
            if isinstance(node, SequenceNode):
                if node.tag != _SEQ:
                    raise self._tag_error(node, path)
                items: list[Any] = []
                kids: dict[str | int, LocTree] = {}
                for i, item in enumerate(node.value):
                    value, kids[i] = self.build(item, self.loc(item), (*path, i))
                    items.append(value)
                return items, LocTree(here, kids)
            assert isinstance(node, MappingNode)
            return self.mapping(node, here, path)
        finally:
            self._active.discard(id(node))

    def mapping(
        self, node: MappingNode, here: Location, path: tuple[str | int, ...]
    ) -> tuple[dict[Any, Any], LocTree]:
        if node.tag != _MAP:
            raise self._tag_error(node, path)
        out: dict[Any, Any] = {}
        kids: dict[str | int, LocTree] = {}
        explicit: dict[Any, Location] = {}
        for key_node, value_node, is_explicit in self.pairs(node, path):
            where = self.loc(key_node)
            key = self.key(key_node, where, path)
            if is_explicit:
                if key in explicit:
                    self.warnings.append(
                        Problem(
                            where,
                            format_path((*path, key)),
                            f"duplicate key {key!r} (also at line {explicit[key].line}): Kapitan "
                            "keeps this last value; remove the other one",
                        )
                    )
                explicit[key] = where
            out[key], kids[key] = self.build(value_node, where, (*path, key))
        return out, LocTree(here, kids)

    def pairs(
        self, node: MappingNode, path: tuple[str | int, ...]
    ) -> list[tuple[Node, Node, bool]]:
        """The key/value nodes of a mapping with ``<<`` merges flattened exactly as PyYAML 6.0.4's
        ``flatten_mapping`` does: merged pairs first, in order, a pair dropped only when its key is
        the very same string object as an earlier one's; then the mapping's own pairs. The last
        value of a key wins; ``True`` marks the mapping's own pairs."""
        merged: list[tuple[Node, Node, bool]] = []
        seen: set[int] = set()
        own: list[tuple[Node, Node, bool]] = []
        for key_node, value_node in node.value:
            if key_node.tag != _MERGE:
                own.append((key_node, value_node, True))
                continue
            sources = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
            for source in sources:
                if not isinstance(source, MappingNode):
                    raise errors.located(
                        self.loc(source),
                        "a merge key << takes a mapping (<<: *anchor) or a list of them",
                        format_path(path),
                    )
                for k, v, _ in self.pairs(source, path):
                    if id(k.value) not in seen:
                        seen.add(id(k.value))
                        merged.append((k, v, False))
        return merged + own

    def key(self, node: Node, where: Location, path: tuple[str | int, ...]) -> Any:
        if not isinstance(node, ScalarNode):
            raise errors.located(where, "a mapping key must be a scalar", format_path(path))
        key = self.scalar(node, where, path)
        if isinstance(key, str):
            return key
        if isinstance(key, int) and not isinstance(key, bool):
            return str(key)  # reclass makes every key a string: {80: http} is {"80": "http"}
        raise errors.located(
            where,
            f"mapping key {node.value!r} is read as {_describe(key)} by YAML 1.1 (as Kapitan "
            f"reads it), not as a string; quote it: '{node.value}'",
            format_path(path),
        )

    def scalar(self, node: ScalarNode, here: Location, path: tuple[str | int, ...]) -> Any:
        text: str = node.value
        tag = node.tag
        if tag == _STR:
            value: Any = text
        elif tag == _INT:
            value = _Loader.construct_yaml_int(_CONSTRUCTOR, node)
        elif tag == _FLOAT:
            value = _Loader.construct_yaml_float(_CONSTRUCTOR, node)
        elif tag == _BOOL:
            value = _Loader.bool_values[text.lower()]
        elif tag == _NULL:
            value = None
        elif tag in (_TIMESTAMP, _VALUE):
            value = text
        else:
            raise self._tag_error(node, path)
        if not node.style and (tag != _STR or (text[:1] in _CORE12_FIRST if text else True)):
            self._compare_core12(text, tag, value, here, path)
        return value

    def _compare_core12(
        self, text: str, tag: str, value: Any, here: Location, path: tuple[str | int, ...]
    ) -> None:
        core = _core12(text)
        if tag == _TIMESTAMP:
            what = "a date (Kapitan passes a date object, gen the text as written)"
        elif _same(value, core):
            return
        else:
            what = _describe(value)
        self.warnings.append(
            Problem(
                here,
                format_path(path),
                f"{text} reads as {what} in YAML 1.1 (Kapitan's reading, which gen follows) but "
                f"as {_describe(core)} in YAML 1.2; quote it or write it so both agree",
            )
        )

    def _tag_error(self, node: Node, path: tuple[str | int, ...]) -> errors.ProblemReport:
        return errors.located(
            self.loc(node),
            f"unsupported YAML tag {node.tag}: inventory values are plain mappings, lists and "
            "scalars",
            format_path(path),
        )


_CONSTRUCTOR: Any = _Loader("")
"""A loader used only for its scalar constructors (int and float from their text)."""


def _core12(text: str) -> Any:
    """How YAML 1.2's core schema reads a plain scalar."""
    if text in ("", "~", "null", "Null", "NULL"):
        return None
    if text in ("true", "True", "TRUE"):
        return True
    if text in ("false", "False", "FALSE"):
        return False
    if _CORE12_INT.fullmatch(text):
        if text.startswith("0o"):
            return int(text[2:], 8)
        if text.startswith("0x"):
            return int(text[2:], 16)
        return int(text)
    if _CORE12_FLOAT.fullmatch(text):
        return float(text)
    if _CORE12_INF.fullmatch(text):
        return -math.inf if text.startswith("-") else math.inf
    if _CORE12_NAN.fullmatch(text):
        return math.nan
    return text


def _same(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return bool(a == b)


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, str):
        return "a string"
    return f"the {type(value).__name__} {value!r}"
