"""inventory/ -> merged, resolved, located parameters per target, with Kapitan's (reclass) rules.

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

    load          files: targets, classes in the order they apply, the parse cache, settings
    merge         deep merge of the layers (``~`` and ``=``), with a location for every value
    references    ``${...}`` in strings: parsing, escapes
    resolve       resolution after merging, nested references, cycles
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from generator.build.inventory import merge, resolve
from generator.build.inventory.load import ClassWalk, Settings, Sources, settings_for
from generator.build.inventory.references import KeyPath
from generator.build.inventory.yamlsrc import Document
from generator.core.location import Location
from generator.core.sourcemap import LocTree, nearest

__all__ = ["Inventory", "Path_", "Settings", "Target", "settings_for"]

Path_ = KeyPath


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
class Inventory(Sources):
    """The inventory of one project root; parses each file once and reuses it across targets."""

    def target(self, name: str) -> Target:
        """Merge and resolve one target's parameters: its classes depth first, then the target."""
        path = self.target_file(name)
        doc = self.document(path)
        walk = ClassWalk(self)
        walk.inputs.append(doc.file)
        merger = merge.Merger()
        merger.locs.here = Location(doc.file, 1, 1)
        self._reclass_meta(merger, name, path, doc)
        for class_doc in walk.classes(doc):
            merger.apply(class_doc)
        merger.apply(doc)
        params = resolve.resolve(merger.params, merger.locs, merger.constants)
        walk.probe_config()
        return Target(
            name,
            doc.file,
            params,
            merger.locs.freeze(),
            tuple(walk.applied),
            tuple(walk.inputs),
            tuple(walk.probes),
        )

    def _reclass_meta(self, merger: merge.Merger, name: str, path: Path, doc: Document) -> None:
        """``_reclass_.name``, as reclass sets it for every target."""
        rel = path.relative_to(self.targets_dir).with_suffix("").as_posix()
        meta = {"name": {"full": name, "short": name, "parts": rel.split("/"), "path": rel}}
        merger.params["_reclass_"] = meta
        merger.locs.children["_reclass_"] = merge.thaw(None, Location(doc.file, 1, 1))
