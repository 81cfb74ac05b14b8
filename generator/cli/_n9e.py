"""``gen n9e``: push a site's compiled monitoring (compiled/<site>/n9e/) into its Nightingale."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from generator.cli import LEGACY_FORMAT, RootOption, app, output_format, run

if TYPE_CHECKING:
    from generator.run.n9e.reconcile import Result

n9e_app = typer.Typer(
    name="n9e",
    help="Nightingale (n9e): apply a site's compiled alert rules and notifications.",
    no_args_is_help=True,
)
app.add_typer(n9e_app)


class OutputFormat(str, Enum):
    text = "text"
    json = "json"


@n9e_app.command("apply")
def apply(
    target: Annotated[
        str,
        typer.Option(
            "--target", "-t", help="The site whose compiled/<site>/n9e/ to apply.", metavar="SITE"
        ),
    ],
    url: Annotated[
        str,
        typer.Option(
            "--url",
            envvar="GEN_N9E_URL",
            help="Base URL of the site's n9e, e.g. http://10.86.3.30:17000.",
            metavar="URL",
        ),
    ],
    root: RootOption = Path("."),
    user: Annotated[
        str,
        typer.Option(
            "--user", envvar="GEN_N9E_USER", help="n9e user to log in as.", metavar="USER"
        ),
    ] = "",
    password: Annotated[
        str,
        typer.Option(
            "--password",
            envvar="GEN_N9E_PASSWORD",
            show_default=False,
            help="Its password (better: the environment variable).",
            metavar="PASSWORD",
        ),
    ] = "",
    token: Annotated[
        str,
        typer.Option(
            "--token",
            envvar="GEN_N9E_TOKEN",
            show_default=False,
            help="An access token instead of user and password.",
            metavar="TOKEN",
        ),
    ] = "",
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Change nothing; print what would change.")
    ] = False,
    output_fmt: Annotated[
        OutputFormat | None,
        typer.Option(
            "--output",
            "-o",
            metavar="FORMAT",
            help="Output format: text (the default) or json.",
            show_default=False,
        ),
    ] = None,
    legacy_fmt: Annotated[OutputFormat | None, LEGACY_FORMAT] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", min=1, help="Seconds per request.", metavar="SECONDS")
    ] = 15.0,
    allow_missing_datasource: Annotated[
        bool,
        typer.Option(
            "--allow-missing-datasource",
            help="Apply rules whose datasource matches none on the server (they never evaluate).",
        ),
    ] = False,
) -> None:
    """Make the site's n9e hold exactly the compiled rules, channels, templates and notify rules.

    Business group, team, channels, templates and the notify rule are found by name or created;
    alert rules are upserted and gen's rules that are no longer compiled are deleted. Rules gen did
    not create are never touched. A second run with nothing changed changes nothing. Exit status 1
    if the server rejects anything (each rejected rule is printed with the server's reason), or if
    a rule's datasource pattern matches no datasource on the server (nothing is changed then);
    3 if the server cannot be reached.

    \b
      GEN_N9E_USER=root GEN_N9E_PASSWORD=... gen n9e apply -t cn-east-1 --url http://10.86.3.30:17000
    """
    from generator.run.n9e import client, reconcile

    def push() -> reconcile.Result:
        intent = reconcile.load(root / "compiled" / target)
        api = client.Client(
            client.Settings(url, timeout), client.Credentials(user, password, token)
        )
        api.login()
        return reconcile.run(
            api, intent, dry_run=dry_run, allow_missing_datasource=allow_missing_datasource
        )

    fmt = output_format(output_fmt, legacy_fmt, OutputFormat.text)
    result = run(push)
    if fmt is OutputFormat.json:
        typer.echo(json.dumps({"site": target, **result.as_dict()}, indent=2))
    else:
        _print_text(target, url, result)
    if result.rejections:
        raise typer.Exit(1)


def _print_text(target: str, url: str, result: Result) -> None:
    for action in result.actions:
        typer.echo(f"  {action}")
    for warning in result.warnings:
        typer.echo(f"warning: {warning}", err=True)
    for rejection in result.rejections:
        typer.echo(f"rejected: {rejection}", err=True)
    counts = {
        verb: sum(1 for a in result.actions if a.verb == verb)
        for verb in ("create", "update", "delete")
    }
    summary = ", ".join(
        f"{n} to {verb}" if result.dry_run else f"{n} {verb}d" for verb, n in counts.items()
    )
    if not result.changed:
        typer.echo(f"n9e at {url} already holds {target}'s monitoring; nothing to do")
    else:
        typer.echo(f"{'dry run: ' if result.dry_run else ''}{target} at {url}: {summary}")
