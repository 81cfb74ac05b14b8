"""Location trees: which file, line and column set each value of a parameter tree.

A ``LocTree`` mirrors the data it describes: ``here`` is where the value (or its key) was written,
``children`` maps dict keys or list indices to the trees of the children. Trees are immutable once
built, so merging and reference resolution share subtrees instead of copying them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from generator.core.location import Location


@dataclass(frozen=True)
class LocTree:
    """Where a value and each of its descendants were written."""

    here: Location | None
    children: dict[str | int, LocTree] = field(default_factory=dict)

    def child(self, key: str | int) -> LocTree | None:
        """The subtree of one child, or None when nothing is known about it."""
        return self.children.get(key)

    def with_child(self, key: str | int, sub: LocTree) -> LocTree:
        """A copy of this tree with one child replaced (the rest is shared)."""
        children = dict(self.children)
        children[key] = sub
        return LocTree(self.here, children)


def nearest(tree: LocTree | None, path: Sequence[str | int]) -> Location | None:
    """The location of ``path``, or of its nearest ancestor whose location is known."""
    best = tree.here if tree else None
    node = tree
    for part in path:
        if node is None:
            break
        node = node.children.get(part)
        if node is not None and node.here is not None:
            best = node.here
    return best


def subtree(tree: LocTree | None, path: Sequence[str | int]) -> LocTree | None:
    """The tree at ``path``, or None."""
    node = tree
    for part in path:
        if node is None:
            return None
        node = node.children.get(part)
    return node
