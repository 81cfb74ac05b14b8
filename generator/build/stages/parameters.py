"""Stage: the site's parameters checked against the schemas and defaulted; the files it reads."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from generator.build import schemas as validate
from generator.build.components import SCHEMA_FILE
from generator.build.stages import SiteBuild
from generator.core import errors

if TYPE_CHECKING:
    from generator.build.pipeline import Context


def check(ctx: Context, build: SiteBuild) -> SiteBuild:
    """Defaulted parameters and the site's inputs; ProblemReport with every schema problem."""
    problems = validate.check(ctx.schemas, build.target, ctx.components)
    if problems:
        raise errors.ProblemReport(problems)
    params = validate.with_defaults(ctx.schemas, build.params)
    return replace(build, params=params, inputs=(*build.inputs, *_inputs(ctx, build, params)))


def _inputs(ctx: Context, build: SiteBuild, params: dict[str, Any]) -> tuple[str, ...]:
    """The target's files, the schemas and every file of the components the site uses.

    The schema.json of each component it uses, and of each ``site.<name>`` key (a site
    component's parameters), is listed even when absent: creating one changes what the site may
    hold (the cache records an absent file as such)."""
    used = set(params["site"].get("components", []))
    used |= {s["component"] for s in params["services"].values()}
    files = [*build.target.inputs, *ctx.schemas.files]
    for component in sorted(used):
        files += [
            p.relative_to(ctx.root).as_posix() for p in ctx.renderer.component_files(component)
        ]
    files += [f"components/{name}/{SCHEMA_FILE}" for name in sorted(used | set(params["site"]))]
    return tuple(dict.fromkeys(files))
