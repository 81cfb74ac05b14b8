"""inventory/ -> merged, resolved, located parameters per target, with Kapitan's (reclass) semantics.

- ``inventory/targets/<name>.yml``: one target per site, ``classes:`` and ``parameters:``.
- ``inventory/classes/a/b.yml`` or ``a/b/init.yml`` is class ``a.b``; ``.c`` inside it is
  relative to the class's directory (each further dot goes one level up).
- Classes apply in order, depth first, each at most once, the target last.
- Dicts merge, lists extend, scalars replace; ``~key`` replaces instead of merging; ``=key`` is a
  constant that later classes cannot change (nor replace a mapping holding it): an error, as with
  reclass's default ``strict_constant_parameters``; null replaces and is replaced by anything.
- ``${a:b:c}`` references resolve after all merging: a whole value of any type, or text inside a
  string; references may nest (``${a:${b}}``); ``\\${`` is a literal ``${`` and ``\\\\${`` a
  backslash before a reference.
- ``inventory/reclass-config.yml`` may set ``ignore_class_notfound`` (and
  ``ignore_class_notfound_regexp``), as in reclass.

Every error names the file, line and key path. Nothing here touches anything but inventory/.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import pickle
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from generator.core import errors
from generator.core.fsutil import write_atomic
from generator.core.jsonpath import format_path
from generator.core.location import Location
from generator.core.sourcemap import LocTree, nearest, subtree
from generator.build.inventory.yamlsrc import Document, load_file

Path_ = tuple[str | int, ...]

_TOP_LEVEL_KEYS = {"classes", "parameters", "applications", "exports"}
_TARGET_SUFFIXES = (".yml", ".yaml")


@dataclass(frozen=True)
class Settings:
    """How classes are found; read from ``inventory/reclass-config.yml`` by ``settings_for``."""

    ignore_class_notfound: bool = False
    """A missing class is skipped instead of being an error (reclass's option of the same name)."""
    ignore_class_notfound_regexp: tuple[str, ...] = (".*",)
    """With ``ignore_class_notfound``, only class names matching one of these are skipped."""


@dataclass(frozen=True)
class Target:
    """One target's merged parameters, references resolved, with where each value was set."""

    name: str
    file: str
    parameters: dict[str, Any]
    locations: LocTree
    classes: tuple[str, ...]
    """Classes in the order they were applied."""
    inputs: tuple[str, ...]
    """Files read (relative to the root): the target, then its classes, config if present."""
    probes: tuple[str, ...]
    """Paths looked for and not found: creating one of them may change this target."""

    def location(self, path: Path_) -> Location | None:
        """Where the value at ``path`` (or its nearest known ancestor) was set."""
        return nearest(self.locations, path)


@dataclass
class Inventory:
    """The inventory of one project root; parses each file once and reuses it across targets."""

    root: Path
    settings: Settings = field(default_factory=Settings)
    parse_cache: tuple[Path, str] | None = None
    """(directory, salt): keep parsed files there, keyed by path, content and salt (the tool's version)."""
    _docs: dict[str, Document] = field(default_factory=dict, repr=False)
    _targets: dict[str, Path] | None = field(default=None, repr=False)

    @property
    def targets_dir(self) -> Path:
        return self.root / "inventory" / "targets"

    @property
    def classes_dir(self) -> Path:
        return self.root / "inventory" / "classes"

    def target_files(self) -> dict[str, Path]:
        """Every target name and its file, sorted by name; two files with one name are an error."""
        if self._targets is None:
            self._targets = self._find_targets()
        return self._targets

    def _find_targets(self) -> dict[str, Path]:
        found: dict[str, Path] = {}
        if not self.targets_dir.is_dir():
            raise errors.located(Location(self._rel(self.targets_dir)), "no inventory/targets directory here; "
                                 "run gen in the project root or pass --root")
        for path in sorted(self.targets_dir.rglob("*")):
            if path.suffix not in _TARGET_SUFFIXES or not path.is_file():
                continue
            name = path.stem
            if name in found:
                raise errors.located(Location(self._rel(path)),
                                     f"target {name!r} is also defined in {self._rel(found[name])}; rename one")
            found[name] = path
        return dict(sorted(found.items()))

    def target(self, name: str) -> Target:
        """Merge and resolve one target's parameters."""
        files = self.target_files()
        if name not in files:
            known = ", ".join(files) or "none"
            raise errors.GenError(f"unknown target {name!r}; targets in {self._rel(self.targets_dir)}: {known}")
        return _Merger(self, name, files[name]).run()

    def document(self, path: Path) -> Document:
        """The parsed file at ``path``, parsed once per Inventory."""
        rel = self._rel(path)
        doc = self._docs.get(rel)
        if doc is None:
            doc = self._parse(path, rel)
            _check_top_level(doc)
            self._docs[rel] = doc
        return doc

    def _parse(self, path: Path, rel: str) -> Document:
        """Parse a file, or take it from the parse cache (ruamel takes ~10 ms a file; this ~0.1 ms).

        The cache lives in the project's own .gen-cache/ (as trusted as the checkout); a missing or
        unreadable entry is simply parsed again.
        """
        if self.parse_cache is None:
            return load_file(path, rel)
        directory, salt = self.parse_cache
        try:
            key = hashlib.sha256(f"{salt}\0{rel}\0".encode() + path.read_bytes()).hexdigest()
        except OSError:
            return load_file(path, rel)  # raises the located error
        try:
            with open(directory / key, "rb") as f:
                doc = pickle.load(f)
            if isinstance(doc, Document):
                return doc
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ValueError):
            pass
        doc = load_file(path, rel)
        with contextlib.suppress(OSError):
            write_atomic(directory / key, pickle.dumps(doc, protocol=pickle.HIGHEST_PROTOCOL))
        return doc

    def find_class(self, name: str, where: Location | None = None) -> tuple[Path | None, list[str]]:
        """The file of class ``name`` and the candidate paths that were probed; ``where`` includes it."""
        base = self.classes_dir.joinpath(*name.split("."))
        candidates = [base.with_name(base.name + s) for s in _TARGET_SUFFIXES]
        candidates += [base / ("init" + s) for s in _TARGET_SUFFIXES]
        existing = [c for c in candidates if c.is_file()]
        if len(existing) > 1:
            shown = " and ".join(self._rel(c) for c in existing)
            raise errors.located(where, f"class {name!r} is ambiguous: both {shown} exist; keep one")
        return (existing[0] if existing else None), [self._rel(c) for c in candidates if not c.is_file()]

    def _rel(self, path: Path) -> str:
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return str(path)


def settings_for(root: Path) -> Settings:
    """Read ``inventory/reclass-config.yml`` if it exists; defaults otherwise."""
    path = root / "inventory" / "reclass-config.yml"
    if not path.is_file():
        return Settings()
    doc = load_file(path, "inventory/reclass-config.yml")
    data = doc.data or {}
    if not isinstance(data, dict):
        raise errors.located(doc.locs.here, "reclass-config.yml must be a mapping")
    flag = data.get("ignore_class_notfound", False)
    if not isinstance(flag, bool):
        raise errors.located(nearest(doc.locs, ["ignore_class_notfound"]), "must be true or false")
    regexp = data.get("ignore_class_notfound_regexp", [".*"])
    if isinstance(regexp, str):
        regexp = [regexp]
    if not isinstance(regexp, list) or not all(isinstance(r, str) for r in regexp):
        raise errors.located(nearest(doc.locs, ["ignore_class_notfound_regexp"]), "must be a list of regexps")
    return Settings(ignore_class_notfound=flag, ignore_class_notfound_regexp=tuple(regexp))


def _check_top_level(doc: Document) -> None:
    if doc.data is None:
        return
    if not isinstance(doc.data, dict):
        raise errors.located(doc.locs.here, "a class or target must be a mapping with classes: and parameters:")
    for key in doc.data:
        if key not in _TOP_LEVEL_KEYS:
            raise errors.located(nearest(doc.locs, [key]),
                                 f"unknown top-level key {key!r}; expected one of {', '.join(sorted(_TOP_LEVEL_KEYS))}")
    classes = doc.data.get("classes")
    if classes is not None and (not isinstance(classes, list) or not all(isinstance(c, str) for c in classes)):
        raise errors.located(nearest(doc.locs, ["classes"]), "classes: must be a list of class names", "$.classes")
    params = doc.data.get("parameters")
    if params is not None and not isinstance(params, dict):
        raise errors.located(nearest(doc.locs, ["parameters"]), "parameters: must be a mapping", "$.parameters")


# --------------------------------------------------------------------------------------------
# Merging


@dataclass
class _Deferred:
    """A merge that must wait for references: layers applied in order once they are resolved."""

    layers: list[tuple[Any, LocTree]]


@dataclass
class _MLoc:
    """Mutable location node used while merging; frozen into a LocTree at the end."""

    here: Location | None
    children: dict[str | int, _MLoc] = field(default_factory=dict)

    def freeze(self) -> LocTree:
        return LocTree(self.here, {k: v.freeze() for k, v in self.children.items()})


def _thaw(tree: LocTree | None, fallback: Location | None) -> _MLoc:
    if tree is None:
        return _MLoc(fallback)
    return _MLoc(tree.here, {k: _thaw(v, v.here) for k, v in tree.children.items()})


def _split_key(raw: str) -> tuple[str, bool, bool]:
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


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "null"
    kind = "str" if isinstance(value, str) else type(value).__name__
    return f"{'an' if kind[0] in 'aeiou' else 'a'} {kind} ({value!r})"


class _Merger:
    """Merges one target: classes depth first, then the target; then resolves references."""

    def __init__(self, inventory: Inventory, name: str, path: Path) -> None:
        self.inv = inventory
        self.name = name
        self.path = path
        self.params: dict[str, Any] = {}
        self.locs = _MLoc(None)
        self.constants: dict[Path_, Location | None] = {}
        self.applied: list[str] = []
        self.seen: set[str] = set()
        self.stack: list[str] = []
        self.inputs: list[str] = []
        self.probes: list[str] = []

    def run(self) -> Target:
        doc = self.inv.document(self.path)
        self.inputs.append(doc.file)
        self.locs.here = Location(doc.file, 1, 1)
        self._reclass_meta(doc)
        self._apply_classes(doc, context="")
        self._apply(doc)
        params = _Resolver(self.params, self.locs, self.constants).run()
        config = self.inv.root / "inventory" / "reclass-config.yml"
        if config.is_file():
            self.inputs.append("inventory/reclass-config.yml")
        else:
            self.probes.append("inventory/reclass-config.yml")
        return Target(self.name, doc.file, params, self.locs.freeze(), tuple(self.applied),
                      tuple(self.inputs), tuple(self.probes))

    def _reclass_meta(self, doc: Document) -> None:
        rel = self.path.relative_to(self.inv.targets_dir).with_suffix("").as_posix()
        parts = rel.split("/")
        meta = {"name": {"full": self.name, "short": self.name, "parts": parts, "path": rel}}
        self.params["_reclass_"] = meta
        self.locs.children["_reclass_"] = _thaw(None, Location(doc.file, 1, 1))

    def _apply_classes(self, doc: Document, context: str) -> None:
        data = doc.data or {}
        classes = data.get("classes") or []
        for index, raw_name in enumerate(classes):
            where = nearest(doc.locs, ["classes", index])
            name = _absolute_class(raw_name, context, where)
            if name in self.stack:
                chain = " -> ".join([*self.stack[self.stack.index(name):], name])
                raise errors.located(where, f"class cycle: {chain}; remove one of these includes")
            if name in self.seen:
                continue
            self.seen.add(name)
            path, probed = self.inv.find_class(name, where)
            self.probes.extend(probed)
            if path is None:
                if self._may_ignore(name):
                    continue
                raise errors.located(where, f"class {name!r} not found: expected "
                                     f"inventory/classes/{name.replace('.', '/')}.yml or .../init.yml "
                                     "(or set ignore_class_notfound in inventory/reclass-config.yml)")
            class_doc = self.inv.document(path)
            self.inputs.append(class_doc.file)
            self.stack.append(name)
            self._apply_classes(class_doc, _class_dir(name, path))
            self.stack.pop()
            self.applied.append(name)
            self._apply(class_doc)

    def _may_ignore(self, name: str) -> bool:
        s = self.inv.settings
        return s.ignore_class_notfound and any(re.fullmatch(p, name) for p in s.ignore_class_notfound_regexp)

    def _apply(self, doc: Document) -> None:
        data = doc.data or {}
        params = data.get("parameters")
        if params:
            self._merge_dict(self.params, self.locs, params, subtree(doc.locs, ["parameters"]), ())

    def _merge_dict(self, acc: dict[str, Any], acc_locs: _MLoc, layer: dict[str, Any],
                    layer_locs: LocTree | None, path: Path_) -> None:
        for raw_key, value in layer.items():
            key, override, constant = _split_key(raw_key)
            sub_locs = layer_locs.child(raw_key) if layer_locs else None
            here = sub_locs.here if sub_locs else None
            kpath = (*path, key)
            _check_constants(self.constants, kpath, here, replacing=key in acc and (override or value is None))
            if constant:
                self.constants[kpath] = here
            if key not in acc or override or acc[key] is None or value is None:
                acc[key], acc_locs.children[key] = self._adopt(value, sub_locs, here, kpath)
                continue
            self._merge_value(acc, acc_locs, key, value, sub_locs, here, kpath)

    def _merge_value(self, acc: dict[str, Any], acc_locs: _MLoc, key: str, value: Any,
                     sub_locs: LocTree | None, here: Location | None, kpath: Path_) -> None:
        old = acc[key]
        old_locs = acc_locs.children.setdefault(key, _MLoc(here))
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
        elif _needs_deferral(old) or _needs_deferral(_template(value)):
            layers = old.layers if isinstance(old, _Deferred) else [(old, old_locs.freeze())]
            new_value, new_locs = self._adopt(value, sub_locs, here, kpath, keep_markers=True)
            layers.append((new_value, new_locs.freeze()))
            acc[key] = _Deferred(layers)
            acc_locs.children[key] = new_locs
        elif isinstance(old, (dict, list)) or isinstance(value, (dict, list)):
            raise errors.located(here, f"cannot merge {_kind(value)} over {_kind(old)} set at {old_locs.here}; "
                                 f"write ~{key} to replace the value instead of merging", format_path(kpath))
        else:
            acc[key], acc_locs.children[key] = self._adopt(value, sub_locs, here, kpath)

    def _adopt(self, value: Any, locs: LocTree | None, here: Location | None, path: Path_,
               keep_markers: bool = False) -> tuple[Any, _MLoc]:
        """A private copy of a layer's value, registering its constants; ``~``/``=`` markers are
        taken off nested keys unless ``keep_markers`` (a layer merged only once references resolve)."""
        node = _MLoc(locs.here if locs and locs.here else here)
        if isinstance(value, dict):
            out: dict[str, Any] = {}
            for raw_key, item in value.items():
                key, _, constant = _split_key(raw_key)
                sub = locs.child(raw_key) if locs else None
                if constant:
                    self.constants[(*path, key)] = sub.here if sub else here
                name = raw_key if keep_markers else key
                out[name], node.children[name] = self._adopt(item, sub, node.here, (*path, key), keep_markers)
            return out, node
        if isinstance(value, list):
            items = []
            for i, item in enumerate(value):
                sub = locs.child(i) if locs else None
                adopted, node.children[i] = self._adopt(item, sub, node.here, (*path, i), keep_markers)
                items.append(adopted)
            return items, node
        return _template(value), node


def _check_constants(constants: dict[Path_, Location | None], kpath: Path_, here: Location | None,
                     replacing: bool) -> None:
    """A value at ``kpath`` may not change a constant there, nor (``replacing``) one below it."""
    if kpath in constants:
        raise errors.located(here, f"cannot change a constant set at {constants[kpath]}; "
                             "remove this value or the = marker there", format_path(kpath))
    if replacing:
        for cpath, where in constants.items():
            if len(cpath) > len(kpath) and cpath[:len(kpath)] == kpath:
                raise errors.located(here, f"cannot replace this value: it holds the constant {format_path(cpath)} "
                                     f"set at {where}; merge into it instead, or remove the = marker there",
                                     format_path(kpath))


def _needs_deferral(value: Any) -> bool:
    return isinstance(value, _Deferred) or (isinstance(value, _Template) and _is_whole_reference(value))


def _absolute_class(raw: str, context: str, where: Location | None) -> str:
    """Resolve ``.name`` / ``..name`` against the including class's directory."""
    if not raw or raw.strip() != raw:
        raise errors.located(where, f"invalid class name {raw!r}")
    if not raw.startswith("."):
        return raw
    dots = len(raw) - len(raw.lstrip("."))
    if dots == len(raw):
        raise errors.located(where, f"invalid class name {raw!r}: a relative name needs a class after the dots")
    parts = context.split(".") if context else []
    up = dots - 1
    if up > len(parts):
        raise errors.located(where, f"relative class {raw!r} goes above inventory/classes")
    base = parts[: len(parts) - up]
    return ".".join([*base, raw[dots:]])


def _class_dir(name: str, path: Path) -> str:
    """The dotted directory that relative names inside class ``name`` are resolved against."""
    if path.stem == "init":
        return name
    return name.rpartition(".")[0]


# --------------------------------------------------------------------------------------------
# References

_REF_OPEN = "${"


def _is_whole_reference(value: str) -> bool:
    if not value.startswith(_REF_OPEN) or not value.endswith("}"):
        return False
    try:
        tokens = _tokenize(value, None, ())
    except errors.GenError:
        return False  # malformed: reported with its location when references are resolved
    return len(tokens) == 1 and isinstance(tokens[0], _Ref)


@dataclass
class _Ref:
    """``${...}``: the key path is itself a token list, so references can nest."""

    parts: list[str | _Ref]


def _tokenize(text: str, where: Location | None, path: Path_) -> list[str | _Ref]:
    """Split a string into literal text and references; ``\\${`` is a literal ``${``, ``\\\\${`` is a
    backslash followed by a reference (as in reclass)."""
    tokens, pos = _parse(text, 0, where, path, nested=False)
    if pos != len(text):
        raise errors.located(where, f"unbalanced '}}' in {text!r}", format_path(path))
    return tokens


def _parse(text: str, pos: int, where: Location | None, path: Path_, nested: bool) -> tuple[list[str | _Ref], int]:
    tokens: list[str | _Ref] = []
    buf: list[str] = []
    while pos < len(text):
        if text.startswith("\\\\${", pos):
            buf.append("\\")
            pos += 2
        elif text.startswith("\\${", pos):
            buf.append("${")
            pos += 3
        elif text.startswith(_REF_OPEN, pos):
            if buf:
                tokens.append("".join(buf))
                buf = []
            inner, pos = _parse(text, pos + 2, where, path, nested=True)
            if pos >= len(text) or text[pos] != "}":
                raise errors.located(where, f"unterminated reference in {text!r}; close it with '}}'",
                                     format_path(path))
            tokens.append(_Ref(inner))
            pos += 1
        elif nested and text[pos] == "}":
            break
        else:
            buf.append(text[pos])
            pos += 1
    if buf:
        tokens.append("".join(buf))
    return tokens, pos


class _Template(str):
    """A string written in an inventory file that holds ``${``: references still to resolve. Values
    that are already resolved (and copies of them) are plain ``str``, so they are never read twice:
    a ``\\${x}`` that became the literal ``${x}`` stays literal wherever it is referenced."""


def _template(value: Any) -> Any:
    return _Template(value) if isinstance(value, str) and "${" in value else value


def _has_markup(value: Any) -> bool:
    return isinstance(value, _Template)


class _Resolver:
    """Resolves every reference in a merged tree in place, detecting cycles."""

    def __init__(self, params: dict[str, Any], locs: _MLoc, constants: dict[Path_, Location | None]) -> None:
        self.root = params
        self.locs = locs
        self.constants = constants
        self.active: list[Path_] = []
        self.done: set[Path_] = set()

    def run(self) -> dict[str, Any]:
        for path in list(self._walk(self.root, ())):
            self._resolve_path(path)
        return self.root

    def _walk(self, node: Any, path: Path_) -> Iterator[Path_]:
        yield path
        if isinstance(node, dict):
            for key, value in node.items():
                yield from self._walk(value, (*path, key))
        elif isinstance(node, list):
            for i, value in enumerate(node):
                yield from self._walk(value, (*path, i))

    def _location(self, path: Path_) -> Location | None:
        node: _MLoc | None = self.locs
        best = node.here if node else None
        for part in path:
            node = node.children.get(part) if node else None
            if node is None:
                break
            best = node.here or best
        return best

    def _loc_node(self, path: Path_) -> _MLoc | None:
        node: _MLoc | None = self.locs
        for part in path:
            if node is None:
                return None
            node = node.children.get(part)
        return node

    def _lookup(self, path: Path_, ref_text: str, where: Location | None, at: Path_) -> tuple[Any, Path_]:
        """The fully resolved value at ``path`` and its path with list indices as ints; pending nodes
        on the way are resolved first. ``where``/``at``: the reference, for errors."""
        node: Any = self.root
        for depth, part in enumerate(path):
            here = path[:depth]
            node = self._settle(node, here)
            if isinstance(node, dict) and isinstance(part, str) and part in node:
                node = node[part]
            elif isinstance(node, list) and isinstance(part, str) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
                path = (*path[:depth], int(part), *path[depth + 1:])
            else:
                missing = f"key {part!r} not found in {format_path(here)}" if isinstance(node, (dict, list)) else \
                    f"{format_path(here)} is {_kind(node)}, not a mapping"
                raise errors.located(where, f"cannot resolve reference {ref_text}: {missing} "
                                     "(write \\${ for a literal ${)", format_path(at))
        self._resolve_path(path)
        return self._get(path), path

    def _settle(self, node: Any, path: Path_) -> Any:
        if self._pending(node, path):
            self._resolve_path(path)
            return self._get(path)
        return node

    def _get(self, path: Path_) -> Any:
        node: Any = self.root
        for part in path:
            node = node[part]
        return node

    def _set(self, path: Path_, value: Any) -> None:
        parent = self._get(path[:-1])
        parent[path[-1]] = value

    def _pending(self, node: Any, path: Path_) -> bool:
        if path in self.done:
            return False
        return isinstance(node, _Deferred) or _has_markup(node)

    def _resolve_path(self, path: Path_) -> None:
        """Resolve the node at ``path`` and everything under it."""
        if path in self.done:
            return
        if path in self.active:
            chain = " -> ".join(format_path(p) for p in [*self.active[self.active.index(path):], path])
            raise errors.located(self._location(path), f"reference cycle: {chain}", format_path(path))
        self.active.append(path)
        node = self._get(path)
        if isinstance(node, _Deferred) or _has_markup(node):
            target = self._loc_node(path)
            locs = _MLoc(target.here if target else self._location(path), target.children if target else {})
            self._set(path, self._settle_layer(node, locs, path))
            if target is not None:
                target.here, target.children = locs.here, locs.children
        node = self._get(path)
        if isinstance(node, dict):
            for key in list(node):
                self._resolve_path((*path, key))
        elif isinstance(node, list):
            for i in range(len(node)):
                self._resolve_path((*path, i))
        self.active.pop()
        self.done.add(path)

    def _settle_layer(self, value: Any, locs: _MLoc, path: Path_) -> Any:
        """``value`` (at ``path``, written at ``locs``) with its references resolved and its merges
        applied; ``locs`` is updated in place to where the parts of the result came from."""
        if isinstance(value, _Deferred):
            return self._resolve_deferred(value, locs, path)
        if not _has_markup(value):
            return value
        tokens = _tokenize(value, locs.here, path)
        if len(tokens) == 1 and isinstance(tokens[0], _Ref):
            key_path, shown = self._ref_path(tokens[0], locs.here, path)
            found, key_path = self._lookup(key_path, shown, locs.here, path)
            source = self._loc_node(key_path)
            locs.children = copy.deepcopy(source.children) if source and isinstance(found, (dict, list)) else {}
            return copy.deepcopy(found)
        out: list[str] = []
        for token in tokens:
            if isinstance(token, str):
                out.append(token)
                continue
            key_path, shown = self._ref_path(token, locs.here, path)
            out.append(_stringify(self._lookup(key_path, shown, locs.here, path)[0], shown, locs.here, path))
        return "".join(out)

    def _ref_path(self, ref: _Ref, where: Location | None, at: Path_) -> tuple[Path_, str]:
        text = "".join(p if isinstance(p, str) else self._ref_text(p, where, at) for p in ref.parts)
        if not text or any(not part for part in text.split(":")):
            raise errors.located(where, f"empty key in reference ${{{text}}}", format_path(at))
        return tuple(text.split(":")), "${" + text + "}"

    def _ref_text(self, ref: _Ref, where: Location | None, at: Path_) -> str:
        key_path, shown = self._ref_path(ref, where, at)
        return _stringify(self._lookup(key_path, shown, where, at)[0], shown, where, at)

    def _resolve_deferred(self, node: _Deferred, locs: _MLoc, path: Path_) -> Any:
        """Apply the layers of a merge that involved references, now that they can be resolved;
        ``locs`` becomes the location tree of the result."""
        result: Any = None
        result_locs = _MLoc(None)
        sealed: dict[Path_, Location | None] = {}
        for value, layer_locs in node.layers:
            result = self._merge(result, result_locs, copy.deepcopy(value), _thaw(layer_locs, layer_locs.here),
                                 path, sealed)
            self._seal(path, result_locs, sealed)
        locs.here, locs.children = result_locs.here or locs.here, result_locs.children
        return result

    def _seal(self, path: Path_, locs: _MLoc, sealed: dict[Path_, Location | None]) -> None:
        """Constants below ``path`` whose layer is now merged (its location is in ``locs``) are fixed."""
        for cpath, where in self.constants.items():
            if where is None or len(cpath) <= len(path) or cpath[:len(path)] != path:
                continue
            node: _MLoc | None = locs
            for part in cpath[len(path):]:
                node = node.children.get(part) if node else None
            if node is not None and node.here == where:
                sealed[cpath] = where

    def _merge(self, old: Any, old_locs: _MLoc, new: Any, new_locs: _MLoc, path: Path_,
               sealed: dict[Path_, Location | None]) -> Any:
        """Merge a layer into the result (and its locations, in place) with the usual rules; the
        layer's keys may still carry ``~``/``=`` markers, references on either side are resolved."""
        if old is not None and new is not None and (_needs_deferral(old) or _needs_deferral(new)):
            old = self._settle_layer(old, old_locs, path)
            new = self._settle_layer(new, new_locs, path)
        if old is None or new is None or (not isinstance(old, (dict, list)) and not isinstance(new, (dict, list))):
            old_locs.here, old_locs.children = new_locs.here, new_locs.children
            return _strip_markers(new, old_locs)
        if isinstance(old, dict) and isinstance(new, dict):
            old_locs.here = new_locs.here or old_locs.here
            for raw_key, value in new.items():
                key, override, _ = _split_key(raw_key)
                kpath = (*path, key)
                sub = new_locs.children.get(raw_key) or _MLoc(new_locs.here)
                _check_constants(sealed, kpath, sub.here, replacing=key in old and (override or value is None))
                if override or key not in old:
                    old[key], old_locs.children[key] = _strip_markers(value, sub), sub
                else:
                    mine = old_locs.children.setdefault(key, _MLoc(old_locs.here))
                    old[key] = self._merge(old[key], mine, value, sub, kpath, sealed)
            return old
        if isinstance(old, list) and isinstance(new, list):
            old_locs.here = new_locs.here or old_locs.here
            for i, item in enumerate(new):
                sub = new_locs.children.get(i) or _MLoc(new_locs.here)
                old_locs.children[len(old)] = sub
                old.append(_strip_markers(item, sub))
            return old
        raise errors.located(new_locs.here, f"cannot merge {_kind(new)} over {_kind(old)} set at {old_locs.here} "
                             "(after resolving references)", format_path(path))


def _strip_markers(value: Any, locs: _MLoc) -> Any:
    """``value`` with ``~``/``=`` taken off its keys at every depth (``locs`` renamed to match)."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        children: dict[str | int, _MLoc] = {}
        for raw_key, item in value.items():
            key = _split_key(raw_key)[0]
            sub = locs.children.get(raw_key) or _MLoc(locs.here)
            out[key], children[key] = _strip_markers(item, sub), sub
        locs.children = children
        return out
    if isinstance(value, list):
        return [_strip_markers(item, locs.children.setdefault(i, _MLoc(locs.here))) for i, item in enumerate(value)]
    return value


def _stringify(value: Any, shown: str, where: Location | None, path: Path_) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    raise errors.located(where, f"reference {shown} is {_kind(value)} and cannot be placed inside a string; "
                         "reference it as the whole value instead", format_path(path))
