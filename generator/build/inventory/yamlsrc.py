"""Read hand-written YAML (inventory classes and targets) with the position of every value.

ruamel.yaml's round-trip loader keeps line and column of each key and item; we turn its
CommentedMap/CommentedSeq into plain dicts and lists plus a ``LocTree``, so later stages work on
plain data and still say where each value came from. YAML 1.2 rules, no timestamp or date
coercion (``2024-01-01`` stays a string), duplicate keys are errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import DuplicateKeyError, RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from generator.core import errors
from generator.core.jsonpath import format_path
from generator.core.location import Location
from generator.core.sourcemap import LocTree


class _Constructor(RoundTripConstructor):
    """Round-trip constructor that keeps timestamps as the strings the user wrote."""


_Constructor.add_constructor("tag:yaml.org,2002:timestamp", RoundTripConstructor.construct_yaml_str)


def _yaml() -> YAML:
    y = YAML(typ="rt")
    y.Constructor = _Constructor
    y.allow_duplicate_keys = False
    return y


@dataclass(frozen=True)
class Document:
    """A parsed YAML file: plain data and where each value was written."""

    data: Any
    locs: LocTree
    file: str


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
    """Parse YAML text; syntax errors and duplicate keys become located user errors."""
    try:
        raw = _yaml().load(text)
    except DuplicateKeyError as e:
        mark = e.problem_mark
        key = (e.problem or "").split('"')[1] if '"' in (e.problem or "") else ""
        msg = f"duplicate key {key!r}: each key may appear once per mapping; merge the two entries"
        raise errors.located(
            _mark_location(display, mark), msg, _duplicate_path(text, e.context_mark, key)
        ) from e
    except MarkedYAMLError as e:
        where = _mark_location(display, e.problem_mark or e.context_mark)
        what = " ".join(s for s in (e.context, e.problem) if s)
        raise errors.located(where, f"invalid YAML: {what}") from e
    except YAMLError as e:
        raise errors.located(Location(display), f"invalid YAML: {e}") from e
    data, locs = _plain(raw, Location(display, 1, 1), display)
    return Document(data, locs, display)


def _duplicate_path(text: str, mapping_mark: Any, key: str) -> str:
    """The key path of a duplicate key: re-read with duplicates allowed, find the mapping that
    starts at ``mapping_mark``; "" if that fails."""
    y = _yaml()
    y.allow_duplicate_keys = True
    try:
        raw = y.load(text)
    except YAMLError:
        return ""
    found = _mapping_at(raw, (mapping_mark.line, mapping_mark.column), ()) if mapping_mark else None
    return format_path((*found, key)) if found is not None else ""


def _mapping_at(
    node: Any, mark: tuple[int, int], path: tuple[str | int, ...]
) -> tuple[str | int, ...] | None:
    """The path of the mapping that starts at ``mark`` (0-based line, column), or None."""
    if isinstance(node, CommentedMap):
        if (node.lc.line, node.lc.col) == mark:
            return path
        children: list[tuple[str | int, Any]] = [
            (k, v) for k, v in node.items() if isinstance(k, str)
        ]
    elif isinstance(node, CommentedSeq):
        children = list(enumerate(node))
    else:
        return None
    for key, value in children:
        found = _mapping_at(value, mark, (*path, key))
        if found is not None:
            return found
    return None


def _mark_location(display: str, mark: Any) -> Location:
    if mark is None:
        return Location(display)
    return Location(display, mark.line + 1, mark.column + 1)


def _plain(node: Any, here: Location, file: str) -> tuple[Any, LocTree]:
    """Convert ruamel's node types to plain Python types with a parallel location tree."""
    if isinstance(node, CommentedMap):
        out: dict[str, Any] = {}
        children: dict[str | int, LocTree] = {}
        for key, value in node.items():
            line, col = node.lc.key(key)
            loc = Location(file, line + 1, col + 1)
            if not isinstance(key, str):
                raise errors.located(loc, f"mapping key {key!r} is not a string; quote it")
            out[key], children[key] = _plain(value, loc, file)
        return out, LocTree(here, children)
    if isinstance(node, CommentedSeq):
        items: list[Any] = []
        kids: dict[str | int, LocTree] = {}
        for i, value in enumerate(node):
            line, col = node.lc.item(i)
            item, kids[i] = _plain(value, Location(file, line + 1, col + 1), file)
            items.append(item)
        return items, LocTree(here, kids)
    return _scalar(node, here), LocTree(here)


def _scalar(value: Any, here: Location) -> Any:
    # ruamel returns subclasses (ScalarFloat, ScalarInt, ScalarBoolean, TaggedScalar); downstream
    # code (JSON output, jsonschema, templates) wants the plain types.
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return bool(value) if type(value).__name__ == "ScalarBoolean" else int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    raise errors.located(
        here, f"unsupported YAML value of type {type(value).__name__}; use plain scalars"
    )
