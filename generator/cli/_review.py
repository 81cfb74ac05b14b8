"""Merge-request review: ``gen diff``."""

from __future__ import annotations

import time
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from generator.cli import (
    LEGACY_FORMAT,
    ColorOption,
    QuietOption,
    RootOption,
    TargetOption,
    VerboseOption,
    app,
    output,
    output_format,
    print_json,
    progress,
    run_json,
    settled,
)


class DiffFormat(str, Enum):
    text = "text"
    markdown = "markdown"
    json = "json"


def _complete_refs(ctx: typer.Context, incomplete: str) -> list[str]:
    from generator.deliver.git import tree

    return [r for r in tree.refs(Path(ctx.params.get("root") or ".")) if r.startswith(incomplete)]


@app.command("diff")
def diff_(
    root: RootOption = Path("."),
    base: Annotated[
        str | None,
        typer.Option(
            "--base",
            "-b",
            envvar="GEN_DIFF_BASE",
            autocompletion=_complete_refs,
            help="Commit to compare with (default: the merge base of HEAD with main, origin/main, "
            "master or origin/master, else HEAD).",
            show_default=False,
            metavar="REF",
        ),
    ] = None,
    target: TargetOption = None,
    output_fmt: Annotated[
        DiffFormat | None,
        typer.Option(
            "--output",
            "-o",
            metavar="FORMAT",
            help="Output format: text (the default, for people), markdown (a merge-request "
            "comment) or json (for scripts).",
            show_default=False,
        ),
    ] = None,
    legacy_fmt: Annotated[DiffFormat | None, LEGACY_FORMAT] = None,
    worktree: Annotated[
        bool,
        typer.Option(
            "--worktree",
            help="Take compiled/ as it is on disk instead of compiling the inventory (fast; for CI "
            "after `gen compile --check` passed).",
        ),
    ] = False,
    jobs: Annotated[
        int,
        typer.Option("--jobs", "-j", min=0, help="Worker processes (0: one per CPU).", metavar="N"),
    ] = 0,
    no_cache: Annotated[
        bool,
        typer.Option(
            "--no-cache",
            help="Compile every site, even those the compile cache "
            "knows are up to date in compiled/.",
        ),
    ] = False,
    quiet: QuietOption = False,
    verbose: VerboseOption = 0,
    color: ColorOption = None,
) -> None:
    """Show which sites, objects and fields change, compared with compiled/ at a commit.

    The inventory is compiled in memory (compiled/ is not written) and compared,
    object by object, with compiled/ as committed at --base: objects added,
    removed or changed and, for each change, the fields with old and new values
    (a Secret's values are never shown). Exit status 0 if nothing differs, 1 if
    something does (or the inventory is invalid), 3 if gen could not tell (the
    base commit cannot be found, git failed). Examples:

    \b
      gen diff                          # against the merge base with main
      gen diff --base HEAD -t cn-east-1 # uncommitted inventory edits, one site
      gen diff -o markdown > diff.md    # a merge-request comment
      gen diff -o json | jq '.sites[].site'
      gen diff -q && echo "no change"
    """
    from generator.review import diff, report

    fmt = output_format(output_fmt, legacy_fmt, DiffFormat.text)
    out = output(quiet, verbose, color)
    started = time.perf_counter()
    with progress("compiling", out) as tick:
        options = diff.Options(root, base, tuple(target or ()), worktree, jobs, not no_cache, tick)
        outcome = settled(lambda: diff.run(options))
    result = run_json(outcome, fmt is DiffFormat.json)
    for warning in result.warnings:
        out.echo(f"warning: {warning}", err=True, role="warning")
    if not out.quiet:
        if fmt is DiffFormat.json:
            print_json(report.as_json(result))
        elif fmt is DiffFormat.markdown:
            typer.echo(report.markdown(result), nl=False)
        else:
            out.echo(report.text(result, verbose=out.verbose, paint=out.paint()), nl=False)
    if out.verbose:
        out.echo(
            f"{result.compiled} site(s) compiled, {result.reused} read from compiled/ "
            f"in {time.perf_counter() - started:.2f}s",
            err=True,
            role="dim",
        )
    raise typer.Exit(1 if result.diff.differs else 0)
