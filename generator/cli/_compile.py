"""The ``gen`` command line: one short function per command; the only module that imports typer.

Exit status: 0 success; 1 a user error, a validation problem or (with --check) differences;
2 wrong usage; 70 a bug in gen (with a hint to report it).
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from generator import __version__

app = typer.Typer(
    name="gen",
    help="Compile a Kapitan-style inventory of sites into plain Kubernetes manifests, GitOps-style.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

EXIT_BUG = 70

RootOption = Annotated[
    Path, typer.Option("--root", "-C", help="Project root (holding inventory/, components/, schemas/, compiled/).",
                       file_okay=False, resolve_path=True)]
TargetOption = Annotated[list[str] | None, typer.Option("--target", "-t", help="Only this target (repeatable).")]


class Format(str, Enum):
    yaml = "yaml"
    json = "json"


def _version(value: bool) -> None:
    if value:
        typer.echo(f"gen {__version__}")
        raise typer.Exit()


@app.callback()
def _main(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="Print the version and exit.")] = False) -> None:
    """Compile a Kapitan-style inventory of sites into plain Kubernetes manifests, GitOps-style."""


@app.command("compile")
def compile_(
    root: RootOption = Path("."),
    target: TargetOption = None,
    check: Annotated[bool, typer.Option("--check", help="Write nothing; exit 1 listing the files that differ.")] = False,
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=0, help="Worker processes (0: one per CPU).")] = 0,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Recompile every site even if unchanged.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only problems.")] = False,
) -> None:
    """Validate the inventory and write compiled/<site>/ for every target (or the named ones).

    Nothing is written when any site has a problem. Examples:

      gen compile                 # all targets
      gen compile -t cn-east-1    # one site
      gen compile --check         # CI: is compiled/ up to date?
    """
    from generator import compile as pipeline

    started = time.perf_counter()
    options = pipeline.Options(root, tuple(target or ()), check, jobs, not no_cache)
    result = _run(lambda: pipeline.run(options))
    for warning in result.warnings:
        typer.echo(f"warning: {warning}", err=True)
    if check:
        if result.up_to_date:
            if not quiet:
                typer.echo("compiled/ is up to date")
            return
        typer.echo("compiled/ is not what `gen compile` produces:", err=True)
        for line in result.plan.paths():
            typer.echo(f"  {line}", err=True)
        typer.echo("run `gen compile` and commit compiled/", err=True)
        raise typer.Exit(1)
    if not quiet:
        changed = len(result.plan.paths())
        typer.echo(f"compiled {len(result.compiled)} site(s), {len(result.skipped)} unchanged, "
                   f"{changed} file(s) changed in {time.perf_counter() - started:.2f}s")


@app.command()
def validate(root: RootOption = Path("."), target: TargetOption = None) -> None:
    """Check every target's merged parameters against schemas/ and print every problem at once.

    Each problem is printed as `file:line:col  $.json.path  message`, pointing at the class or target
    that set the value. Exit status 1 if there is any.
    """
    from generator import compile as pipeline
    from generator import validate as validation
    from generator.core import errors

    def check() -> int:
        ctx = pipeline.Context.create(root)
        names = pipeline.select(ctx.inv, target or ())
        problems = {}
        for name in names:
            try:
                found = validation.check(ctx.schemas, ctx.inv.target(name), ctx.components)
            except errors.ProblemReport as e:
                found = e.problems
            if found:
                problems[name] = found
        if problems:
            raise errors.ProblemReport(validation.dedupe(problems), f"{len(problems)} of {len(names)} target(s) invalid")
        return len(names)

    count = _run(check)
    typer.echo(f"{count} target(s) valid")


@app.command()
def inventory(
    target: Annotated[str, typer.Option("--target", "-t", help="The target to print.")],
    root: RootOption = Path("."),
    fmt: Annotated[Format, typer.Option("--format", "-f", help="Output format.")] = Format.yaml,
) -> None:
    """Print a target's merged parameters, references resolved (like `kapitan inventory -t X`)."""
    from generator import inventory as inv
    from generator.core import yamlio

    params = _run(lambda: inv.Inventory(root, inv.settings_for(root)).target(target).parameters)
    if fmt is Format.json:
        typer.echo(json.dumps({"parameters": params}, indent=2, ensure_ascii=False))
    else:
        typer.echo(yamlio.dump({"parameters": params}), nl=False)


@app.command()
def targets(root: RootOption = Path(".")) -> None:
    """List the targets (sites) of the inventory."""
    from generator import inventory as inv

    for name in _run(lambda: list(inv.Inventory(root).target_files())):
        typer.echo(name)


def _run(action):  # type: ignore[no-untyped-def]
    """Run a library call; user errors exit 1 with their message, anything else is a bug (exit 70)."""
    from generator.core import errors

    try:
        return action()
    except errors.GenError as e:
        typer.echo(f"{e}" if str(e) else type(e).__name__, err=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    except Exception:  # noqa: BLE001 - the one place bugs are turned into an exit status
        traceback.print_exc(file=sys.stderr)
        typer.echo(f"gen {__version__}: internal error (a bug). Please report it with the traceback above.", err=True)
        raise typer.Exit(EXIT_BUG) from None


def main() -> None:
    """Console-script entry point."""
    app()
