"""Stage: the site's templates rendered, except those that need the site's objects (see render)."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from generator.build.stages import SiteBuild

if TYPE_CHECKING:
    from generator.build.pipeline import Context


def render(ctx: Context, build: SiteBuild) -> SiteBuild:
    """The site's objects from its components; a template error raises a located report."""
    return replace(build, rendered=(*build.rendered, *ctx.renderer.site(build.name, build.params)))
