"""Stage: the files computed from the others: images.txt, kubekey-manifest.yaml and index.json."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from generator.build.stages import SiteBuild
from generator.core import layout, objects, yamlio

if TYPE_CHECKING:
    from generator.build.pipeline import Context


def add(ctx: Context, build: SiteBuild) -> SiteBuild:
    """The site's files with the image list, the KubeKey manifest and the index, sorted by path."""
    files = dict(build.files)
    files[layout.IMAGES] = "".join(f"{image}\n" for image in build.images).encode()
    manifest = kubekey_manifest(build.name, build.images)
    files[layout.KUBEKEY_MANIFEST] = yamlio.dump(manifest).encode()
    origins = {
        rel: layout.Origin(objects.identity(item.obj), f"{item.template} ({item.unit})")
        for rel, item in build.origins.items()
    }
    version = build.params["site"]["kubernetes_version"]
    index = layout.Index.build(build.name, version, files, origins)
    files[layout.INDEX] = index.dumps()
    return replace(build, files=dict(sorted(files.items())))


def kubekey_manifest(site: str, images: tuple[str, ...]) -> dict[str, Any]:
    """The images block of a KubeKey artifact Manifest (``kk artifact export -m``)."""
    return {
        "apiVersion": "kubekey.kubesphere.io/v1alpha2",
        "kind": "Manifest",
        "metadata": {"name": site},
        "spec": {"images": list(images)},
    }
