"""Compile stages: each turns a site's ``SiteBuild`` into the next (``pipeline.stages()``).

A stage is a function ``(ctx, build) -> build`` (``Stage``). It never changes the value it is
given (nor the dicts and objects in it, which sites share): it returns a new one with
``dataclasses.replace``. A stage that finds problems raises ``errors.ProblemReport`` with every
problem it found, located; the site's compile stops there. A new compile feature is a new stage
module here and one more entry in ``pipeline.stages()``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    from generator.build.inventory import Target
    from generator.build.pipeline import Context

T = TypeVar("T")


class Item(Protocol):
    """An object with what produced it: ``render.Rendered``, ``secrets.Placed``."""

    @property
    def obj(self) -> dict[str, Any]: ...

    @property
    def template(self) -> str: ...

    @property
    def unit(self) -> str: ...

    @property
    def key(self) -> tuple[str, int] | None: ...


@dataclass(frozen=True)
class SiteBuild:
    """One site on its way through the stages."""

    name: str
    target: Target
    params: dict[str, Any]
    """The site's parameters: as merged, then defaulted, then with secret references sealed."""
    rendered: tuple[Item, ...] = ()
    """Every object of the site, in the order produced."""
    files: Mapping[str, bytes] = field(default_factory=dict)
    """Site-relative path -> content, as laid out by ``generator.core.layout``."""
    origins: Mapping[str, Item] = field(default_factory=dict)
    """Manifest path -> the object it holds and what produced it (for the index)."""
    images: tuple[str, ...] = ()
    """Images the site's pods run, sorted."""
    inputs: tuple[str, ...] = ()
    """Files the compile read (relative to the root): the compile cache watches them."""
    warnings: tuple[str, ...] = ()
    notes: Mapping[str, object] = field(default_factory=dict)
    """What a stage leaves for a later one, by the stage's key (see ``note`` and ``noted``)."""

    def note(self, key: str, value: object) -> SiteBuild:
        """This build with ``value`` noted under ``key``."""
        return replace(self, notes={**self.notes, key: value})

    def noted(self, key: str, kind: type[T]) -> T:
        """What an earlier stage noted under ``key``; a missing note is a stage-order bug."""
        value = self.notes.get(key)
        if not isinstance(value, kind):
            raise AssertionError(
                f"{self.name}: no {kind.__name__} noted as {key!r}: stages out of order"
            )
        return value


class Stage(Protocol):
    """One step of compiling a site (see the module docstring)."""

    def __call__(self, ctx: Context, build: SiteBuild, /) -> SiteBuild: ...
