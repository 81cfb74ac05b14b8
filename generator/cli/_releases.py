"""Releases outside the gatekeeper: ``gen releases``, ``gen rollback`` and ``gen fleet``
(docs/releases.md)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from generator.cli import (
    OutputOption,
    TextOrJson,
    app,
    print_json,
    run_json,
)
from generator.cli._ferry import DeployRepoOption

SiteOption = Annotated[
    str, typer.Option("--target", "-t", help="The site.", metavar="SITE", show_default=False)
]


@app.command("releases")
def releases_(
    target: SiteOption,
    deploy_repo: DeployRepoOption,
    output_fmt: OutputOption = None,
) -> None:
    """List a site's releases, newest first: number, name, time, source commit, summary.

    \b
      gen releases -t cn-east-1 --deploy-repo ../deploy.git
      gen releases -t cn-east-1 --deploy-repo ../deploy.git -o json | jq '.[0].release'
    """
    from generator.core.errors import GenError
    from generator.deliver import publish, releases
    from generator.deliver.git.repo import open_repo

    as_json = output_fmt is TextOrJson.json

    def read() -> list[releases.Info]:
        found = releases.history(open_repo(deploy_repo), publish.branch(target))
        if not found:
            raise GenError(
                f"{deploy_repo}: no deploy branch for {target}; run `gen publish -t {target}`"
            )
        return found

    found = run_json(read, as_json)
    if as_json:
        print_json([r.as_json() for r in found])
        return
    typer.echo(f"{'release':<12} {'time':<20}  {'source':<12}  summary")
    for r in found:
        back = f"rollback to {r.rollback_to}: " if r.rollback_to else ""
        source = r.source_commit[:12] if r.source_commit not in ("", "none") else "-"
        typer.echo(
            f"{r.label:<12} {releases.format_time(r.time):<20}  {source:<12}  {back}{r.summary}"
        )


@app.command("rollback")
def rollback_(
    target: SiteOption,
    to: Annotated[int, typer.Option("--to", min=1, help="The release to restore.", metavar="N")],
    deploy_repo: DeployRepoOption,
    signing_key: Annotated[
        Path | None,
        typer.Option(
            "--signing-key",
            envvar="GEN_SIGNING_KEY",
            help="SSH private key that signs (or its .pub if the key is in ssh-agent); "
            "not needed with --dry-run.",
            metavar="FILE",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would change; write nothing.")
    ] = False,
    name: Annotated[
        str, typer.Option("--name", help="Name of the rollback release.", metavar="NAME")
    ] = "",
    author: Annotated[
        str | None,
        typer.Option(
            "--author",
            envvar="GEN_PUBLISH_AUTHOR",
            help="'Name <email>' of the commit (default: git's user).",
            metavar="AUTHOR",
        ),
    ] = None,
    output_fmt: OutputOption = None,
) -> None:
    """Publish a new signed release of a site whose tree is release N's (history only moves on).

    Shows what changes first (the objects and fields, as gen diff does; a Secret's values are
    never shown). Refuses an unknown N, and a release whose compiled output this gen cannot
    apply (its index.json's layout format, or files that disagree with it). The new release
    goes through ferry and agent like any other. Examples:

    \b
      gen rollback -t cn-east-1 --to 3 --deploy-repo ../deploy.git --dry-run
      gen rollback -t cn-east-1 --to 3 --deploy-repo ../deploy.git --signing-key KEY
    """
    from generator.core.errors import GenError
    from generator.deliver import rollback
    from generator.deliver.git.plumbing import Identity
    from generator.review import report, summary

    as_json = output_fmt is TextOrJson.json
    planned = run_json(lambda: rollback.plan(deploy_repo, target, to), as_json)
    current, restored = planned.current, planned.target
    shown = summary.rollback_diff(
        target,
        planned.old,
        planned.new,
        f"release {current.label} ({planned.ref})",
        current.commit,
        f"release {restored.label} ({restored.commit[:12]})",
    )
    if not as_json:
        typer.echo(report.text(shown), nl=False)
    done: rollback.Done | None = None
    if not dry_run:

        def write() -> rollback.Done:
            if signing_key is None:
                raise GenError("--signing-key (or GEN_SIGNING_KEY) is needed to publish")
            identity = Identity.parse(author) if author else None
            settings = rollback.Settings(signing_key, identity, name, summary.summarize)
            return rollback.publish_plan(deploy_repo, planned, settings)

        done = run_json(write, as_json)
    if as_json:
        print_json(
            {
                "site": target,
                "release": planned.number if planned.changed else None,
                "rollback_to": restored.number,
                "current": current.number,
                "dry_run": dry_run,
                "commit": done.commit if done else None,
                "changes": list(planned.changes),
                "diff": report.as_json(shown),
            }
        )
        return
    if not planned.changed:
        typer.echo(
            f"{target}: release {current.label} already has release {restored.label}'s tree; "
            "nothing to do"
        )
    elif dry_run:
        typer.echo(
            f"{target}: dry run: release {planned.number} would restore release "
            f"{restored.label} ({len(planned.changes)} file(s)); nothing written"
        )
    elif done and done.commit:
        typer.echo(
            f"{target}: release {planned.number} restores release {restored.label}: committed "
            f"{done.commit[:12]} on {planned.ref}; pack it with `gen ferry pack -t {target}`"
        )


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)
