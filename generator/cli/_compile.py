"""Commands of the compile core: compile, validate, inventory, targets."""

from __future__ import annotations

import json
import time
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from generator.cli import (
    LEGACY_FORMAT,
    ColorOption,
    LegacyFormatOption,
    Output,
    OutputOption,
    QuietOption,
    RootOption,
    TargetOption,
    TextOrJson,
    VerboseOption,
    app,
    complete_targets,
    output,
    output_format,
    print_json,
    progress,
    run,
    run_json,
    settled,
)

if TYPE_CHECKING:
    from generator.build import pipeline
    from generator.core.errors import Problem


class Format(str, Enum):
    yaml = "yaml"
    json = "json"


@app.command("compile")
def compile_(
    root: RootOption = Path("."),
    target: TargetOption = None,
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Write nothing (not compiled/, not .gen-cache/): compare in memory; exit 1 "
            "listing every file that differs.",
        ),
    ] = False,
    fail_fast: Annotated[
        bool,
        typer.Option(
            "--fail-fast", help="With --check: stop at the first site that differs (exit 1)."
        ),
    ] = False,
    shard: Annotated[
        str | None,
        typer.Option(
            "--shard",
            help="Compile (or check) only shard I of N: the sites whose name hashes to I "
            "(stable when other sites come and go). For CI fan-out: "
            "--shard $CI_NODE_INDEX/$CI_NODE_TOTAL.",
            metavar="I/N",
        ),
    ] = None,
    jobs: Annotated[
        int,
        typer.Option("--jobs", "-j", min=0, help="Worker processes (0: one per CPU).", metavar="N"),
    ] = 0,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Recompile every site even if unchanged.")
    ] = False,
    output_fmt: OutputOption = None,
    legacy_fmt: LegacyFormatOption = None,
    quiet: QuietOption = False,
    verbose: VerboseOption = 0,
    color: ColorOption = None,
) -> None:
    """Validate the inventory and write compiled/<site>/ for every target (or the named ones).

    Nothing is written when any site has a problem; unchanged sites are
    skipped. A progress bar shows on a terminal. Examples:

    \b
      gen compile                      # all targets
      gen compile -t cn-east-1 -v      # one site, listing the files written
      gen compile --check              # CI: is compiled/ up to date? (exit 1 if not)
      gen compile --check -o json      # the same for scripts
      gen compile --check --fail-fast  # stop at the first site that differs
      gen compile --check --shard 2/4  # the second quarter of the sites (CI parallel jobs)
    """
    from generator.build import pipeline

    fmt = output_format(output_fmt, legacy_fmt, TextOrJson.text)
    out = output(quiet, verbose, color)
    if fail_fast and not check:
        raise typer.BadParameter("only applies with --check", param_hint="'--fail-fast'")
    shard_of = _parse_shard(shard) if shard is not None else None
    started = time.perf_counter()
    with progress("compiling", out) as tick:
        options = pipeline.Options(
            root,
            tuple(target or ()),
            check,
            jobs,
            not no_cache,
            tick,
            fail_fast=fail_fast,
            shard=shard_of,
        )
        outcome = settled(lambda: pipeline.run(options))
    result = run_json(outcome, fmt is TextOrJson.json)
    seconds = time.perf_counter() - started
    for warning in result.warnings:
        out.echo(f"warning: {warning}", err=True, role="warning")
    if fmt is TextOrJson.json:
        print_json(_compile_json(result, check, seconds, shard_of))
        if check and not result.up_to_date:
            raise typer.Exit(1)
        return
    if shard_of is not None and not result.selected and not out.quiet:
        out.echo(f"shard {shard_of[0]}/{shard_of[1]} has no sites", role="ok")
    if check:
        _report_check(result, out)
    else:
        _report_compile(result, out, seconds)
    if check and not result.up_to_date:
        raise typer.Exit(1)


def _parse_shard(value: str) -> tuple[int, int]:
    """``I/N`` -> (I, N); a usage error (exit 2) naming the option and the value otherwise."""
    index, slash, total = value.partition("/")
    try:
        i, n = int(index), int(total)
    except ValueError:
        i = n = 0
    if not slash or n < 1 or not 1 <= i <= n:
        raise typer.BadParameter(
            f"{value!r} is not I/N with 1 <= I <= N (e.g. 2/4, or "
            "$CI_NODE_INDEX/$CI_NODE_TOTAL in a GitLab parallel job)",
            param_hint="'--shard'",
        )
    return i, n


def _report_check(result: pipeline.Result, out: Output) -> None:
    if result.up_to_date:
        if not out.quiet:
            out.echo("compiled/ is up to date", role="ok")
        return
    out.echo("compiled/ is not what `gen compile` produces:", err=True, role="error")
    for line in result.plan.paths():
        out.echo(f"  {line}", err=True, role=_ROLES[line[0]])
    if result.unchecked:
        out.echo(
            f"stopped at the first difference (--fail-fast); {len(result.unchecked)} site(s) "
            "not checked",
            err=True,
        )
    out.echo("run `gen compile` and commit compiled/ (`gen diff` shows what changes)", err=True)


_ROLES = {"+": "added", "-": "removed", "~": "changed"}


def _report_compile(result: pipeline.Result, out: Output, seconds: float) -> None:
    if out.verbose:
        for line in result.plan.paths():
            out.echo(f"  {line}", role=_ROLES[line[0]])
    if not out.quiet:
        out.echo(
            f"compiled {len(result.compiled)} site(s), {len(result.skipped)} unchanged, "
            f"{len(result.plan.paths())} file(s) changed in {seconds:.2f}s"
        )


def _compile_json(
    result: pipeline.Result, check: bool, seconds: float, shard: tuple[int, int] | None
) -> dict[str, Any]:
    changes = [
        {"op": {"+": "added", "-": "removed", "~": "changed"}[line[0]], "path": line[2:]}
        for line in result.plan.paths()
    ]
    return {
        "ok": not check or result.up_to_date,
        "check": check,
        "up_to_date": result.up_to_date,
        "compiled": list(result.compiled),
        "unchanged": list(result.skipped),
        "changes": changes,
        "warnings": list(result.warnings),
        "unchecked": list(result.unchecked),
        "shard": f"{shard[0]}/{shard[1]}" if shard else None,
        "sites": result.selected,
        "seconds": round(seconds, 3),
    }


@app.command()
def validate(
    root: RootOption = Path("."),
    target: TargetOption = None,
    output_fmt: OutputOption = None,
    legacy_fmt: LegacyFormatOption = None,
    quiet: QuietOption = False,
    verbose: VerboseOption = 0,
    color: ColorOption = None,
) -> None:
    """Check every target against schemas/ and components/*/schema.json; print every problem.

    Each problem is printed as `file:line:col  $.json.path  message`, pointing
    at the class or target that set the value; exit status 1 if there is any.
    Examples:

    \b
      gen validate
      gen validate -t cn-east-1
      gen validate -o json | jq '.problems[] | .file'
    """
    from generator.build import schemas as validation
    from generator.core import errors

    fmt = output_format(output_fmt, legacy_fmt, TextOrJson.text)
    out = output(quiet, verbose, color)

    def check() -> tuple[list[str], list[Problem]]:
        names, problems, warnings = _problems_per_target(root, tuple(target or ()))
        if problems:
            summary = f"{len(problems)} of {len(names)} target(s) invalid"
            raise errors.ProblemReport(validation.dedupe(problems), summary)
        return names, warnings

    names, warnings = run_json(check, fmt is TextOrJson.json)
    if fmt is TextOrJson.json:
        print_json(
            {
                "ok": True,
                "summary": f"{len(names)} target(s) valid",
                "problems": [],
                "warnings": [w.format() for w in warnings],
                "targets": names,
            }
        )
        return
    for warning in warnings:
        out.echo(f"warning: {warning.format()}", err=True, role="warning")
    if out.verbose:
        for name in names:
            out.echo(f"  {name}: valid", role="ok")
    if not out.quiet:
        out.echo(f"{len(names)} target(s) valid", role="ok")


def _problems_per_target(
    root: Path, wanted: tuple[str, ...]
) -> tuple[list[str], dict[str, list[Problem]], list[Problem]]:
    """Every target's name, the problems of each invalid one, and the inventory's warnings
    (what Kapitan accepts but is likely a mistake), each once."""
    from generator.build import pipeline
    from generator.build import schemas as validation
    from generator.core import errors

    ctx = pipeline.Context.create(root)
    names = pipeline.select(ctx.inv, wanted)
    problems = {}
    warnings: set[Problem] = set()
    for name in names:
        try:
            built = ctx.inv.target(name)
            warnings.update(built.warnings)
            found = validation.check(ctx.schemas, built, ctx.components)
        except errors.ProblemReport as e:
            found = e.problems
        if found:
            problems[name] = found
    return names, problems, sorted(warnings, key=errors.problem_key)


@app.command()
def inventory(
    target: Annotated[
        str | None,
        typer.Option(
            "--target",
            "-t",
            help="The target to print (default: every target, by name).",
            autocompletion=complete_targets,
            metavar="SITE",
        ),
    ] = None,
    root: RootOption = Path("."),
    output_fmt: Annotated[
        Format | None,
        typer.Option(
            "--output",
            "-o",
            metavar="FORMAT",
            help="Output format: yaml (the default) or json.",
            show_default=False,
        ),
    ] = None,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict",
            help="Warnings are errors: YAML 1.1-only scalars, duplicate keys, unknown top-level "
            "keys, values rendered into strings (also GEN_INVENTORY_STRICT=1).",
        ),
    ] = False,
    legacy_fmt: Annotated[Format | None, LEGACY_FORMAT] = None,
) -> None:
    """Print targets' merged parameters, references resolved (like `kapitan inventory`).

    With -t, one target as {parameters: ...}; without, every target as {NAME: {parameters: ...}}.
    Warnings (what Kapitan accepts but is likely a mistake) go to stderr, each once, located.

    Examples:

    \b
      gen inventory -t cn-east-1
      gen inventory -t cn-east-1 -o json | jq .parameters.services
      gen -C ../other-project inventory > all.yml
    """
    fmt = output_format(output_fmt, legacy_fmt, Format.yaml)
    from generator.build import inventory as inv
    from generator.core import errors

    def build() -> tuple[dict[str, Any], list[Problem]]:
        settings = inv.settings_for(root, strict=True if strict else None)
        sources = inv.Inventory(root, settings)
        if target is not None:
            one = sources.target(target)
            return {"parameters": one.parameters}, list(one.warnings)
        out: dict[str, Any] = {}
        warnings: set[Problem] = set()
        for name in sources.target_files():
            found = sources.target(name)
            out[name] = {"parameters": found.parameters}
            warnings.update(found.warnings)
        return out, sorted(warnings, key=errors.problem_key)

    data, warnings = run(build)
    say = output()
    for warning in warnings:
        say.echo(f"warning: {warning.format()}", err=True, role="warning")
    if fmt is Format.json:
        typer.echo(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        from generator.core import yamlio

        typer.echo(yamlio.dump(data), nl=False)


@app.command()
def targets(
    root: RootOption = Path("."),
    output_fmt: OutputOption = None,
    legacy_fmt: LegacyFormatOption = None,
) -> None:
    """List the targets (sites) of the inventory, one per line.

    Examples:

    \b
      gen targets
      gen targets -o json      # [{"name": ..., "file": ...}, ...]
    """
    fmt = output_format(output_fmt, legacy_fmt, TextOrJson.text)
    from generator.build import inventory as inv

    found = run(lambda: inv.Inventory(root, inv.settings_for(root)).target_files())
    if fmt is TextOrJson.json:
        print_json(
            [
                {"name": name, "file": path.relative_to(root).as_posix()}
                for name, path in found.items()
            ]
        )
        return
    for name in found:
        typer.echo(name)
