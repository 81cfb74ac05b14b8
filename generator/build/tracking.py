"""Render each distinct object once: what a template read, recorded, and its output reused.

A template's output depends only on the values it reads (templates are deterministic: the same
reads in the same order give the same output). While a template renders, its context values are
wrapped in read-only proxies (``TrackedDict``, ``TrackedList``) that record every read as an
operation on a path from the context root and the result it gave:

    ("T", name)          a top-level variable (its value when a leaf, else "a dict"/"a list")
    ("G", path, key)     one entry of a mapping or list (same results, or "missing")
    ("K", path)          a mapping's keys, in order (iteration, ``keys()``, ``items()``)
    ("L", path)          a length (and the truth value of a container)
    ("H", path, key)     ``key in mapping``
    ("W", path)          the whole value (``str()``, ``==``, ``tojson``, ...): anything the proxy
                         cannot see into

The reads of one render form a path in a per-template decision tree (``Memo``): each node holds the
operation that the template performs next, its branches the results seen. Looking up a new context
replays the operations on the plain values, following the branches; a leaf reached is the output
the template gave for those values. Because the first differing result leads to a branch not yet
seen, a hit means every value the template would read is the same, hence the same output.

Anything the proxies cannot account for exactly (a mutating method, an identity test, a value of an
unexpected type) marks the render *unsafe*: its output is used but not remembered. A render that
fails is redone on the plain values, so errors are exactly those of an untracked render.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

MISSING: Any = ("missing",)
_DICT = ("dict",)
_LIST = ("list",)
_LEAVES = (str, int, float, bool, type(None))

Op = tuple[Any, ...]


def tag(value: Any) -> Any:
    """A hashable stand-in for a read's result: equal tags, interchangeable values.

    The type is part of it (``1``, ``1.0`` and ``True`` are equal in Python but render apart), and a
    float is compared by its repr (``0.0`` and ``-0.0`` are equal but render apart)."""
    t = type(value)
    if t is str:
        return value  # the common case; no other tag is a str
    if t is dict:
        return _DICT
    if t is list:
        return _LIST
    if t is float:
        return (float, repr(value))
    if t in _LEAVES:
        return (t, value)
    raise Unsafe(f"a value of type {t.__name__}")


def freeze(value: Any) -> Any:
    """The whole of a JSON-like value as a hashable (order of mappings kept)."""
    t = type(value)
    if t is dict:
        return (_DICT, tuple((tag(k), freeze(v)) for k, v in value.items()))
    if t is list:
        return (_LIST, tuple(freeze(v) for v in value))
    return tag(value)


class Unsafe(Exception):
    """A read the proxies cannot record exactly: the render's output is not remembered."""


class Recorder:
    """The reads of one render, in order (each operation once)."""

    __slots__ = ("reads", "roots", "seen", "unsafe")

    def __init__(self, roots: Mapping[str, Any]) -> None:
        self.reads: list[tuple[Op, Any]] = []
        self.seen: set[Op] = set()
        self.unsafe = False
        self.roots = roots
        """Top-level name -> the object the template's context holds (a proxy or a leaf)."""

    def record(self, op: Op, result: Any) -> None:
        if op not in self.seen:
            self.seen.add(op)
            self.reads.append((op, result))

    def top(self, name: str, value: Any) -> None:
        """A template resolved a top-level name to ``value`` (only context values count)."""
        held = self.roots.get(name, MISSING)
        if held is value:
            real = value._gen_value if isinstance(value, Tracked) else value
            try:
                self.record(("T", name), tag(real))
            except Unsafe:
                self.unsafe = True

    def whole(self, proxy: Tracked) -> Any:
        try:
            self.record(("W", proxy._gen_path), freeze(proxy._gen_value))
        except Unsafe:
            self.unsafe = True
        return proxy._gen_value


class Tracked:
    """Base of the proxies: the real value, its path from the root and the recorder."""

    __slots__ = ("_gen_path", "_gen_rec", "_gen_value")
    __hash__ = None  # type: ignore[assignment]  # as unhashable as the dict or list it stands for

    _gen_value: Any
    _gen_path: tuple[Any, ...]
    _gen_rec: Recorder

    def __init__(self, value: Any, path: tuple[Any, ...], rec: Recorder) -> None:
        self._gen_value = value
        self._gen_path = path
        self._gen_rec = rec

    def _gen_child(self, key: Any, value: Any) -> Any:
        """Record reading ``key`` (giving ``value``) and return it, wrapped if a container."""
        t = type(value)
        path = self._gen_path
        rec = self._gen_rec
        if t is dict:
            rec.record(("G", path, key), _DICT)
            return TrackedDict(value, (*path, key), rec)
        if t is list:
            rec.record(("G", path, key), _LIST)
            return TrackedList(value, (*path, key), rec)
        try:
            rec.record(("G", path, key), tag(value))
        except Unsafe:
            rec.unsafe = True
        return value

    def _gen_whole(self) -> Any:
        return self._gen_rec.whole(self)

    def __str__(self) -> str:
        return str(self._gen_whole())

    def __repr__(self) -> str:
        return repr(self._gen_whole())

    def __format__(self, spec: str) -> str:
        return format(self._gen_whole(), spec)

    def __eq__(self, other: object) -> bool:
        return bool(self._gen_whole() == unwrap(other))

    def __ne__(self, other: object) -> bool:
        return bool(self._gen_whole() != unwrap(other))

    def __lt__(self, other: Any) -> bool:
        return bool(self._gen_whole() < unwrap(other))

    def __le__(self, other: Any) -> bool:
        return bool(self._gen_whole() <= unwrap(other))

    def __gt__(self, other: Any) -> bool:
        return bool(self._gen_whole() > unwrap(other))

    def __ge__(self, other: Any) -> bool:
        return bool(self._gen_whole() >= unwrap(other))

    def __add__(self, other: Any) -> Any:
        return self._gen_whole() + unwrap(other)

    def __radd__(self, other: Any) -> Any:
        return unwrap(other) + self._gen_whole()

    def __mul__(self, other: Any) -> Any:
        return self._gen_whole() * unwrap(other)

    def __rmul__(self, other: Any) -> Any:
        return unwrap(other) * self._gen_whole()

    def __or__(self, other: Any) -> Any:
        return self._gen_whole() | unwrap(other)

    def __ror__(self, other: Any) -> Any:
        return unwrap(other) | self._gen_whole()

    def __copy__(self) -> Any:
        return unwrap(self)

    def __deepcopy__(self, memo: Any) -> Any:
        return unwrap(self)

    def __len__(self) -> int:
        n = len(self._gen_value)
        self._gen_rec.record(("L", self._gen_path), n)
        return n

    def _gen_attribute(self, name: str) -> Any:
        """``obj.name`` where the real value has such an attribute (a method): the proxy's own
        tracked version, or the real one with the render marked unsafe."""
        if name in self._SAFE:
            return getattr(self, name)
        self._gen_rec.unsafe = True
        return getattr(self._gen_value, name)

    _SAFE: frozenset[str] = frozenset()


class TrackedDict(Tracked, Mapping[Any, Any]):
    """A read-only view of a dict that records what is read."""

    __slots__ = ()
    _SAFE = frozenset({"get", "keys", "items", "values"})

    def _gen_keys(self) -> None:
        try:
            self._gen_rec.record(("K", self._gen_path), tuple(map(tag, self._gen_value)))
        except Unsafe:
            self._gen_rec.unsafe = True

    def __getitem__(self, key: Any) -> Any:
        value = self._gen_value.get(key, MISSING)
        if value is MISSING:
            self._gen_rec.record(("G", self._gen_path, key), MISSING)
            raise KeyError(key)
        return self._gen_child(key, value)

    def get(self, key: Any, default: Any = None) -> Any:
        value = self._gen_value.get(key, MISSING)
        if value is MISSING:
            self._gen_rec.record(("G", self._gen_path, key), MISSING)
            return default
        return self._gen_child(key, value)

    def __contains__(self, key: object) -> bool:
        found = key in self._gen_value
        try:
            self._gen_rec.record(("H", self._gen_path, key), found)
        except TypeError:  # an unhashable key: the test above has raised already for a dict
            self._gen_rec.unsafe = True
        return found

    def __iter__(self) -> Iterator[Any]:
        self._gen_keys()
        return iter(list(self._gen_value))

    def keys(self) -> Any:
        self._gen_keys()
        return self._gen_value.keys()

    def items(self) -> Any:
        self._gen_keys()
        return _Listing(
            [(k, self._gen_child(k, v)) for k, v in self._gen_value.items()], self, True
        )

    def values(self) -> Any:
        self._gen_keys()
        return _Listing([self._gen_child(k, v) for k, v in self._gen_value.items()], self, False)


class _Listing(list[Any]):
    """``items()``/``values()`` of a proxy: a list, but printed as the real view would be."""

    def __init__(self, items: list[Any], owner: TrackedDict, pairs: bool) -> None:
        super().__init__(items)
        self.owner = owner
        self.pairs = pairs

    def __repr__(self) -> str:
        real = self.owner._gen_whole()
        return repr(real.items() if self.pairs else real.values())

    __str__ = __repr__


class TrackedList(Tracked, Sequence[Any]):
    """A read-only view of a list that records what is read."""

    __slots__ = ()
    _SAFE = frozenset()

    def __getitem__(self, index: Any) -> Any:
        if type(index) is not int:
            return self._gen_whole()[index]  # a slice
        try:
            value = self._gen_value[index]
        except IndexError:
            self._gen_rec.record(("G", self._gen_path, index), MISSING)
            raise
        return self._gen_child(index, value)

    def __iter__(self) -> Iterator[Any]:
        values = self._gen_value
        self._gen_rec.record(("L", self._gen_path), len(values))
        return iter([self._gen_child(i, v) for i, v in enumerate(values)])

    def __reversed__(self) -> Iterator[Any]:
        return iter(list(self)[::-1])

    def __contains__(self, item: object) -> bool:
        return unwrap(item) in self._gen_whole()


def wrap(value: Any, path: tuple[Any, ...], rec: Recorder) -> Any:
    t = type(value)
    if t is dict:
        return TrackedDict(value, path, rec)
    if t is list:
        return TrackedList(value, path, rec)
    return value


def unwrap(value: Any) -> Any:
    """``value`` with every proxy in it (recorded as read whole) replaced by its real value."""
    if isinstance(value, Tracked):
        return value._gen_whole()
    t = type(value)
    if t is dict:
        return {k: unwrap(v) for k, v in value.items()}
    if t is list or t is _Listing:
        return [unwrap(v) for v in value]
    if t is tuple:
        return tuple(unwrap(v) for v in value)
    return value


# ------------------------------------------------------------------------------------------------
# Replaying reads on plain values
# ------------------------------------------------------------------------------------------------


class _Stale(Exception):
    """A path that does not lead where it did (cannot happen after the earlier reads matched)."""


def _at(root: Mapping[str, Any], path: tuple[Any, ...]) -> Any:
    value: Any = root
    try:
        for key in path:
            value = value[key]
    except (KeyError, IndexError, TypeError) as e:
        raise _Stale from e
    return value


def evaluate(root: Mapping[str, Any], op: Op) -> Any:
    """The result ``op`` gives on the plain context ``root`` (as the proxies would record it)."""
    kind = op[0]
    if kind == "G":
        container = _at(root, op[1])
        key = op[2]
        if type(container) is dict:
            value = container.get(key, MISSING)
        else:
            try:
                value = container[key]
            except IndexError:
                return MISSING
        return MISSING if value is MISSING else tag(value)
    if kind == "T":
        return tag(root[op[1]]) if op[1] in root else MISSING
    if kind == "K":
        return tuple(map(tag, _at(root, op[1])))
    if kind == "L":
        return len(_at(root, op[1]))
    if kind == "H":
        return op[2] in _at(root, op[1])
    if kind == "W":
        return freeze(_at(root, op[1]))
    raise AssertionError(f"unknown read {kind!r}")


class _Node:
    __slots__ = ("next", "op", "out")

    def __init__(self) -> None:
        self.op: Op | None = None
        self.next: dict[Any, _Node] = {}
        self.out: Any = None


class Memo:
    """Outputs of one template (for one set of top-level names) by the values it read."""

    __slots__ = ("_root", "size")

    def __init__(self) -> None:
        self._root = _Node()
        self.size = 0

    def lookup(self, root: Mapping[str, Any]) -> Any:
        """The output remembered for a render whose reads give the same results on ``root``, or
        None."""
        node = self._root
        try:
            while node.op is not None:
                found = node.next.get(evaluate(root, node.op))
                if found is None:
                    return None
                node = found
        except (_Stale, Unsafe, TypeError):
            return None
        return node.out

    def add(self, reads: list[tuple[Op, Any]], out: Any) -> None:
        """Remember ``out`` as the output of a render that made ``reads``."""
        node = self._root
        for op, result in reads:
            if node.op is None:
                if node.out is not None:
                    return  # a render that read more after the same results: not deterministic
                node.op = op
            elif node.op != op:
                return  # likewise: keep what is there
            node = node.next.setdefault(result, _Node())
        if node.op is None and node.out is None:
            node.out = out
            self.size += 1
