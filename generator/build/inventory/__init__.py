"""inventory/ -> merged, resolved, located parameters per target, as Kapitan (reclass) gives them.

- ``inventory/targets/<name>.yml``: one target per site, ``classes:`` and ``parameters:`` (and
  ``environment:``); in a subfolder it is named by its file, or by its dotted path with
  ``compose_node_name``.
- ``inventory/classes/a/b.yml`` or ``a/b/init.yml`` is class ``a.b``; dots in folder and file names
  stay (``a/b.c/init.yml`` is ``a.b.c``). ``.c`` inside class ``a.b`` is ``a.c`` (relative to the
  parent of the dotted name; each further dot goes one level up). A class name may hold references,
  resolved from the classes before it.
- The classes of ``class_mappings`` first, then the target's classes in order, depth first, each at
  most once, the target last.
- Dicts merge, lists extend, scalars replace; ``~key`` replaces instead of merging; ``=key`` is a
  constant that later classes cannot change (nor replace a mapping holding it): an error, as with
  reclass's default ``strict_constant_parameters``; null replaces and is replaced by anything.
- ``${a:b:c}`` references resolve after all merging: a whole value of any type, or text inside a
  string (anything but a string or number rendered as Python prints it, with a warning); references
  may nest (``${a:${b}}``); ``\\${`` is a literal ``${`` and ``\\\\${`` a backslash before a
  reference; a reference that cannot resolve in a value a later layer overwrites is ignored.
- Files are read as PyYAML reads them (``yamlsrc``: YAML 1.1, merge keys, last duplicate wins).
- ``inventory/reclass-config.yml``: the keys Kapitan honours (``load.settings_for``); an unknown
  key is an error. Inventory queries (``$[...]``) read every target's ``exports:`` (``queries``).

What Kapitan accepts but is likely a mistake is a located warning (``Target.warnings``); strict
settings (``GEN_INVENTORY_STRICT=1``, ``gen inventory --strict``) make warnings errors.

Every error names the file, line and key path. Nothing here touches anything but inventory/.

    load          files: targets, classes in the order they apply, the parse cache, settings
    merge         deep merge of the layers (``~`` and ``=``), with a location for every value
    prefix        the merge of a sequence of classes, done once and copied for every target
                  that applies the same classes (locations shared copy-on-write)
    references    ``${...}`` in strings: parsing, escapes
    resolve       resolution after merging, nested references, cycles
    queries       ``$[ ... ]`` inventory queries over every target's exports
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from generator.build.inventory import merge, prefix, queries, resolve
from generator.build.inventory.load import (
    STRICT_ENV,
    ClassWalk,
    Settings,
    Sources,
    mapped_classes,
    settings_for,
)
from generator.build.inventory.references import KeyPath
from generator.build.inventory.yamlsrc import Document
from generator.core import errors
from generator.core.errors import Problem
from generator.core.location import Location
from generator.core.sourcemap import LocTree

__all__ = [
    "STRICT_ENV",
    "Inventory",
    "Path_",
    "Problem",
    "Settings",
    "Target",
    "settings_for",
]

Path_ = KeyPath


@dataclass(frozen=True)
class Target:
    """One target's merged parameters, references resolved, with where each value was set."""

    name: str
    file: str
    parameters: dict[str, Any]
    merged_locations: merge.MLoc = field(repr=False, compare=False)
    """Where each value was set, as merging left it (``locations`` is the immutable view)."""
    classes: tuple[str, ...]
    """Classes in the order they were applied."""
    inputs: tuple[str, ...]
    """Files read (relative to the root): the target, then its classes, config if present."""
    probes: tuple[str, ...]
    """Paths looked for and not found: creating one of them may change this target."""
    warnings: tuple[Problem, ...] = ()
    """What Kapitan accepts silently but is likely a mistake, located: in the files read (YAML 1.1
    scalars, duplicate keys, unknown top-level keys) and in resolving (a mapping rendered into a
    string). Sorted, each once."""

    @property
    def locations(self) -> LocTree:
        """Where each value was set: a ``LocTree`` mirroring ``parameters`` (built on first use:
        most targets never need it)."""
        cached: LocTree | None = self.__dict__.get("_frozen_locations")
        if cached is None:
            cached = self.merged_locations.freeze()
            object.__setattr__(self, "_frozen_locations", cached)
        return cached

    def location(self, path: Path_) -> Location | None:
        """Where the value at ``path`` (or its nearest known ancestor) was set."""
        return merge.located(self.merged_locations, path)


@dataclass
class Inventory(Sources):
    """The inventory of one project root; parses each file once and reuses it across targets."""

    _exports: queries.Exports | None = field(default=None, repr=False)
    _exporting: bool = field(default=False, repr=False)
    _prefixes: prefix.PrefixCache = field(default_factory=prefix.PrefixCache, repr=False)

    def _merge(self, name: str) -> tuple[Document, ClassWalk, merge.Merger, merge.Merger]:
        """One target's merged parameters and exports (references not resolved): the classes of
        ``class_mappings``, then its own classes depth first, then the target (as reclass does);
        a sequence of classes another target merged already is copied (``prefix``)."""
        path = self.target_file(name)
        doc = self.document(path)
        merging = prefix.TargetMerge(self._prefixes, self._reclass_meta(name, doc), doc.file)
        walk = ClassWalk(
            self, lambda raw, where: resolve.render_class_name(merging.live(), raw, where)
        )
        walk.inputs.append(doc.file)
        rel = path.relative_to(self.targets_dir).with_suffix("").as_posix()
        mapped = mapped_classes(self.settings, name, rel)
        layers = [*walk.classes(doc, "", mapped)] if mapped else []
        for class_doc in layers:
            merging.apply(class_doc)
        for class_doc in walk.classes(doc, name):
            merging.apply(class_doc)
        merger, exports = merging.finish(doc)
        return doc, walk, merger, exports

    def exports(self) -> queries.Exports:
        """Every target's ``exports:``, references resolved against its own parameters, by target
        name (computed once, when a query needs it)."""
        if self._exports is None:
            if self._exporting:
                raise errors.GenError(
                    "an inventory query is needed to compute the exports that inventory queries "
                    "read; move the query out of what exports: refers to"
                )
            self._exporting = True
            try:
                out: queries.Exports = {}
                for name in self.target_files():
                    _, _, merger, ex = self._merge(name)
                    out[name] = resolve.resolve_exports(
                        merger.params, merger.locs, merger.constants, ex.params, ex.locs
                    )
            finally:
                self._exporting = False
            self._exports = out
        return self._exports

    def target(self, name: str) -> Target:
        """Merge and resolve one target's parameters: the classes of ``class_mappings``, then its
        own classes depth first, then the target (as reclass does); inventory queries see every
        target's exports."""
        doc, walk, merger, _ = self._merge(name)
        params, notes = resolve.resolve(
            merger.params,
            merger.locs,
            merger.constants,
            lambda query, lookup: queries.evaluate(query, self.exports(), lookup),
        )
        walk.probe_config()
        warnings = {*notes, *walk.warnings}
        for file in walk.inputs:
            warnings.update(self._docs[file].warnings if file in self._docs else ())
        if self.settings.strict and (notes or walk.warnings):
            raise errors.ProblemReport(
                [*notes, *walk.warnings],
                f"(strict: {STRICT_ENV} or --strict makes warnings errors)",
            )
        return Target(
            name,
            doc.file,
            params,
            merger.locs,
            tuple(walk.applied),
            tuple(walk.inputs),
            tuple(walk.probes),
            tuple(sorted(warnings, key=errors.problem_key)),
        )

    def _reclass_meta(self, name: str, doc: Document) -> dict[str, Any] | None:
        """``_reclass_``: the target's name and environment, as reclass sets them for every
        target (unless ``automatic_parameters`` is off)."""
        if not self.settings.automatic_parameters:
            return None
        parts = name.split(".")
        environment = (doc.data or {}).get("environment") or self.settings.default_environment
        return {
            "name": {"full": name, "short": parts[-1], "path": "/".join(parts), "parts": parts},
            "environment": environment,
        }
