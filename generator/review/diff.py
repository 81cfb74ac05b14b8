"""Semantic diff of compiled trees: which sites, which objects and which fields change.

``run`` reads as the list of steps: resolve the base commit, list ``compiled/`` at it, produce what
the current inventory compiles to (in memory; for sites the compile cache knows are current, the
files on disk, by the blob ids git's index has for them), read only the blobs whose ids differ, and
``compare`` the two.

``compare`` is pure: two trees (``site/relative/path`` -> bytes) in, a ``Diff`` out. Files are
matched by the identity of the Kubernetes object they hold (so a moved file is a change, not an
add and a remove); YAML and JSON files that are not objects (n9e rules, ...) are compared as data;
anything else line by line. Lists of named items (containers, ports, env, volumes, rules) are
matched by their key field, other lists by position. The values of a Secret (any kind ending in
``Secret``) never leave this module: only which fields changed.
"""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from generator.core import errors, layout, objects, yamlio
from generator.core.objects import ObjectId
from generator.deliver.git import tree

if TYPE_CHECKING:
    from generator.build.pipeline import SiteOutput

DERIVED = layout.DERIVED
"""Files of a site that only restate other files (hashes, the image list); counted, not detailed."""

LIST_KEYS = ("name", "alert", "record", "mountPath", "containerPort", "port", "ip", "host", "key")
"""Fields that name the items of a list, tried in order: the first one every item has, uniquely,
wins."""

_VISIBLE_SECRET_FIELDS = (
    ("apiVersion",),
    ("kind",),
    ("type",),
    ("spec", "type"),
    ("metadata", "name"),
    ("metadata", "namespace"),
    ("metadata", "labels"),
)
"""What a reviewer may see of a Secret-like object; every other value is hidden."""


# ------------------------------------------------------------------------------------------------
# The pipeline
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    """What to compare."""

    root: Path
    """Project root (inside a git repository)."""
    base: str | None = None
    """The commit to compare with; None: the merge base of HEAD with the main branch, else HEAD."""
    targets: tuple[str, ...] = ()
    """Only these sites; empty means every target (and sites removed from the inventory)."""
    worktree: bool = False
    """Take compiled/ as it is on disk instead of compiling (after ``gen compile --check``
    passed)."""
    jobs: int = 0
    """Worker processes for the compile; 0 picks the number of CPUs."""
    use_cache: bool = True
    """Read sites the compile cache knows are up to date from compiled/ instead of compiling
    them."""
    progress: Callable[[int, int], None] | None = None
    """Called with (done, total) as sites finish compiling."""


@dataclass(frozen=True)
class Result:
    """A diff and where its two sides came from."""

    base: tree.Ref
    diff: Diff
    source: str
    """What the new side is: the inventory compiled in memory, or compiled/ on disk."""
    compiled: int
    """Sites compiled in memory for this diff."""
    reused: int
    """Sites read from compiled/ on disk (up to date per the compile cache, or ``worktree``)."""
    warnings: tuple[str, ...] = ()


def run(options: Options) -> Result:
    """Compare what the inventory compiles to (or compiled/ on disk) with compiled/ at the base
    commit."""
    root = options.root
    base = tree.resolve(root, options.base) if options.base else tree.default_base(root)
    committed = tree.listing(root, base)
    current = _worktree(root, options.targets) if options.worktree else _compiled(options)
    if options.targets:
        committed = {p: oid for p, oid in committed.items() if _split(p)[0] in current.sites}
    old, new = _differing(root, committed, current)
    sites = set(current.sites) | {_split(p)[0] for p in committed}
    source = (
        "compiled/ in the working tree" if options.worktree else "the inventory in the working tree"
    )
    return Result(
        base, compare(old, new, sites), source, current.compiled, current.reused, current.warnings
    )


@dataclass(frozen=True)
class _Current:
    """The new side: files compiled in memory, and the blob ids of files taken from disk."""

    files: dict[str, bytes]
    blobs: dict[str, str]
    sites: tuple[str, ...]
    compiled: int = 0
    reused: int = 0
    warnings: tuple[str, ...] = ()


def _differing(
    root: Path, committed: dict[str, str], current: _Current
) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """Only the files whose blob ids differ, with their content on each side (one ``cat-file`` for
    the old side; the new side is in memory or, for the few files on disk that differ, read)."""
    fmt = tree.object_format(root)
    now = {**current.blobs, **{p: tree.blob_id(data, fmt) for p, data in current.files.items()}}
    differing = {p for p in committed.keys() | now.keys() if committed.get(p) != now.get(p)}
    blobs = tree.read_blobs(root, [committed[p] for p in differing if p in committed])
    old = {p: blobs[committed[p]] for p in differing if p in committed}
    new = {
        p: current.files[p] if p in current.files else (root / "compiled" / p).read_bytes()
        for p in differing
        if p in now
    }
    return old, new


def _compiled(options: Options) -> _Current:
    """What the inventory compiles to. Sites the compile cache knows are current are taken from
    compiled/; when that is every site, the compiler (jinja2, schemas, validators) is not even
    loaded."""
    names = _target_names(options.root, options.targets)
    fresh: list[str] = []
    if options.use_cache:
        from generator.build import cache

        state, hasher = (
            cache.load(options.root, cache.tool_fingerprint()),
            cache.Hasher(options.root),
        )
        fresh = [n for n in names if cache.fresh(state, n, hasher, options.root / "compiled")]
    dirty = [n for n in names if n not in fresh]
    outputs = _compile(options, dirty) if dirty else []
    blobs = _on_disk(options.root, set(fresh))
    files = {f"{o.name}/{rel}": data for o in outputs for rel, data in o.files.items()}
    warnings = tuple(w for o in outputs for w in o.warnings)
    return _Current(files, blobs, tuple(names), len(dirty), len(fresh), warnings)


def _target_names(root: Path, wanted: tuple[str, ...]) -> list[str]:
    """Every target, or the wanted ones (an unknown name is never fresh: ``_compile`` reports
    it)."""
    from generator.build import inventory

    known = list(inventory.Inventory(root, inventory.settings_for(root)).target_files())
    return sorted(set(wanted)) if wanted else known


def _compile(options: Options, names: list[str]) -> list[SiteOutput]:
    """Compile sites in memory (every problem of every site raised at once)."""
    from generator.build import pipeline

    ctx = pipeline.Context.create(options.root)
    pipeline.select(ctx.inv, options.targets)
    return pipeline.compile_sites(ctx, names, options.jobs, options.progress)


def _worktree(root: Path, targets: tuple[str, ...]) -> _Current:
    """compiled/ as it is on disk (all sites, or the named ones)."""
    compiled_dir = root / "compiled"
    present = (
        sorted(
            e.name for e in os.scandir(compiled_dir) if e.is_dir() and not e.name.startswith(".")
        )
        if compiled_dir.is_dir()
        else []
    )
    unknown = [t for t in targets if t not in present]
    if unknown:
        raise errors.GenError(
            f"no compiled/{unknown[0]}/ in {root}; sites: {', '.join(present) or 'none'}"
        )
    names = sorted(set(targets)) if targets else present
    return _Current(
        {}, _on_disk(root, set(names), top_level=not targets), tuple(names), 0, len(names)
    )


def _on_disk(root: Path, sites: set[str], top_level: bool = False) -> dict[str, str]:
    """Blob ids of the sites' files under compiled/ (and of files directly in it, with
    ``top_level``)."""
    if not sites and not top_level:
        return {}
    return {
        path: oid
        for path, oid in tree.worktree(root).items()
        if _split(path)[0] in sites or (top_level and not _split(path)[0])
    }


# ------------------------------------------------------------------------------------------------
# The diff
# ------------------------------------------------------------------------------------------------


class Op(str, Enum):
    """What happened to a site, an object or a field."""

    ADDED = "added"
    REMOVED = "removed"
    CHANGED = "changed"
    REORDERED = "reordered"
    """A list of named items kept its items but not their order (old/new hold the names)."""


@dataclass(frozen=True)
class Item:
    """A list item picked by its key field: ``containers[name=gatekeeper]``."""

    key: str
    value: str | int

    def __str__(self) -> str:
        return f"[{self.key}={self.value}]"


Segment = str | int | Item


@dataclass(frozen=True)
class FieldChange:
    """One field that differs. ``hidden``: a secret's value; ``old``/``new`` are then None."""

    path: tuple[Segment, ...]
    op: Op
    old: Any = None
    new: Any = None
    hidden: bool = False

    @property
    def where(self) -> str:
        """``spec.template.spec.containers[name=gatekeeper].image``; ``.`` for the whole
        document."""
        return format_path(self.path)


@dataclass(frozen=True)
class Entry:
    """One object or file of a site that differs."""

    op: Op
    name: str
    """``StatefulSet project/gatekeeper`` for an object, the file's path otherwise."""
    path: str
    """The file in the site (the new one when it moved)."""
    object: ObjectId | None = None
    secret: bool = False
    fields: tuple[FieldChange, ...] = ()
    lines: tuple[tuple[str, str], ...] = ()
    """For text files: ``("-", line)`` and ``("+", line)`` in file order."""
    old_path: str = ""
    """Where the object was before, when it moved to another file."""


@dataclass(frozen=True)
class SiteDiff:
    """Everything that differs in one site."""

    site: str
    op: Op
    entries: tuple[Entry, ...]
    derived: tuple[str, ...] = ()
    """Derived files (``DERIVED``) that differ; not detailed."""

    def count(self, op: Op) -> int:
        """How many of the site's entries were added, removed or changed."""
        return sum(1 for e in self.entries if e.op is op)


@dataclass(frozen=True)
class Diff:
    """Every site that differs, and the names of those that do not."""

    sites: tuple[SiteDiff, ...]
    unchanged: tuple[str, ...] = ()

    @property
    def differs(self) -> bool:
        return bool(self.sites)


def compare(old: Mapping[str, bytes], new: Mapping[str, bytes], sites: Iterable[str] = ()) -> Diff:
    """The diff of two trees keyed ``site/relative/path``; ``sites`` also names sites that may be
    equal."""
    by_site: dict[str, tuple[dict[str, bytes], dict[str, bytes]]] = {
        name: ({}, {}) for name in sites
    }
    for side, files in enumerate((old, new)):
        for path, data in files.items():
            site, rel = _split(path)
            by_site.setdefault(site, ({}, {}))[side][rel] = data
    changed: list[SiteDiff] = []
    unchanged: list[str] = []
    for site, (before, after) in sorted(by_site.items()):
        diff = compare_site(site, before, after)
        if diff:
            changed.append(diff)
        else:
            unchanged.append(site)
    return Diff(tuple(changed), tuple(unchanged))


def compare_site(site: str, old: Mapping[str, bytes], new: Mapping[str, bytes]) -> SiteDiff | None:
    """What differs in one site's files (relative paths); None if nothing does."""
    differing = sorted(p for p in old.keys() | new.keys() if old.get(p) != new.get(p))
    if not differing:
        return None
    op = Op.ADDED if not old else Op.REMOVED if not new else Op.CHANGED
    derived = tuple(p for p in differing if p in DERIVED)
    rest = [p for p in differing if p not in DERIVED]
    before: list[_Unit] = []
    after: list[_Unit] = []
    for path in rest:
        a, b = (_unit(path, side[path]) if path in side else None for side in (old, new))
        key = _items_key(a, b)
        before += _items(a, key)
        after += _items(b, key)
    return SiteDiff(site, op, tuple(_entries(before, after)), derived)


def _split(path: str) -> tuple[str, str]:
    site, _, rel = path.partition("/")
    return (site, rel) if rel else ("", site)


# ------------------------------------------------------------------------------------------------
# Files as units: an object, a data document or text
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Unit:
    path: str
    text: str
    data: Any = None
    object: ObjectId | None = None
    parsed: bool = False
    item: Item | None = None
    """Set when the unit is one named item of a file that is a list (an n9e rule, channel, ...)."""

    @property
    def key(self) -> ObjectId | str:
        return self.object or self.name

    @property
    def name(self) -> str:
        if self.object:
            return str(self.object)
        return f"{self.path} {self.item}" if self.item else self.path


def _unit(path: str, content: bytes) -> _Unit:
    """Parse a file: a Kubernetes object, a YAML/JSON document, or (failing both) text."""
    text = content.decode("utf-8", errors="replace")
    try:
        data: Any
        if path.endswith((".yaml", ".yml")):
            docs = yamlio.load_rendered(text, path)
            data = docs[0] if len(docs) == 1 else docs
        elif path.endswith(".json"):
            data = json.loads(text)
        else:
            return _Unit(path, text)
    except (errors.GenError, ValueError):
        return _Unit(path, text)
    oid = objects.identity(data) if _is_object(data) else None
    return _Unit(path, text, data, oid, True)


def _items_key(a: _Unit | None, b: _Unit | None) -> str | None:
    """The key naming the items, when the file is (on both sides) a list of named items."""
    units = [u for u in (a, b) if u is not None]
    if not all(u.parsed and u.object is None and isinstance(u.data, list) for u in units):
        return None
    return _list_key(a.data if a else [], b.data if b else [])


def _items(unit: _Unit | None, key: str | None) -> list[_Unit]:
    """A file as units: itself, or one unit per named item."""
    if unit is None:
        return []
    if key is None:
        return [unit]
    return [_Unit(unit.path, "", item, None, True, Item(key, item[key])) for item in unit.data]


def _is_object(data: Any) -> bool:
    meta = data.get("metadata") if isinstance(data, dict) else None
    return (
        isinstance(meta, dict)
        and isinstance(meta.get("name"), str)
        and isinstance(data.get("apiVersion"), str)
        and isinstance(data.get("kind"), str)
    )


def _entries(before: list[_Unit], after: list[_Unit]) -> list[Entry]:
    """Pair units by identity (objects) or path; leftovers at one path are a change too."""
    old, new = _by_key(before), _by_key(after)
    pairs = [(old[k], new[k]) for k in old if k in new]
    gone = [u for k, u in old.items() if k not in new]
    came = {u.path: u for k, u in new.items() if k not in old and u.item is None}
    came_items = [u for k, u in new.items() if k not in old and u.item is not None]
    out = [_whole(Op.ADDED, unit) for unit in came_items]
    for unit in gone:
        if unit.item is None and unit.path in came:
            pairs.append((unit, came.pop(unit.path)))
        else:
            out.append(_whole(Op.REMOVED, unit))
    out += [_whole(Op.ADDED, unit) for unit in came.values()]
    out += [_changed(a, b) for a, b in pairs]
    return sorted(out, key=lambda e: (e.object is None, e.path, e.name))  # objects first


def _by_key(units: list[_Unit]) -> dict[ObjectId | str, _Unit]:
    """Units by identity; a second file holding the same object (a broken tree) keeps its path as
    key."""
    out: dict[ObjectId | str, _Unit] = {}
    for unit in units:
        out[unit.key if unit.key not in out else unit.path] = unit
    return out


def _whole(op: Op, unit: _Unit) -> Entry:
    return Entry(op, unit.name, unit.path, unit.object, _is_secret(unit))


def _changed(a: _Unit, b: _Unit) -> Entry:
    """A change in fields (no fields: same data, other formatting), or in lines for text."""
    secret = _is_secret(a) or _is_secret(b)
    moved = a.path if a.path != b.path else ""
    if a.parsed and b.parsed:
        fields = changes(a.data, b.data)
        if secret:
            fields = [_mask(f) for f in fields]
        return Entry(Op.CHANGED, b.name, b.path, b.object, secret, tuple(fields), old_path=moved)
    lines = () if secret else tuple(line_changes(a.text, b.text))
    return Entry(Op.CHANGED, b.name, b.path, b.object, secret, lines=lines, old_path=moved)


def _is_secret(unit: _Unit) -> bool:
    """A kind ending in Secret; for a file that does not parse, a name saying ``secret`` (as
    ``secret-<name>.yaml`` does), so a broken file cannot leak its values either."""
    if unit.object is not None:
        return unit.object.kind.endswith("Secret")
    return not unit.parsed and "secret" in unit.path.rpartition("/")[2].lower()


def _mask(change: FieldChange) -> FieldChange:
    """A secret's field: its path stays (key names are not secret), its values go."""
    if any(change.path[: len(visible)] == visible for visible in _VISIBLE_SECRET_FIELDS):
        return change
    return FieldChange(change.path, change.op, hidden=True)


# ------------------------------------------------------------------------------------------------
# Field-level changes
# ------------------------------------------------------------------------------------------------


def changes(old: Any, new: Any) -> list[FieldChange]:
    """Every field that differs between two JSON-like values, in document order."""
    out: list[FieldChange] = []
    _walk(old, new, (), out)
    return out


def _walk(old: Any, new: Any, path: tuple[Segment, ...], out: list[FieldChange]) -> None:
    if type(old) is type(new) and old == new:
        return
    if isinstance(old, dict) and isinstance(new, dict):
        _walk_dict(old, new, path, out)
    elif isinstance(old, list) and isinstance(new, list):
        key = _list_key(old, new)
        if key:
            _walk_keyed(old, new, key, path, out)
        elif all(not isinstance(v, (dict, list)) for v in (*old, *new)):
            _walk_scalars(old, new, path, out)
        else:
            _walk_indexed(old, new, path, out)
    else:
        out.append(FieldChange(path, Op.CHANGED, old, new))


def _walk_dict(
    old: dict[str, Any], new: dict[str, Any], path: tuple[Segment, ...], out: list[FieldChange]
) -> None:
    for key, value in old.items():
        if key in new:
            _walk(value, new[key], (*path, key), out)
        else:
            out.append(FieldChange((*path, key), Op.REMOVED, old=value))
    out += [
        FieldChange((*path, key), Op.ADDED, new=value)
        for key, value in new.items()
        if key not in old
    ]


def _list_key(old: list[Any], new: list[Any]) -> str | None:
    """The field naming every item of both lists uniquely, if there is one."""
    items = [*old, *new]
    if not items or not all(isinstance(v, dict) for v in items):
        return None
    for key in LIST_KEYS:
        if all(_is_name(v.get(key)) for v in items) and all(
            len({v[key] for v in side}) == len(side) for side in (old, new)
        ):
            return key
    return None


def _is_name(value: Any) -> bool:
    return isinstance(value, (str, int)) and not isinstance(value, bool)


def _walk_keyed(
    old: list[Any], new: list[Any], key: str, path: tuple[Segment, ...], out: list[FieldChange]
) -> None:
    old_by = {v[key]: v for v in old}
    new_by = {v[key]: v for v in new}
    for name, value in old_by.items():
        if name in new_by:
            _walk(value, new_by[name], (*path, Item(key, name)), out)
        else:
            out.append(FieldChange((*path, Item(key, name)), Op.REMOVED, old=value))
    out += [
        FieldChange((*path, Item(key, name)), Op.ADDED, new=value)
        for name, value in new_by.items()
        if name not in old_by
    ]
    kept_old = [n for n in old_by if n in new_by]
    kept_new = [n for n in new_by if n in old_by]
    if kept_old != kept_new:
        out.append(FieldChange(path, Op.REORDERED, kept_old, kept_new))


def _walk_scalars(
    old: list[Any], new: list[Any], path: tuple[Segment, ...], out: list[FieldChange]
) -> None:
    """Scalar lists (args, images, addresses) aligned like lines, so one insertion is one change."""
    matcher = difflib.SequenceMatcher(
        a=[_hashable(v) for v in old], b=[_hashable(v) for v in new], autojunk=False
    )
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        if tag == "replace" and i2 - i1 == j2 - j1:
            out += [
                FieldChange((*path, j1 + k), Op.CHANGED, old[i1 + k], new[j1 + k])
                for k in range(i2 - i1)
            ]
            continue
        out += [FieldChange((*path, i), Op.REMOVED, old=old[i]) for i in range(i1, i2)]
        out += [FieldChange((*path, j), Op.ADDED, new=new[j]) for j in range(j1, j2)]


def _hashable(value: Any) -> tuple[str, Any]:
    return (type(value).__name__, value)


def _walk_indexed(
    old: list[Any], new: list[Any], path: tuple[Segment, ...], out: list[FieldChange]
) -> None:
    for i in range(min(len(old), len(new))):
        _walk(old[i], new[i], (*path, i), out)
    out += [FieldChange((*path, i), Op.REMOVED, old=old[i]) for i in range(len(new), len(old))]
    out += [FieldChange((*path, i), Op.ADDED, new=new[i]) for i in range(len(old), len(new))]


def line_changes(old: str, new: str) -> list[tuple[str, str]]:
    """``("-", line)`` / ``("+", line)`` for the lines that differ, in file order."""
    a, b = old.splitlines(), new.splitlines()
    out: list[tuple[str, str]] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if tag != "equal":
            out += [("-", line) for line in a[i1:i2]]
            out += [("+", line) for line in b[j1:j2]]
    return out


def format_path(path: Iterable[Segment]) -> str:
    """A field path as reviewers read it: ``metadata.labels['app.kubernetes.io/name']``,
    ``ports[0]``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, Item):
            out += str(part)
        elif part and all(c.isalnum() or c in "_-" for c in part):
            out += f".{part}" if out else part
        else:
            out += "['" + part.replace("\\", "\\\\").replace("'", "\\'") + "']"
    return out or "."
