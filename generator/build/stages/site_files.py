"""Stage: the files computed from the others: images.txt and index.json."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from generator.build.stages import SiteBuild
from generator.core import layout, objects

if TYPE_CHECKING:
    from generator.build.pipeline import Context


def add(ctx: Context, build: SiteBuild) -> SiteBuild:
    """The site's files with the image list and the index, sorted by path."""
    files = dict(build.files)
    files[layout.IMAGES] = "".join(f"{image}\n" for image in build.images).encode()
    origins = {
        rel: layout.Origin(objects.identity(item.obj), f"{item.template} ({item.unit})")
        for rel, item in build.origins.items()
    }
    version = build.params["site"]["kubernetes_version"]
    index = layout.Index.build(build.name, version, files, origins)
    files[layout.INDEX] = index.dumps()
    return replace(build, files=dict(sorted(files.items())))
