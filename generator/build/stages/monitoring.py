"""Stage: the site's Nightingale files (``n9e/``) from its parameters and workloads."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from generator.build.monitoring import files as n9e_files
from generator.build.stages import SiteBuild

if TYPE_CHECKING:
    from generator.build.pipeline import Context


def n9e(ctx: Context, build: SiteBuild) -> SiteBuild:
    """The n9e files (none without ``site.monitoring``); bad settings raise a located report."""
    found = n9e_files.for_site(build.name, build.params, build.rendered, build.target.location)
    return replace(build, files={**build.files, **found}) if found else build
