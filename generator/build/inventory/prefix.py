"""Merging a target's classes once per distinct sequence of class files, shared by targets.

Most targets of an inventory apply the same classes in the same order (``common``, a site class,
the services) and differ only in their own file. Merging is a pure function of the documents
applied, so the merged state after a sequence of classes is computed for the first target that
applies it and copied for every other one (a copy is several times cheaper than merging the
layers again: no key markers, references or locations to work out).

Two things make a target's merge differ from the pure one, and both are kept exact:

- ``_reclass_`` (the target's own name and environment) is set before any class, as reclass
  does. While no class touches ``_reclass_``, setting it first or putting it underneath the
  merged classes gives the same result; the moment one does, this target merges as before, the
  metadata first and every layer in order, and nothing of it is cached.
- Errors come in file order: a class sequence is taken from the cache only as far as it is known
  to merge cleanly (an earlier target merged exactly these files); the first file beyond it is
  merged as it comes, right after the walk reached it, as without the cache.

A class name with a reference (``site.${site}``) needs the parameters merged so far: they are
materialized there (metadata included) and the rest of that target merges as it comes.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from generator.build.inventory.merge import Deferred, Merger, MLoc, share
from generator.build.inventory.yamlsrc import Document
from generator.core.location import Location

META = "_reclass_"
"""The key reclass gives each target's metadata."""

_LIMIT = 128
"""Merged class sequences kept (least recently used dropped): a few per site class in practice."""


@dataclass
class State:
    """The parameters and the exports merged from a sequence of documents."""

    params: Merger
    exports: Merger

    @classmethod
    def empty(cls) -> State:
        return cls(Merger(), Merger())

    def apply(self, doc: Document) -> None:
        self.params.apply(doc)
        self.exports.apply(doc, "exports")

    def copy(self) -> State:
        return State(_copy_merger(self.params), _copy_merger(self.exports))


class PrefixCache:
    """Merged states by the class files applied, and which sequences are known to merge."""

    def __init__(self, limit: int = _LIMIT) -> None:
        self.limit = limit
        self.states: OrderedDict[tuple[str, ...], State] = OrderedDict()
        self.clean: set[tuple[str, ...]] = {()}
        """Sequences of files that merge without an error (each prefix of them too)."""
        self.hits = self.misses = 0

    def state(self, docs: list[Document]) -> State:
        """A private copy of the state after merging ``docs`` (a clean sequence) in order."""
        key = tuple(doc.file for doc in docs)
        found = self.states.get(key)
        if found is not None:
            self.states.move_to_end(key)
            self.hits += 1
            return found.copy()
        self.misses += 1
        start = 0
        state = State.empty()
        for end in range(len(key) - 1, 0, -1):
            prefix = self.states.get(key[:end])
            if prefix is not None:
                start, state = end, prefix.copy()
                break
        for doc in docs[start:]:
            state.apply(doc)
        self.remember(key, state)
        return state

    def remember(self, key: tuple[str, ...], state: State) -> None:
        """Keep a copy of ``state``, the merge of the files ``key``."""
        self.states[key] = state.copy()
        self.states.move_to_end(key)
        while len(self.states) > self.limit:
            self.states.popitem(last=False)


class TargetMerge:
    """One target's merge, class by class, through the cache where it can."""

    def __init__(self, cache: PrefixCache, meta: dict[str, Any] | None, file: str) -> None:
        self.cache = cache
        self.meta = meta
        self.root = Location(file, 1, 1)
        self.docs: list[Document] = []
        self.state: State | None = None
        """None while the documents so far are a clean sequence not yet merged for this target."""
        self.private = False
        """The state holds this target's own data (the metadata): it is never cached."""

    def apply(self, doc: Document) -> None:
        """Merge one class (errors as merging it right now would raise them)."""
        key = (*(d.file for d in self.docs), doc.file)
        touches_meta = _touches(doc, META)
        if self.state is None:
            if key in self.cache.clean and not (touches_meta and self.meta is not None):
                self.docs.append(doc)
                return
            self.state = self.cache.state(self.docs)
        if touches_meta and self.meta is not None:
            self._add_meta()
        self.state.apply(doc)
        self.docs.append(doc)
        if not self.private:
            self.cache.clean.add(key)

    def live(self) -> Merger:
        """The parameters merged so far, metadata included; the rest of the target merges as it
        comes (for a class name with references)."""
        state = self._materialize()
        self._add_meta()
        return state.params

    def finish(self, target: Document) -> tuple[Merger, Merger]:
        """The merged parameters and exports, with the target's own file on top."""
        state = self._materialize()
        if not self.private:
            key = tuple(d.file for d in self.docs)
            if key not in self.cache.states:
                self.cache.remember(key, state)
        self._add_meta()
        state.apply(target)
        return state.params, state.exports

    def _materialize(self) -> State:
        if self.state is None:
            self.state = self.cache.state(self.docs)
        return self.state

    def _add_meta(self) -> None:
        """Put the metadata under everything merged so far (the same as setting it first while
        nothing merged touches it) and the target's location at the root."""
        assert self.state is not None
        if self.private:
            return
        self.private = True
        params, exports = self.state.params, self.state.exports
        params.locs.here = exports.locs.here = self.root
        if self.meta is not None:
            params.params = {META: self.meta, **params.params}
            params.locs.children = {META: MLoc(self.root), **params.locs.children}


def _touches(doc: Document, key: str) -> bool:
    """Whether ``doc``'s parameters set ``key`` at the top (with or without ``~``/``=``)."""
    params = doc.data.get("parameters") if isinstance(doc.data, dict) else None
    return isinstance(params, dict) and any(
        isinstance(raw, str) and raw.lstrip("~=") == key for raw in params
    )


def _copy_merger(merger: Merger) -> Merger:
    """A copy to change freely: the values copied, the locations shared below the root (changed
    only through ``merge.own``)."""
    out = Merger()
    out.params = _copy_dict(merger.params)
    share(merger.locs)
    out.locs = MLoc(merger.locs.here, dict(merger.locs.children))
    out.constants = dict(merger.constants)
    return out


def _copy_dict(value: dict[str, Any]) -> dict[str, Any]:
    return {key: _copy(item) if type(item) in _CONTAINERS else item for key, item in value.items()}


def _copy(value: Any) -> Any:
    kind = type(value)
    if kind is dict:
        return _copy_dict(value)
    if kind is list:
        return [_copy(item) if type(item) in _CONTAINERS else item for item in value]
    if kind is Deferred:  # its layers are never changed, only appended to
        return Deferred(list(value.layers))
    return value


_CONTAINERS = frozenset({dict, list, Deferred})
