"""Deep merge of parameter layers, with reclass's rules and a location for every value.

Dicts merge, lists extend, scalars replace; ``~key`` replaces instead of merging; ``=key`` is a
constant that later layers cannot change (nor replace a mapping holding it); null replaces and is
replaced by anything. A merge whose sides involve a whole-value reference waits (``Deferred``)
until ``resolve`` can see what the reference holds.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from generator.build.inventory import references
from generator.build.inventory.references import KeyPath
from generator.build.inventory.yamlsrc import Document
from generator.core import errors
from generator.core.jsonpath import format_path
from generator.core.location import Location
from generator.core.sourcemap import LocTree, nearest, subtree

Constants = dict[KeyPath, Location | None]
"""Where each ``=`` constant was set, by key path."""


@dataclass
class Deferred:
    """A merge that must wait for references: layers applied in order once they are resolved."""

    layers: list[tuple[Any, LocTree]]


@dataclass(slots=True)
class MLoc:
    """Mutable location node used while merging; frozen into a LocTree at the end.

    A ``shared`` node (and everything under it) also belongs to merged class sequences that other
    targets copy (``prefix``): it is never changed in place; ``own`` gives a private copy first.
    """

    here: Location | None
    children: dict[str | int, MLoc] = field(default_factory=dict)
    shared: bool = False

    def freeze(self) -> LocTree:
        return LocTree(self.here, {k: v.freeze() for k, v in self.children.items()})


def own(parent: MLoc, key: str | int) -> MLoc | None:
    """``parent``'s child at ``key``, ready to change: a shared one is replaced by a shallow
    private copy (its own children stay shared). ``parent`` must be private already."""
    child = parent.children.get(key)
    if child is not None and child.shared:
        child = parent.children[key] = MLoc(child.here, dict(child.children))
    return child


def share(node: MLoc) -> None:
    """Mark everything under ``node`` shared (not ``node`` itself: its holder keeps it private)."""
    for child in node.children.values():
        if not child.shared:
            child.shared = True
            share(child)


def located(node: MLoc | None, path: Iterable[str | int]) -> Location | None:
    """Where the value at ``path`` (or its nearest located ancestor) was set, or None."""
    best = node.here if node else None
    for part in path:
        node = node.children.get(part) if node else None
        if node is None:
            break
        best = node.here or best
    return best


def thaw(tree: LocTree | None, fallback: Location | None) -> MLoc:
    """A mutable copy of ``tree`` (``fallback`` as the location of a missing one)."""
    if tree is None:
        return MLoc(fallback)
    return MLoc(tree.here, {k: thaw(v, v.here) for k, v in tree.children.items()})


def split_key(raw: str) -> tuple[str, bool, bool]:
    """``~key`` -> override, ``=key`` -> constant (either order)."""
    override = constant = False
    key = raw
    while key[:1] in ("~", "=") and len(key) > 1:
        if key[0] == "~":
            override = True
        else:
            constant = True
        key = key[1:]
    return key, override, constant


def kind(value: Any) -> str:
    """What ``value`` is, for messages: ``a mapping``, ``a list``, ``null``, ``an int (3)``."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "null"
    name = "str" if isinstance(value, str) else type(value).__name__
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name} ({value!r})"


class Merger:
    """Merges one target's layers in order into ``params`` (and their locations into ``locs``)."""

    def __init__(self) -> None:
        self.params: dict[str, Any] = {}
        self.locs = MLoc(None)
        self.constants: Constants = {}

    def apply(self, doc: Document, section: str = "parameters") -> None:
        """Merge the ``parameters:`` (or ``exports:``) of one class or target over what was merged
        so far."""
        data = doc.data or {}
        params = data.get(section)
        if params:
            if not isinstance(params, dict):
                raise errors.located(
                    nearest(doc.locs, [section]), f"{section}: must be a mapping", f"$.{section}"
                )
            self._merge_dict(self.params, self.locs, params, subtree(doc.locs, [section]), ())

    def _merge_dict(
        self,
        acc: dict[str, Any],
        acc_locs: MLoc,
        layer: dict[str, Any],
        layer_locs: LocTree | None,
        path: KeyPath,
    ) -> None:
        for raw_key, value in layer.items():
            key, override, constant = split_key(raw_key)
            sub_locs = layer_locs.child(raw_key) if layer_locs else None
            here = sub_locs.here if sub_locs else None
            kpath = (*path, key)
            replacing = key in acc and (override or value is None)
            check_constants(self.constants, kpath, here, replacing=replacing)
            if constant:
                self.constants[kpath] = here
            if key not in acc or override or acc[key] is None or value is None:
                acc[key], acc_locs.children[key] = self._adopt(value, sub_locs, here, kpath)
                continue
            self._merge_value(acc, acc_locs, key, value, sub_locs, here, kpath)

    def _merge_value(
        self,
        acc: dict[str, Any],
        acc_locs: MLoc,
        key: str,
        value: Any,
        sub_locs: LocTree | None,
        here: Location | None,
        kpath: KeyPath,
    ) -> None:
        old = acc[key]
        old_locs = own(acc_locs, key)
        if old_locs is None:
            old_locs = acc_locs.children[key] = MLoc(here)
        if isinstance(old, dict) and isinstance(value, dict):
            old_locs.here = here or old_locs.here
            self._merge_dict(old, old_locs, value, sub_locs, kpath)
        elif isinstance(old, list) and isinstance(value, list):
            old_locs.here = here or old_locs.here
            for item_index, item in enumerate(value):
                item_locs = sub_locs.child(item_index) if sub_locs else None
                new_value, new_locs = self._adopt(item, item_locs, here, (*kpath, len(old)))
                old_locs.children[len(old)] = new_locs
                old.append(new_value)
        elif needs_deferral(old) or needs_deferral(references.template(value)):
            layers = old.layers if isinstance(old, Deferred) else [(old, old_locs.freeze())]
            new_value, new_locs = self._adopt(value, sub_locs, here, kpath, keep_markers=True)
            layers.append((new_value, new_locs.freeze()))
            acc[key] = Deferred(layers)
            acc_locs.children[key] = new_locs
        elif isinstance(old, (dict, list)) or isinstance(value, (dict, list)):
            raise errors.located(
                here,
                f"cannot merge {kind(value)} over {kind(old)} set at "
                f"{old_locs.here}; write ~{key} to replace the value instead of "
                "merging",
                format_path(kpath),
            )
        else:
            acc[key], acc_locs.children[key] = self._adopt(value, sub_locs, here, kpath)

    def _adopt(
        self,
        value: Any,
        locs: LocTree | None,
        here: Location | None,
        path: KeyPath,
        keep_markers: bool = False,
    ) -> tuple[Any, MLoc]:
        """A private copy of a layer's value, registering its constants; ``~``/``=`` markers are
        taken off nested keys unless ``keep_markers`` (a layer merged only once references
        resolve)."""
        node = MLoc(locs.here if locs is not None and locs.here is not None else here)
        if isinstance(value, dict):
            out: dict[str, Any] = {}
            kids = node.children
            subs = locs.children if locs is not None else _NO_CHILDREN
            for raw_key, item in value.items():
                key = raw_key
                if raw_key[:1] in _MARKERS:
                    key, _, constant = split_key(raw_key)
                    if constant:
                        sub_here = subs[raw_key].here if raw_key in subs else here
                        self.constants[(*path, key)] = sub_here
                name = raw_key if keep_markers else key
                sub = subs.get(raw_key)
                if isinstance(item, (dict, list)) or (isinstance(item, str) and "$" in item):
                    out[name], kids[name] = self._adopt(
                        item, sub, node.here, (*path, key), keep_markers
                    )
                else:  # a plain scalar: the common case, kept cheap
                    out[name] = item
                    kids[name] = MLoc(sub.here if sub is not None and sub.here else node.here)
            return out, node
        if isinstance(value, list):
            items = []
            for i, item in enumerate(value):
                sub = locs.child(i) if locs is not None else None
                adopted, node.children[i] = self._adopt(
                    item, sub, node.here, (*path, i), keep_markers
                )
                items.append(adopted)
            return items, node
        return references.template(value), node


_MARKERS = ("~", "=")
_NO_CHILDREN: dict[str | int, LocTree] = {}


def check_constants(
    constants: Constants, kpath: KeyPath, here: Location | None, replacing: bool
) -> None:
    """A value at ``kpath`` may not change a constant there, nor (``replacing``) one below it."""
    if kpath in constants:
        raise errors.located(
            here,
            f"cannot change a constant set at {constants[kpath]}; "
            "remove this value or the = marker there",
            format_path(kpath),
        )
    if replacing:
        for cpath, where in constants.items():
            if len(cpath) > len(kpath) and cpath[: len(kpath)] == kpath:
                raise errors.located(
                    here,
                    "cannot replace this value: it holds the constant "
                    f"{format_path(cpath)} set at {where}; merge into it "
                    "instead, or remove the = marker there",
                    format_path(kpath),
                )


def needs_deferral(value: Any) -> bool:
    """Whether merging over or with ``value`` must wait until references are resolved."""
    return isinstance(value, Deferred) or (
        isinstance(value, references.Template) and references.is_whole_reference(value)
    )


def strip_markers(value: Any, locs: MLoc) -> Any:
    """``value`` with ``~``/``=`` taken off its keys at every depth (``locs`` renamed to match)."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        children: dict[str | int, MLoc] = {}
        for raw_key, item in value.items():
            key = split_key(raw_key)[0]
            sub = locs.children.get(raw_key) or MLoc(locs.here)
            out[key], children[key] = strip_markers(item, sub), sub
        locs.children = children
        return out
    if isinstance(value, list):
        return [
            strip_markers(item, locs.children.setdefault(i, MLoc(locs.here)))
            for i, item in enumerate(value)
        ]
    return value
