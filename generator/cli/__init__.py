"""The ``gen`` command line: one short function per command; the only package that imports typer.

Commands live in one module per area (``_compile``: compile, validate, inventory, targets;
``_review``: diff; ...); each parses its options, calls one library function and maps the result to
an exit status. What every command shares lives here: ``run`` (errors to exit statuses), the
``--root``/``--target`` options, ``-q``/``-v``, colour, the progress bar and JSON problem reports.

Exit status: 0 success (no difference); 1 differences (``compile --check``, ``diff``) or invalid
input (a user error, a validation problem); 2 wrong usage; 3 an operational error, so gen could not
tell (git failed, a base commit cannot be found, a server cannot be reached, a file system error);
70 a bug in gen (with a hint to report it); 130 interrupted.
"""

from __future__ import annotations

import copy
import importlib
import json
import os
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from generator import __version__
from generator.cli import _coerce

_coerce.install()  # plain option values without importing pydantic (start-up time)

if TYPE_CHECKING:
    from generator.core.errors import Problem

EXIT_OK, EXIT_USER, EXIT_USAGE, EXIT_OPERATIONAL, EXIT_BUG, EXIT_INTERRUPTED = 0, 1, 2, 3, 70, 130
T = TypeVar("T")

COMPILE_EXTRA = {
    "jinja2": "jinja2",
    "ruamel": "ruamel.yaml",
    "jsonschema": "jsonschema",
    "referencing": "referencing",
    "fastjsonschema": "fastjsonschema",
    "kubernetes_validate": "kubernetes-validate",
}
"""Modules of the ``compile`` extra, by the distribution that provides them. A plain
``pip install gen-gitops`` (the agent's image) has none: the agent, publish and the ferry need
none of them, and every command imports them only when it compiles."""

EPILOG = (
    "Exit status: 0 success, nothing differs; 1 differences (compile --check, diff) or invalid "
    "input; 2 wrong usage; 3 gen could not tell (git failed, a commit cannot be found, a server "
    "cannot be reached, a file system error); 70 a bug in gen (it asks you to report it); "
    "130 interrupted.\n\n"
    "Colour is off when the output is not a terminal, when NO_COLOR is set, or with --color never. "
    "Shell completion: gen --install-completion. Every command takes -h.\n\n"
    "The merge-request workflow (edit, compile, diff, CI gate, review): docs/review.md."
)

app = typer.Typer(
    name="gen",
    help=(
        "Compile a Kapitan-style inventory of sites into plain Kubernetes manifests, GitOps-style."
    ),
    epilog=EPILOG,
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    # Plain help, like kubectl's: no boxes, no type labels such as <bool> next to flags.
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def complete_targets(ctx: typer.Context, incomplete: str) -> list[str]:
    """Target names under the --root given so far, as the inventory names them (composed names
    included; shell completion: never raises)."""
    from generator.build import inventory
    from generator.core import errors

    root = Path(ctx.params.get("root") or ".")
    try:
        names = inventory.Inventory(root, inventory.settings_for(root)).target_files()
    except (OSError, errors.GenError):
        return []
    return [n for n in names if n.startswith(incomplete)]


RootOption = Annotated[
    Path,
    typer.Option(
        "--root",
        "-C",
        help="Project root (holding inventory/, components/, schemas/, compiled/).",
        file_okay=False,
        resolve_path=True,
        metavar="DIR",
    ),
]
TargetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--target",
        "-t",
        help="Only this target (repeatable).",
        autocompletion=complete_targets,
        metavar="SITE",
    ),
]
QuietOption = Annotated[
    bool, typer.Option("--quiet", "-q", help="Print only problems (and what was asked for).")
]
VerboseOption = Annotated[
    int,
    typer.Option(
        "--verbose", "-v", count=True, help="Say more; repeat for more.", show_default=False
    ),
]


class Color(str, Enum):
    auto = "auto"
    always = "always"
    never = "never"


ColorOption = Annotated[
    Color | None,
    typer.Option(
        "--color",
        help="Colour: auto (a terminal without NO_COLOR), always or never.",
        show_default=False,
        metavar="WHEN",
    ),
]


class TextOrJson(str, Enum):
    text = "text"
    json = "json"


E = TypeVar("E", bound=Enum)

OutputOption = Annotated[
    TextOrJson | None,
    typer.Option(
        "--output",
        "-o",
        metavar="FORMAT",
        help="Output format: text (the default, for people) or json (for scripts).",
        show_default=False,
    ),
]
LEGACY_FORMAT = typer.Option("--format", "-f", hidden=True, show_default=False)
"""The old name of -o/--output, hidden from help and kept working for one release (kubectl, helm,
flux and argocd spell the output format -o; -f names a file there)."""
LegacyFormatOption = Annotated[TextOrJson | None, LEGACY_FORMAT]


def output_format(given: E | None, legacy: E | None, default: E) -> E:
    """The format asked for with -o/--output, else with the deprecated -f/--format (saying so on
    stderr), else ``default``."""
    if legacy is not None:
        typer.echo(
            "gen: -f/--format is deprecated and will be removed in a later release; "
            "use -o/--output",
            err=True,
        )
    if given is not None:
        return given
    return legacy if legacy is not None else default


_STYLES: dict[str, dict[str, Any]] = {
    "added": {"fg": "green"},
    "removed": {"fg": "red"},
    "changed": {"fg": "yellow"},
    "site": {"bold": True},
    "file": {"fg": "cyan"},
    "dim": {"dim": True},
    "error": {"fg": "red", "bold": True},
    "warning": {"fg": "yellow"},
    "ok": {"fg": "green"},
}


@dataclass(frozen=True)
class Output:
    """How much to print and whether in colour; set by the global options, refined per command."""

    level: int = 0
    """-1 quiet, 0 normal, 1 or more verbose."""
    color: Color = Color.auto

    @property
    def quiet(self) -> bool:
        return self.level < 0

    @property
    def verbose(self) -> bool:
        return self.level > 0

    def colored(self, err: bool = False) -> bool:
        """Colour on stdout (or stderr): forced, refused, or only on a terminal without NO_COLOR."""
        if self.color is not Color.auto:
            return self.color is Color.always
        stream = sys.stderr if err else sys.stdout
        return (
            not os.environ.get("NO_COLOR")
            and os.environ.get("TERM") != "dumb"
            and bool(getattr(stream, "isatty", lambda: False)())
        )

    def paint(self, err: bool = False) -> Callable[[str, str], str]:
        """``paint(text, role)``: styled text if colour is on for that stream,
        else the text as is."""
        if not self.colored(err):
            return lambda text, role: text
        return lambda text, role: typer.style(text, **_STYLES.get(role, {}))

    def echo(self, text: str, err: bool = False, role: str = "", nl: bool = True) -> None:
        """Print (to stderr with ``err``), in the role's colour when colour is on."""
        colored = self.colored(err)
        if role and colored:
            text = typer.style(text, **_STYLES.get(role, {}))
        typer.echo(text, err=err, nl=nl, color=colored)


def output(quiet: bool = False, verbose: int = 0, color: Color | None = None) -> Output:
    """The invocation's Output (global -q/-v/--color),
    with a command's own options applied on top."""
    ctx = _current_context()
    base = ctx.find_root().obj if ctx is not None else None
    if not isinstance(base, Output):
        base = Output()
    level = -1 if quiet else base.level + verbose
    return Output(level, color or base.color)


def _current_context() -> Any:
    """The running command's context, from the click that typer runs on
    (newer typer vendors its own)."""
    for name in ("typer._click.globals", "click.globals"):
        try:
            ctx = importlib.import_module(name).get_current_context(silent=True)
        except ImportError:
            continue
        if ctx is not None:
            return ctx
    return None


def _version(value: bool) -> None:
    if value:
        typer.echo(f"gen {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    ctx: typer.Context,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
    quiet: QuietOption = False,
    verbose: VerboseOption = 0,
    color: ColorOption = None,
    chdir: Annotated[
        Path | None,
        typer.Option(
            "--root",
            "-C",
            help="Run as if gen was started in DIR (as git -C); commands also take --root.",
            file_okay=False,
            exists=True,
            metavar="DIR",
        ),
    ] = None,
) -> None:
    """Compile a Kapitan-style inventory of sites into plain Kubernetes manifests, GitOps-style.

    The merge-request workflow: edit inventory/, run `gen compile`, review `gen diff`, commit both;
    CI runs `gen validate`, `gen compile --check` and posts `gen diff --output markdown`.
    """
    ctx.obj = Output(-1 if quiet else verbose, color or Color.auto)
    if chdir is not None:
        os.chdir(chdir)


def run(action: Callable[[], T]) -> T:
    """Run a library call; user errors exit 1 with their message, operational errors (and the
    file system's) exit 3, anything else is a bug (exit 70).

    With -v a user error also shows what caused it (the git or OS error underneath).
    """
    from generator.core import errors

    try:
        return action()
    except errors.GenError as e:
        _say_error(e)
        raise typer.Exit(exit_status(e)) from None
    except OSError as e:
        # Not a bug in gen and not the user's input: the disk, permissions or a device failed.
        typer.echo(f"gen: {e}", err=True)
        raise typer.Exit(EXIT_OPERATIONAL) from None
    except KeyboardInterrupt:
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except Exception as e:
        if isinstance(e, ModuleNotFoundError) and missing_compiler(e):
            _say_missing_compiler(e)
            raise typer.Exit(EXIT_USER) from None
        traceback.print_exc(file=sys.stderr)
        typer.echo(
            f"gen {__version__}: internal error (a bug). "
            "Please report it with the command you ran and "
            "the traceback above.",
            err=True,
        )
        raise typer.Exit(EXIT_BUG) from None


def exit_status(error: Exception) -> int:
    """3 when gen could not tell (an OperationalError), else 1: the input is at fault."""
    from generator.core import errors

    return EXIT_OPERATIONAL if isinstance(error, errors.OperationalError) else EXIT_USER


def _say_error(e: Exception) -> None:
    out = output()
    out.echo(f"{e}" if str(e) else type(e).__name__, err=True)
    if out.verbose:
        for cause in _causes(e):
            out.echo(f"  caused by {type(cause).__name__}: {cause}", err=True, role="dim")


def missing_compiler(error: ModuleNotFoundError) -> str | None:
    """The distribution of the ``compile`` extra whose absence ``error`` reports, if it is one."""
    return COMPILE_EXTRA.get((error.name or "").split(".")[0])


def _say_missing_compiler(error: ModuleNotFoundError) -> None:
    typer.echo(
        f"gen: this command compiles, and the compiler is not installed ({missing_compiler(error)} "
        "is missing): pip install 'gen-gitops[compile]'",
        err=True,
    )


def _causes(e: BaseException) -> Iterator[BaseException]:
    cause = e.__cause__
    while cause is not None:
        yield cause
        cause = cause.__cause__


def run_json(action: Callable[[], T], as_json: bool) -> T:
    """``run``; with ``as_json`` a user error is printed as JSON on stdout (then exit 1, or 3 for
    an operational error) for scripts: ``{"ok": false, "summary": ..., "problems": [...]}`` (no
    problems for an error that has no location)."""
    from generator.core import errors

    if not as_json:
        return run(action)

    def attempt() -> T | errors.GenError:
        try:
            return action()
        except errors.GenError as e:
            return e

    result = run(attempt)
    if isinstance(result, errors.GenError):
        report = (
            result
            if isinstance(result, errors.ProblemReport)
            else errors.ProblemReport([], str(result))
        )
        print_json(
            {"ok": False, "summary": report.summary, "problems": problems_json(report.problems)}
        )
        raise typer.Exit(exit_status(result))
    return result


def problems_json(problems: list[Problem]) -> list[dict[str, Any]]:
    """Problems as objects: file, line, column (0 when unknown), path, message; in file order."""
    out = [
        {
            "file": p.location.file if p.location else None,
            "line": p.location.line if p.location else 0,
            "column": p.location.column if p.location else 0,
            "path": p.path or None,
            "message": p.message,
        }
        for p in problems
    ]
    return sorted(
        out, key=lambda d: (d["file"] or "", d["line"], d["column"], d["path"] or "", d["message"])
    )


def print_json(data: Any) -> None:
    """Indented JSON on stdout, keys in the order given, non-ASCII kept."""
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


def settled(action: Callable[[], T]) -> Callable[[], T]:
    """Run ``action`` now; return a call that gives its result, or raises its error again.

    For work under the progress bar: the bar is closed before ``run`` prints an error, so the
    first problem starts on a line of its own instead of after the bar."""
    try:
        value = action()
    except (Exception, KeyboardInterrupt) as e:
        error = e

        def again() -> T:
            raise error

        return again
    return lambda: value


@contextmanager
def progress(label: str, out: Output) -> Iterator[Callable[[int, int], None] | None]:
    """A progress bar on stderr for a long compile, or None (quiet, or stderr is not a terminal).

    The bar is erased when the block ends: print nothing inside it (run the work with ``settled``
    and report its outcome after the block)."""
    if out.quiet or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True, no_color=not out.colored(err=True))
    with Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=None)

        def tick(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield tick


def main() -> None:
    """Console-script entry point ``gen``."""
    _without_compiler_is_one_line(_for_command(app, sys.argv[1:]))


def _for_command(full: typer.Typer, args: list[str]) -> typer.Typer:
    """``full``, or, when the command line starts with one of its plain commands (``gen compile
    ...``), a copy holding that command alone: typer builds the options of every command from its
    signature on each start (~0.05 s for gen's commands), and only the one that runs is used. Its
    help, errors and behaviour are the same; anything else (no command, an option first, a group
    such as ``gen secrets``, shell completion) gets the whole app."""
    if not args or any(k.startswith("_") and k.endswith("_COMPLETE") for k in os.environ):
        return full
    for info in full.registered_commands:
        callback = info.callback
        name = info.name or (callback and typer.main.get_command_name(callback.__name__))
        if name == args[0]:
            slim = copy.copy(full)
            slim.registered_commands = [info]
            slim.registered_groups = []
            return slim
    return full


def agent_main() -> None:
    """Console-script entry point ``gen-agent``: only the agent's commands (``gen-agent run`` is
    ``gen agent run``). Importing it loads no compiler library (jinja2, ruamel, jsonschema)."""
    from generator.cli import _agent as agent_commands

    _without_compiler_is_one_line(lambda: agent_commands.agent_app(prog_name="gen-agent"))


def _without_compiler_is_one_line(start: Callable[[], Any]) -> None:
    """Run the CLI; a command that compiles without the ``compile`` extra says what to install."""
    try:
        start()
    except ModuleNotFoundError as e:
        if missing_compiler(e) is None:
            raise
        _say_missing_compiler(e)
        sys.exit(EXIT_USER)


# Last: the command modules import this one and register their commands on ``app``.
from generator.cli import (  # noqa: E402
    _agent,  # noqa: F401
    _compile,  # noqa: F401  (registers the commands)
    _ferry,  # noqa: F401
    _n9e,  # noqa: F401
    _releases,  # noqa: F401
    _review,  # noqa: F401
    _secrets,  # noqa: F401
)
