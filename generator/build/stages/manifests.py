"""Stage: every object checked against the Kubernetes schema and laid out as a manifest file.

Sites share most objects (same template, same text), so each object's result is memoized in the
compile's ``Context.objects`` by (rendered text, document, namespace, labels, version).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from generator.build import kube_schema
from generator.build.stages import Item, SiteBuild
from generator.core import errors, layout, objects, yamlio
from generator.core.errors import Problem
from generator.core.location import Location

if TYPE_CHECKING:
    from generator.build.pipeline import Context

ObjectFile = tuple[str, bytes, tuple[str, ...], tuple[str, ...]]
"""One object's manifest path, bytes, images and schema problems."""


def check(ctx: Context, build: SiteBuild) -> SiteBuild:
    """Manifest files, their origins and the images; ProblemReport with every object problem."""
    site = build.params["site"]
    files, origins = dict(build.files), dict(build.origins)
    problems: list[Problem] = []
    images: set[str] = set(build.images)
    for item in build.rendered:
        rel, content, found, messages = _object_file(ctx, item, site)
        problems += [Problem(Location(item.template), "", f"{item.unit}: {m}") for m in messages]
        if rel in origins:
            other = origins[rel]
            problems.append(
                Problem(
                    Location(item.template),
                    "",
                    f"{item.unit}: {rel} is also "
                    f"produced by {other.template} ({other.unit}); rename one",
                )
            )
            continue
        origins[rel] = item
        files[rel] = content
        images.update(found)
    if problems:
        raise errors.ProblemReport(problems)
    _, warning = kube_schema.schema_version_for(site["kubernetes_version"])
    warnings = (*build.warnings, f"{build.name}: {warning}") if warning else build.warnings
    return replace(
        build, files=files, origins=origins, images=tuple(sorted(images)), warnings=warnings
    )


def _object_file(ctx: Context, item: Item, site: dict[str, Any]) -> ObjectFile:
    """One object's path, bytes, images and schema problems; memoized for objects of equal text."""
    version = site["kubernetes_version"]
    labels = site.get("labels") or {}
    key = None
    if item.key:
        key = (item.key, site["namespace"], tuple(sorted(labels.items())), version)
    if key is not None and key in ctx.objects:
        return ctx.objects[key]
    obj = _with_site_defaults(item.obj, site, labels)
    messages = tuple(f"{objects.identity(obj)}: {m}" for m in ctx.kube.validate(obj, version))
    result = (
        layout.manifest_path(obj),
        yamlio.dump(objects.canonical(obj)).encode(),
        tuple(objects.images(obj)),
        messages,
    )
    if key is not None:
        ctx.objects[key] = result
    return result


def _with_site_defaults(
    obj: dict[str, Any], site: dict[str, Any], labels: dict[str, str]
) -> dict[str, Any]:
    """The object in the site's namespace (when namespaced and unset), with the site's labels."""
    meta = obj["metadata"]
    if objects.is_namespaced(obj["kind"]) and not meta.get("namespace"):
        meta = {**meta, "namespace": site["namespace"]}
    if labels:
        meta = {**meta, "labels": {**labels, **(meta.get("labels") or {})}}
    return {**obj, "metadata": meta}
