"""Finding and reading inventory files: targets, classes (in the order they apply), the parse cache.

Nothing here merges or resolves: ``Sources`` reads files (each once, through the parse cache),
``ClassWalk`` lists a target's classes depth first, each at most once, as they are applied.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fnmatch
import hashlib
import os
import pickle
import re
import shlex
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from generator.build.inventory.yamlsrc import Document, load_file
from generator.core import errors
from generator.core.errors import Problem
from generator.core.fsutil import write_atomic
from generator.core.location import Location
from generator.core.sourcemap import nearest

CONFIG = "inventory/reclass-config.yml"
STRICT_ENV = "GEN_INVENTORY_STRICT"
"""Set to 1 to make every inventory warning an error (as ``gen inventory --strict``)."""
_TOP_LEVEL_KEYS = ("classes", "parameters", "applications", "exports", "environment")
_TARGET_SUFFIXES = (".yml", ".yaml")
_QUERY = "$["


@dataclass(frozen=True)
class Settings:
    """How targets and classes are found; read from ``inventory/reclass-config.yml`` by
    ``settings_for``."""

    ignore_class_notfound: bool = False
    """A missing class is skipped instead of being an error (reclass's option of the same name)."""
    ignore_class_notfound_regexp: tuple[str, ...] = (".*",)
    """With ``ignore_class_notfound``, only class names matching one of these are skipped."""
    ignore_class_notfound_warning: bool = True
    """A skipped class is reported as a warning."""
    class_mappings: tuple[tuple[str, Location | None], ...] = ()
    """reclass's ``class_mappings`` (``"<glob or /regexp/> class..."``), each with its location."""
    class_mappings_match_path: bool = False
    """Class mappings match the target's path under targets/ instead of its name."""
    compose_node_name: bool = False
    """A target in a subfolder is named by its path, dotted (``prod/web.yml`` is ``prod.web``)."""
    automatic_parameters: bool = True
    """Set ``_reclass_`` (name, environment) in every target's parameters."""
    default_environment: str = "base"
    """``_reclass_.environment`` of a target without ``environment:``."""
    strict: bool = False
    """Every warning (YAML 1.1-only scalars, duplicate keys, unknown top-level keys, values rendered
    into strings) is an error."""


@dataclass
class Sources:
    """The inventory files of one project root; parses each file once, reused across targets."""

    root: Path
    settings: Settings = field(default_factory=Settings)
    parse_cache: tuple[Path, str] | None = None
    """(directory, salt): keep parsed files there, keyed by path, content and salt (the tool's
    version)."""
    _docs: dict[str, Document] = field(default_factory=dict, repr=False)
    _targets: dict[str, Path] | None = field(default=None, repr=False)
    _classes: dict[str, Path] | None = field(default=None, repr=False)
    _by_path: dict[Path, Document] = field(default_factory=dict, repr=False)
    _probes: dict[str, list[str]] = field(default_factory=dict, repr=False)

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
            raise errors.located(
                Location(self._rel(self.targets_dir)),
                "no inventory/targets directory here; run gen in the project root or pass --root",
            )
        for path in _yaml_files(self.targets_dir):
            name = self.target_name(path)
            if name in found:
                other = self._rel(found[name])
                raise errors.located(
                    Location(self._rel(path)),
                    f"target {name!r} is also defined in {other}; rename one",
                )
            found[name] = path
        return dict(sorted(found.items()))

    def target_name(self, path: Path) -> str:
        """A target's name, as reclass names nodes: the file's stem, or with ``compose_node_name``
        its path dotted (unless its first folder starts with ``_``)."""
        rel = path.relative_to(self.targets_dir).with_suffix("")
        parts = rel.parts
        if not self.settings.compose_node_name or len(parts) == 1 or parts[0].startswith("_"):
            return rel.name
        return ".".join(parts)

    def target_file(self, name: str) -> Path:
        """The file of target ``name``; an unknown name is an error listing the known ones."""
        files = self.target_files()
        if name not in files:
            known = ", ".join(files) or "none"
            raise errors.GenError(
                f"unknown target {name!r}; targets in {self._rel(self.targets_dir)}: {known}"
            )
        return files[name]

    def document(self, path: Path) -> Document:
        """The parsed file at ``path``, parsed once per Inventory; with ``strict`` settings, a file
        with warnings is an error."""
        doc = self._by_path.get(path)
        if doc is not None:
            return doc
        rel = self._rel(path)
        doc = self._docs.get(rel)
        if doc is None:
            doc = self._parse(path, rel)
            extra = _check_top_level(doc)
            if extra:
                doc = dataclasses.replace(doc, warnings=(*doc.warnings, *extra))
            if self.settings.strict and doc.warnings:
                raise errors.ProblemReport(
                    list(doc.warnings), f"(strict: {STRICT_ENV} or --strict makes warnings errors)"
                )
            self._docs[rel] = doc
        self._by_path[path] = doc
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

    def class_files(self) -> dict[str, Path]:
        """Every class name and its file, as reclass finds them: ``a/b.yml`` and ``a/b/init.yml``
        are ``a.b``, dots in folder and file names stay (``a/b.c/init.yml`` is ``a.b.c``); two
        files with one name are an error."""
        if self._classes is None:
            found: dict[str, Path] = {}
            if self.classes_dir.is_dir():
                for path in _yaml_files(self.classes_dir):
                    rel = path.relative_to(self.classes_dir).with_suffix("")
                    parts = list(rel.parts)
                    if parts[-1] == "init" and len(parts) > 1:
                        parts.pop()
                    name = ".".join(parts)
                    if name in found:
                        raise errors.located(
                            Location(self._rel(path)),
                            f"class {name!r} is ambiguous: both {self._rel(found[name])} and "
                            f"{self._rel(path)} exist; keep one",
                        )
                    found[name] = path
            self._classes = found
        return self._classes

    def find_class(self, name: str) -> tuple[Path | None, list[str]]:
        """The file of class ``name`` and the other paths that would also be class ``name`` (the
        probes: creating one changes the target or makes the name ambiguous)."""
        path = self.class_files().get(name)
        probed = self._probes.get(name)
        if probed is None:
            found = self._rel(path) if path is not None else None
            probed = self._probes[name] = [c for c in _class_candidates(name) if c != found]
        return path, probed

    def _rel(self, path: Path) -> str:
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return str(path)


def _yaml_files(directory: Path) -> list[Path]:
    """The .yml and .yaml files under ``directory``, sorted, walked as reclass walks it: into
    symlinked folders, not into hidden ones (``.git``) nor ``CVS``/``SCCS``."""
    out = []
    for base, dirs, files in os.walk(directory, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in ("CVS", "SCCS"))
        out += [Path(base, f) for f in sorted(files) if f.endswith(_TARGET_SUFFIXES)]
    return sorted(out)


def _class_candidates(name: str) -> list[str]:
    """Every path that would be class ``name``: each way of splitting the dotted name into folders
    (the last 64 for deeply dotted names), as a file or an ``init`` file."""
    parts = name.split(".")
    out = []
    joins = len(parts) - 1
    for mask in range(min(1 << joins, 64)):
        chunks = [parts[0]]
        for i in range(joins):
            if mask >> i & 1:
                chunks[-1] += "." + parts[i + 1]
            else:
                chunks.append(parts[i + 1])
        stem = "inventory/classes/" + "/".join(chunks)
        out += [stem + s for s in _TARGET_SUFFIXES]
        out += [f"{stem}/init{s}" for s in _TARGET_SUFFIXES]
    return out


_ANY = object()
_CONFIG_FIXED: dict[str, Any] = {
    # Keys Kapitan or reclass honour whose effect gen has only with this value (the default).
    "storage_type": "yaml_fs",
    "nodes_uri": "targets",
    "classes_uri": "classes",
    "allow_none_override": True,
    "strict_constant_parameters": True,
    "ignore_overwritten_missing_references": True,
    "allow_scalar_over_dict": False,
    "allow_scalar_over_list": False,
    "allow_list_over_scalar": False,
    "allow_dict_over_scalar": False,
    "delimiter": ":",
    "reference_sentinels": ["${", "}"],
    "export_sentinels": ["$[", "]"],
    "escape_character": "\\",
    "dict_key_override_prefix": "~",
    "dict_key_constant_prefix": "=",
    # Keys that change nothing in the parameters (the last three: the reclass command's output).
    "inventory_base_uri": _ANY,
    "group_errors": _ANY,
    "inventory_ignore_failed_node": _ANY,
    "inventory_ignore_failed_render": _ANY,
    "pretty_print": _ANY,
    "output": _ANY,
    "no_refs": _ANY,
}
_CONFIG_BOOLS = (
    "ignore_class_notfound",
    "ignore_class_notfound_warning",
    "class_mappings_match_path",
    "compose_node_name",
    "automatic_parameters",
)
_CONFIG_KEYS = (
    *_CONFIG_BOOLS,
    "ignore_class_notfound_regexp",
    "class_mappings",
    "default_environment",
    *_CONFIG_FIXED,
)


def settings_for(root: Path, strict: bool | None = None) -> Settings:
    """Read ``inventory/reclass-config.yml`` if it exists; defaults otherwise. ``strict`` (default:
    the ``GEN_INVENTORY_STRICT`` environment variable) makes inventory warnings errors.

    Every key Kapitan honours either works as in Kapitan, or is refused with its location when
    gen does not implement the value given; an unknown key is an error (reclass ignores it)."""
    if strict is None:
        strict = os.environ.get(STRICT_ENV, "") not in ("", "0", "false", "no")
    path = root / CONFIG
    if not path.is_file():
        return Settings(strict=strict)
    doc = load_file(path, CONFIG)
    data = doc.data or {}
    if not isinstance(data, dict):
        raise errors.located(doc.locs.here, "reclass-config.yml must be a mapping")
    values: dict[str, Any] = {"strict": strict}
    for key, value in data.items():
        where = nearest(doc.locs, [key])
        if key in _CONFIG_BOOLS:
            if not isinstance(value, bool):
                raise errors.located(where, f"{key} must be true or false")
            values[key] = value
        elif key in _CONFIG_FIXED:
            fixed = _CONFIG_FIXED[key]
            if fixed is not _ANY and value != fixed:
                raise errors.located(
                    where,
                    f"{key}: {value!r} is not supported by gen (only {fixed!r}, the default): "
                    "remove the key or set it to the default",
                )
        elif key == "ignore_class_notfound_regexp":
            regexp = [value] if isinstance(value, str) else value
            if not isinstance(regexp, list) or not all(isinstance(r, str) for r in regexp):
                raise errors.located(where, "must be a list of regexps")
            values[key] = tuple(regexp)
        elif key == "class_mappings":
            values[key] = _class_mappings(value, doc, where)
        elif key == "default_environment":
            if not isinstance(value, str):
                raise errors.located(where, "default_environment must be a string")
            values[key] = value
        else:
            raise errors.located(
                where,
                f"unknown key {key!r} in reclass-config.yml; known keys: "
                + ", ".join(sorted(_CONFIG_KEYS)),
            )
    return Settings(**values)


def _class_mappings(
    value: Any, doc: Document, where: Location | None
) -> tuple[tuple[str, Location | None], ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(m, str) for m in value):
        raise errors.located(where, 'class_mappings must be a list of "<match> <class>..." strings')
    out = []
    for i, mapping in enumerate(value):
        here = nearest(doc.locs, ["class_mappings", i])
        try:
            key, classes = _split_mapping(mapping)
            if key.startswith("/"):
                re.compile(key[1:-1])
        except (ValueError, re.error) as e:
            raise errors.located(here, f"invalid class mapping {mapping!r}: {e}") from e
        if not classes:
            raise errors.located(here, f"class mapping {mapping!r} names no class")
        out.append((mapping, here))
    return tuple(out)


def _split_mapping(mapping: str) -> tuple[str, list[str]]:
    """A class mapping's match and classes, split as reclass does (shell words; ``/re/`` quoted)."""
    lexer = shlex.shlex(mapping, posix=True)
    lexer.whitespace_split = True
    lexer.commenters = ""
    regexp = mapping.startswith("/")
    if regexp:
        lexer.quotes += "/"
        lexer.escapedquotes += "/"
    try:
        key = lexer.get_token() or ""
        rest = list(lexer)
    except ValueError as e:
        raise ValueError("missing closing quote (or slash)") from e
    return (f"/{key}/" if regexp else key), rest


def mapped_classes(settings: Settings, name: str, path: str) -> list[tuple[str, Location | None]]:
    """The classes ``class_mappings`` give the target ``name`` (``path``: its file under targets/
    without the suffix), in order, each once, with the mapping that gave it."""
    match = path if settings.class_mappings_match_path else name
    out: dict[str, Location | None] = {}
    for mapping, where in settings.class_mappings:
        key, classes = _split_mapping(mapping)
        if key.startswith("/"):
            found = re.search(key[1:-1], match)
            if found:
                for klass in classes:
                    out.setdefault(found.expand(klass), where)
        elif fnmatch.fnmatchcase(match, key):
            for klass in classes:
                out.setdefault(klass, where)
    return list(out.items())


def _check_top_level(doc: Document) -> list[Problem]:
    """Refuse what cannot be read; warn about top-level keys reclass ignores."""
    if doc.data is None:
        return []
    if not isinstance(doc.data, dict):
        raise errors.located(
            doc.locs.here, "a class or target must be a mapping with classes: and parameters:"
        )
    warnings = []
    for key in doc.data:
        if key not in _TOP_LEVEL_KEYS:
            expected = ", ".join(sorted(_TOP_LEVEL_KEYS))
            warnings.append(
                Problem(
                    nearest(doc.locs, [key]),
                    "",
                    f"unknown top-level key {key!r} is ignored (as reclass does); expected one of "
                    f"{expected}",
                )
            )
    classes = doc.data.get("classes")
    if classes is not None and not (
        isinstance(classes, list) and all(isinstance(c, str) for c in classes)
    ):
        raise errors.located(
            nearest(doc.locs, ["classes"]), "classes: must be a list of class names", "$.classes"
        )
    params = doc.data.get("parameters")
    if params is not None and not isinstance(params, dict):
        raise errors.located(
            nearest(doc.locs, ["parameters"]), "parameters: must be a mapping", "$.parameters"
        )
    environment = doc.data.get("environment")
    if environment is not None and not isinstance(environment, str):
        raise errors.located(
            nearest(doc.locs, ["environment"]), "environment: must be a string", "$.environment"
        )
    return warnings


ClassNameResolver = Callable[[str, Location | None], str]
"""Renders the references in a class name from the parameters merged so far."""


class ClassWalk:
    """One target's classes, depth first, each at most once; records what was read and probed."""

    def __init__(self, sources: Sources, resolve_name: ClassNameResolver | None = None) -> None:
        self.sources = sources
        self.resolve_name = resolve_name
        self.applied: list[str] = []
        """Class names in the order they were applied."""
        self.inputs: list[str] = []
        """Files read, in order (the caller adds the target's own file first)."""
        self.probes: list[str] = []
        """Paths looked for and not found: creating one of them may change the target."""
        self.warnings: list[Problem] = []
        """Classes skipped because they do not exist (``ignore_class_notfound_warning``)."""
        self.seen: set[str] = set()
        self.stack: list[str] = []

    def classes(
        self,
        doc: Document,
        context: str,
        names: list[tuple[str, Location | None]] | None = None,
    ) -> Iterator[Document]:
        """The documents of the classes ``doc`` includes (or ``names``), in the order to apply them;
        ``context`` is the dotted name of ``doc`` that relative class names are resolved against.

        A generator, so a caller merging each as it comes meets errors in file order, and class
        names with references see the parameters of the classes before them.
        """
        if names is None:
            data = doc.data or {}
            names = [
                (raw, nearest(doc.locs, ["classes", i]))
                for i, raw in enumerate(data.get("classes") or [])
            ]
        for raw_name, where in names:
            if "${" in raw_name:
                if self.resolve_name is None:
                    raise errors.located(where, f"class name {raw_name!r} has a reference here")
                raw_name = self.resolve_name(raw_name, where)
            if _QUERY in raw_name:
                raise errors.located(
                    where,
                    f"class name {raw_name!r} holds an inventory query ($[...]); gen does not "
                    "support inventory queries: name the class",
                )
            name = _absolute_class(raw_name, context, where)
            if name in self.stack:
                chain = " -> ".join([*self.stack[self.stack.index(name) :], name])
                raise errors.located(where, f"class cycle: {chain}; remove one of these includes")
            if name in self.seen:
                continue
            path = self._class_file(name, where)
            if path is None:
                continue
            self.seen.add(name)
            class_doc = self.sources.document(path)
            self.inputs.append(class_doc.file)
            self.stack.append(name)
            yield from self.classes(class_doc, name)
            self.stack.pop()
            self.applied.append(name)
            yield class_doc

    def probe_config(self) -> None:
        """Record ``inventory/reclass-config.yml`` as read, or as probed when it is missing."""
        if (self.sources.root / CONFIG).is_file():
            self.inputs.append(CONFIG)
        else:
            self.probes.append(CONFIG)

    def _class_file(self, name: str, where: Location | None) -> Path | None:
        """The file of class ``name``; None when it is missing and may be ignored."""
        path, probed = self.sources.find_class(name)
        self.probes.extend(probed)
        if path is not None:
            return path
        if self._may_ignore(name):
            if self.sources.settings.ignore_class_notfound_warning:
                self.warnings.append(
                    Problem(where, "", f"class {name!r} not found: skipped (ignore_class_notfound)")
                )
            return None
        raise errors.located(
            where,
            f"class {name!r} not found: expected "
            f"inventory/classes/{name.replace('.', '/')}.yml or .../init.yml "
            "(or set ignore_class_notfound in inventory/reclass-config.yml)",
        )

    def _may_ignore(self, name: str) -> bool:
        s = self.sources.settings
        patterns = s.ignore_class_notfound_regexp
        return s.ignore_class_notfound and re.match("|".join(patterns), name) is not None


def _absolute_class(raw: str, context: str, where: Location | None) -> str:
    """Resolve ``.name`` / ``..name`` as reclass does: against the dotted name ``context`` of the
    class (or target) that includes it, one dot for its parent, each further dot one level up;
    going above the top just drops the dots."""
    if not raw or raw.strip() != raw:
        raise errors.located(where, f"invalid class name {raw!r}")
    if not raw.startswith("."):
        return raw
    dots = len(raw) - len(raw.lstrip("."))
    if dots == len(raw):
        raise errors.located(
            where, f"invalid class name {raw!r}: a relative name needs a class after the dots"
        )
    parent = ".".join(context.split(".")[:-dots])
    return f"{parent}.{raw[dots:]}" if parent else raw[dots:]
