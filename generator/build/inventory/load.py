"""Finding and reading inventory files: targets, classes (in the order they apply), the parse cache.

Nothing here merges or resolves: ``Sources`` reads files (each once, through the parse cache),
``ClassWalk`` lists a target's classes depth first, each at most once, as they are applied.
"""

from __future__ import annotations

import contextlib
import hashlib
import pickle
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from generator.build.inventory.yamlsrc import Document, load_file
from generator.core import errors
from generator.core.fsutil import write_atomic
from generator.core.location import Location
from generator.core.sourcemap import nearest

CONFIG = "inventory/reclass-config.yml"
_TOP_LEVEL_KEYS = {"classes", "parameters", "applications", "exports"}
_TARGET_SUFFIXES = (".yml", ".yaml")


@dataclass(frozen=True)
class Settings:
    """How classes are found; read from ``inventory/reclass-config.yml`` by ``settings_for``."""

    ignore_class_notfound: bool = False
    """A missing class is skipped instead of being an error (reclass's option of the same name)."""
    ignore_class_notfound_regexp: tuple[str, ...] = (".*",)
    """With ``ignore_class_notfound``, only class names matching one of these are skipped."""


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
        for path in sorted(self.targets_dir.rglob("*")):
            if path.suffix not in _TARGET_SUFFIXES or not path.is_file():
                continue
            name = path.stem
            if name in found:
                other = self._rel(found[name])
                raise errors.located(
                    Location(self._rel(path)),
                    f"target {name!r} is also defined in {other}; rename one",
                )
            found[name] = path
        return dict(sorted(found.items()))

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
        """The file of class ``name`` and the candidate paths probed; ``where`` includes it."""
        base = self.classes_dir.joinpath(*name.split("."))
        candidates = [base.with_name(base.name + s) for s in _TARGET_SUFFIXES]
        candidates += [base / ("init" + s) for s in _TARGET_SUFFIXES]
        existing = [c for c in candidates if c.is_file()]
        if len(existing) > 1:
            shown = " and ".join(self._rel(c) for c in existing)
            raise errors.located(
                where, f"class {name!r} is ambiguous: both {shown} exist; keep one"
            )
        probed = [self._rel(c) for c in candidates if not c.is_file()]
        return (existing[0] if existing else None), probed

    def _rel(self, path: Path) -> str:
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return str(path)


def settings_for(root: Path) -> Settings:
    """Read ``inventory/reclass-config.yml`` if it exists; defaults otherwise."""
    path = root / CONFIG
    if not path.is_file():
        return Settings()
    doc = load_file(path, CONFIG)
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
        raise errors.located(
            nearest(doc.locs, ["ignore_class_notfound_regexp"]), "must be a list of regexps"
        )
    return Settings(ignore_class_notfound=flag, ignore_class_notfound_regexp=tuple(regexp))


def _check_top_level(doc: Document) -> None:
    if doc.data is None:
        return
    if not isinstance(doc.data, dict):
        raise errors.located(
            doc.locs.here, "a class or target must be a mapping with classes: and parameters:"
        )
    for key in doc.data:
        if key not in _TOP_LEVEL_KEYS:
            expected = ", ".join(sorted(_TOP_LEVEL_KEYS))
            raise errors.located(
                nearest(doc.locs, [key]),
                f"unknown top-level key {key!r}; expected one of {expected}",
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


class ClassWalk:
    """One target's classes, depth first, each at most once; records what was read and probed."""

    def __init__(self, sources: Sources) -> None:
        self.sources = sources
        self.applied: list[str] = []
        """Class names in the order they were applied."""
        self.inputs: list[str] = []
        """Files read, in order (the caller adds the target's own file first)."""
        self.probes: list[str] = []
        """Paths looked for and not found: creating one of them may change the target."""
        self.seen: set[str] = set()
        self.stack: list[str] = []

    def classes(self, doc: Document, context: str = "") -> Iterator[Document]:
        """The documents of the classes ``doc`` includes, in the order to apply them.

        A generator, so a caller merging each as it comes meets errors in file order.
        """
        data = doc.data or {}
        for index, raw_name in enumerate(data.get("classes") or []):
            where = nearest(doc.locs, ["classes", index])
            name = _absolute_class(raw_name, context, where)
            if name in self.stack:
                chain = " -> ".join([*self.stack[self.stack.index(name) :], name])
                raise errors.located(where, f"class cycle: {chain}; remove one of these includes")
            if name in self.seen:
                continue
            self.seen.add(name)
            path = self._class_file(name, where)
            if path is None:
                continue
            class_doc = self.sources.document(path)
            self.inputs.append(class_doc.file)
            self.stack.append(name)
            yield from self.classes(class_doc, _class_dir(name, path))
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
        path, probed = self.sources.find_class(name, where)
        self.probes.extend(probed)
        if path is not None or self._may_ignore(name):
            return path
        raise errors.located(
            where,
            f"class {name!r} not found: expected "
            f"inventory/classes/{name.replace('.', '/')}.yml or .../init.yml "
            "(or set ignore_class_notfound in inventory/reclass-config.yml)",
        )

    def _may_ignore(self, name: str) -> bool:
        s = self.sources.settings
        patterns = s.ignore_class_notfound_regexp
        return s.ignore_class_notfound and any(re.fullmatch(p, name) for p in patterns)


def _absolute_class(raw: str, context: str, where: Location | None) -> str:
    """Resolve ``.name`` / ``..name`` against the including class's directory."""
    if not raw or raw.strip() != raw:
        raise errors.located(where, f"invalid class name {raw!r}")
    if not raw.startswith("."):
        return raw
    dots = len(raw) - len(raw.lstrip("."))
    if dots == len(raw):
        raise errors.located(
            where, f"invalid class name {raw!r}: a relative name needs a class after the dots"
        )
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
