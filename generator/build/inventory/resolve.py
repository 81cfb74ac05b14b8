"""Resolving ``${...}`` references in a merged tree, in place: lookups, nesting, cycles.

A reference resolves after all merging: a whole-value reference takes the referenced value (any
type, with its locations); text around references makes a string. Merges that waited for a
reference (``merge.Deferred``) are applied here, once both sides are known.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from generator.build.inventory import queries, references
from generator.build.inventory.merge import (
    Constants,
    Deferred,
    Merger,
    MLoc,
    check_constants,
    kind,
    located,
    needs_deferral,
    own,
    split_key,
    strip_markers,
    thaw,
)
from generator.build.inventory.references import KeyPath
from generator.core import errors
from generator.core.errors import Problem
from generator.core.jsonpath import format_path
from generator.core.location import Location

QueryFn = Callable[[queries.Parsed, queries.Lookup], Any]
"""Evaluates an inventory query for this target (``queries.evaluate`` over every target's
exports); ``Lookup`` gives this target's resolved parameters."""


def resolve(
    params: dict[str, Any], locs: MLoc, constants: Constants, query: QueryFn | None = None
) -> tuple[dict[str, Any], list[Problem]]:
    """``params`` with every reference resolved (in place; ``locs`` follows the values moved), and
    the warnings: values Kapitan renders into a string as Python prints them. Inventory queries
    are evaluated with ``query`` (refused without it)."""
    resolver = _Resolver(params, locs, constants, query)
    return resolver.run(), resolver.warnings


def resolve_exports(
    params: dict[str, Any], locs: MLoc, constants: Constants, exports: dict[str, Any], ex_locs: MLoc
) -> dict[str, Any]:
    """A target's merged ``exports:`` with their references resolved against its parameters (only
    the parameters they refer to are resolved); a query in either is refused."""
    key = "\0exports"
    tree = {**params, key: exports}
    tree_locs = MLoc(locs.here, {**locs.children, key: ex_locs})
    resolver = _Resolver(tree, tree_locs, constants, None)
    try:
        resolver._resolve_path((key,))
    except errors.ProblemReport as e:  # name the exports as the user wrote them
        shown = format_path((key,))
        e.problems = [
            Problem(p.location, p.path.replace(shown, "$.exports", 1), p.message)
            for p in e.problems
        ]
        raise
    out: dict[str, Any] = tree[key]
    return out


def render_class_name(merger: Merger, raw: str, where: Location | None) -> str:
    """A class name with references (``site.${site}``) rendered from the parameters merged so far,
    as reclass does; the merge itself is left untouched."""
    params = copy.deepcopy(merger.params)
    locs = copy.deepcopy(merger.locs)
    resolver = _Resolver(params, locs, dict(merger.constants))
    try:
        value = resolver._settle_layer(references.template(raw), MLoc(where), ("classes",))
    except errors.GenError as e:
        raise errors.located(
            where,
            f"cannot resolve the class name {raw!r} from the parameters of the classes before it: "
            + (
                e.problems[0].message
                if isinstance(e, errors.ProblemReport) and e.problems
                else str(e)
            ),
        ) from e
    return _stringify(value, raw, where, ("classes",), [])


_NOT_PLAIN = (dict, list, Deferred, references.Template)
"""What may hold references still to resolve (plain scalars never do)."""


def _pending_paths(node: Any, path: KeyPath, out: list[KeyPath]) -> None:
    """The paths of every value with references to resolve or a merge waiting for them, in
    document order."""
    items = node.items() if type(node) is dict else enumerate(node)
    for key, value in items:
        cls = type(value)  # exact types: merged parameters hold plain dicts, lists and scalars
        if cls is dict or cls is list:
            if value:
                _pending_paths(value, (*path, key), out)
        elif cls is references.Template or cls is Deferred:
            out.append((*path, key))


class _MissingReference(errors.ProblemReport):
    """A reference to a key that does not exist."""


class _Resolver:
    """Resolves every reference in a merged tree in place, detecting cycles."""

    def __init__(
        self,
        params: dict[str, Any],
        locs: MLoc,
        constants: Constants,
        query: QueryFn | None = None,
    ) -> None:
        self.query = query
        self.root = params
        self.locs = locs
        self.constants = constants
        self.active: list[KeyPath] = []
        self.done: set[KeyPath] = set()
        self.warnings: list[Problem] = []

    def run(self) -> dict[str, Any]:
        # Only the values with references (or waiting merges) need work; each is resolved with its
        # ancestors active, as a walk from the root would have them (so cycles read the same).
        pending: list[KeyPath] = []
        _pending_paths(self.root, (), pending)
        for path in pending:
            if path in self.done:
                continue
            ancestors = [path[:i] for i in range(len(path))]
            self.active.extend(ancestors)
            self._resolve_path(path)
            del self.active[len(self.active) - len(ancestors) :]
        return self.root

    def _location(self, path: KeyPath) -> Location | None:
        return located(self.locs, path)

    def _loc_node(self, path: KeyPath) -> MLoc | None:
        node: MLoc | None = self.locs
        for part in path:
            if node is None:
                return None
            node = node.children.get(part)
        return node

    def _own_node(self, path: KeyPath) -> MLoc | None:
        """The location node at ``path``, private to this target (``merge.own`` on the way)."""
        node: MLoc | None = self.locs
        for part in path:
            if node is None:
                return None
            node = own(node, part)
        return node

    def _lookup(
        self, path: KeyPath, ref_text: str, where: Location | None, at: KeyPath
    ) -> tuple[Any, KeyPath]:
        """The fully resolved value at ``path`` and its path with list indices as ints; pending
        nodes on the way are resolved first. ``where``/``at``: the reference, for errors."""
        node: Any = self.root
        for depth, part in enumerate(path):
            here = path[:depth]
            node = self._settle(node, here)
            if isinstance(node, dict) and isinstance(part, str) and part in node:
                node = node[part]
            elif (
                isinstance(node, list)
                and isinstance(part, str)
                and part.isdigit()
                and int(part) < len(node)
            ):
                node = node[int(part)]
                path = (*path[:depth], int(part), *path[depth + 1 :])
            else:
                missing = (
                    f"key {part!r} not found in {format_path(here)}"
                    if isinstance(node, (dict, list))
                    else f"{format_path(here)} is {kind(node)}, not a mapping"
                )
                raise _MissingReference(
                    [
                        Problem(
                            where,
                            format_path(at),
                            f"cannot resolve reference {ref_text}: {missing} "
                            "(write \\${ for a literal ${)",
                        )
                    ]
                )
        self._resolve_path(path)
        return self._get(path), path

    def _settle(self, node: Any, path: KeyPath) -> Any:
        if self._pending(node, path):
            self._resolve_path(path)
            return self._get(path)
        return node

    def _get(self, path: KeyPath) -> Any:
        node: Any = self.root
        for part in path:
            node = node[part]
        return node

    def _set(self, path: KeyPath, value: Any) -> None:
        parent = self._get(path[:-1])
        parent[path[-1]] = value

    def _pending(self, node: Any, path: KeyPath) -> bool:
        if path in self.done:
            return False
        return isinstance(node, Deferred) or references.has_markup(node)

    def _resolve_path(self, path: KeyPath) -> None:
        """Resolve the node at ``path`` and everything under it."""
        if path in self.done:
            return
        if path in self.active:
            cycle = [*self.active[self.active.index(path) :], path]
            chain = " -> ".join(format_path(p) for p in cycle)
            raise errors.located(
                self._location(path), f"reference cycle: {chain}", format_path(path)
            )
        self.active.append(path)
        node = self._get(path)
        if isinstance(node, Deferred) or references.has_markup(node):
            target = self._own_node(path)
            locs = MLoc(target.here, target.children) if target else MLoc(self._location(path), {})
            self._set(path, self._settle_layer(node, locs, path))
            if target is not None:
                target.here, target.children = locs.here, locs.children
        node = self._get(path)
        if isinstance(node, dict):
            for key in [k for k, v in node.items() if isinstance(v, _NOT_PLAIN)]:
                self._resolve_path((*path, key))
        elif isinstance(node, list):
            for i in [i for i, v in enumerate(node) if isinstance(v, _NOT_PLAIN)]:
                self._resolve_path((*path, i))
        self.active.pop()
        self.done.add(path)

    def _settle_layer(self, value: Any, locs: MLoc, path: KeyPath) -> Any:
        """``value`` (at ``path``, written at ``locs``) with its references resolved and its merges
        applied; ``locs`` is updated in place to where the parts of the result came from."""
        if isinstance(value, Deferred):
            return self._resolve_deferred(value, locs, path)
        if not references.has_markup(value):
            return value
        tokens = references.tokenize(value, locs.here, path)
        if len(tokens) == 1 and isinstance(tokens[0], references.Query):
            locs.children = {}
            return copy.deepcopy(self._evaluate(tokens[0], locs.here, path))
        if len(tokens) == 1 and isinstance(tokens[0], references.Ref):
            key_path, shown = self._ref_path(tokens[0], locs.here, path)
            found, key_path = self._lookup(key_path, shown, locs.here, path)
            source = self._loc_node(key_path)
            if source is not None and isinstance(found, (dict, list)):
                locs.children = copy.deepcopy(source.children)
            else:
                locs.children = {}
            return copy.deepcopy(found)
        out: list[str] = []
        for token in tokens:
            if isinstance(token, str):
                out.append(token)
                continue
            if isinstance(token, references.Query):
                raise errors.located(
                    locs.here,
                    f"inventory query $[ {token.text} ] inside a string: Kapitan (reclass) fails "
                    "on it; make the query the whole value and reference that",
                    format_path(path),
                )
            key_path, shown = self._ref_path(token, locs.here, path)
            found = self._lookup(key_path, shown, locs.here, path)[0]
            out.append(_stringify(found, shown, locs.here, path, self.warnings))
        return "".join(out)

    def _evaluate(self, token: references.Query, where: Location | None, at: KeyPath) -> Any:
        shown = f"$[ {token.text} ]"
        if self.query is None:
            raise errors.located(
                where,
                f"inventory query {shown} here: gen evaluates queries in parameters only, not in "
                "class names or exports",
                format_path(at),
            )
        parsed = queries.parse(token.text, where, at)

        def lookup(key_path: KeyPath) -> Any:
            return self._lookup(key_path, "${" + ":".join(map(str, key_path)) + "}", where, at)[0]

        found = self.query(parsed, lookup)
        if isinstance(found, list) and len(found) > 1:
            self.warnings.append(
                Problem(
                    where,
                    format_path(at),
                    f"inventory query {shown} lists targets by name; Kapitan lists them in the "
                    "order its file system gives",
                )
            )
        return found

    def _ref_path(
        self, ref: references.Ref, where: Location | None, at: KeyPath
    ) -> tuple[KeyPath, str]:
        text = "".join(p if isinstance(p, str) else self._ref_text(p, where, at) for p in ref.parts)
        if not text or any(not part for part in text.split(":")):
            raise errors.located(where, f"empty key in reference ${{{text}}}", format_path(at))
        return tuple(text.split(":")), "${" + text + "}"

    def _ref_text(self, ref: references.Ref, where: Location | None, at: KeyPath) -> str:
        key_path, shown = self._ref_path(ref, where, at)
        found = self._lookup(key_path, shown, where, at)[0]
        return _stringify(found, shown, where, at, self.warnings)

    def _resolve_deferred(self, node: Deferred, locs: MLoc, path: KeyPath) -> Any:
        """Apply the layers of a merge that involved references, now that they can be resolved;
        ``locs`` becomes the location tree of the result."""
        result: Any = None
        result_locs = MLoc(None)
        sealed: Constants = {}
        for value, layer_locs in node.layers:
            layer = thaw(layer_locs, layer_locs.here)
            result = self._merge(result, result_locs, copy.deepcopy(value), layer, path, sealed)
            self._seal(path, result_locs, sealed)
        locs.here, locs.children = result_locs.here or locs.here, result_locs.children
        return result

    def _seal(self, path: KeyPath, locs: MLoc, sealed: Constants) -> None:
        """Constants below ``path`` whose layer is now merged (its location is in ``locs``) are
        fixed."""
        for cpath, where in self.constants.items():
            if where is None or len(cpath) <= len(path) or cpath[: len(path)] != path:
                continue
            node: MLoc | None = locs
            for part in cpath[len(path) :]:
                node = node.children.get(part) if node else None
            if node is not None and node.here == where:
                sealed[cpath] = where

    def _merge(
        self, old: Any, old_locs: MLoc, new: Any, new_locs: MLoc, path: KeyPath, sealed: Constants
    ) -> Any:
        """Merge a layer into the result (and its locations, in place) with the usual rules; the
        layer's keys may still carry ``~``/``=`` markers, references on either side are resolved."""
        if old is not None and new is not None and (needs_deferral(old) or needs_deferral(new)):
            new = self._settle_layer(new, new_locs, path)
            depth = len(self.active)
            try:
                old = self._settle_layer(old, old_locs, path)
            except _MissingReference:
                # reclass's ignore_overwritten_missing_references: a value that a later layer
                # overwrites may refer to something that does not exist.
                del self.active[depth:]
                if isinstance(new, (dict, list)):
                    raise
                old = None
        scalars = not isinstance(old, (dict, list)) and not isinstance(new, (dict, list))
        if old is None or new is None or scalars:
            old_locs.here, old_locs.children = new_locs.here, new_locs.children
            return strip_markers(new, old_locs)
        if isinstance(old, dict) and isinstance(new, dict):
            old_locs.here = new_locs.here or old_locs.here
            for raw_key, value in new.items():
                key, override, _ = split_key(raw_key)
                kpath = (*path, key)
                sub = new_locs.children.get(raw_key) or MLoc(new_locs.here)
                replacing = key in old and (override or value is None)
                check_constants(sealed, kpath, sub.here, replacing=replacing)
                if override or key not in old:
                    old[key], old_locs.children[key] = strip_markers(value, sub), sub
                else:
                    mine = old_locs.children.setdefault(key, MLoc(old_locs.here))
                    old[key] = self._merge(old[key], mine, value, sub, kpath, sealed)
            return old
        if isinstance(old, list) and isinstance(new, list):
            old_locs.here = new_locs.here or old_locs.here
            for i, item in enumerate(new):
                sub = new_locs.children.get(i) or MLoc(new_locs.here)
                old_locs.children[len(old)] = sub
                old.append(strip_markers(item, sub))
            return old
        raise errors.located(
            new_locs.here,
            f"cannot merge {kind(new)} over {kind(old)} set at "
            f"{old_locs.here} (after resolving references)",
            format_path(path),
        )


def _stringify(
    value: Any, shown: str, where: Location | None, path: KeyPath, warnings: list[Problem]
) -> str:
    """``value`` inside a string, as reclass renders it (Python's ``str``); anything but a string
    or a number gets a warning: ``True``, ``None``, ``{'k': 'v'}`` in a string is rarely meant."""
    if isinstance(value, str) or (isinstance(value, (int, float)) and not isinstance(value, bool)):
        return str(value)
    text = str(value)
    warnings.append(
        Problem(
            where,
            format_path(path),
            f"reference {shown} is {kind(value) if isinstance(value, (dict, list)) else text} and "
            f"is rendered into this string as {text!r}, as Kapitan does; reference it as the "
            "whole value, or quote it in the source if a string is meant",
        )
    )
    return text
