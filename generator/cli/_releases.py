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


@app.command("fleet")
def fleet_(
    deploy_repo: DeployRepoOption,
    outbox: Annotated[
        Path | None,
        typer.Option(
            "--outbox",
            envvar="GEN_FERRY_OUTBOX",
            file_okay=False,
            help="Drop directory envelopes are packed into (gen ferry pack --out): "
            "count those waiting to be carried.",
            metavar="DIR",
        ),
    ] = None,
    html: Annotated[
        Path | None,
        typer.Option(
            "--html",
            dir_okay=False,
            help="Also write the fleet as one static HTML page (no server, no external assets).",
            metavar="FILE",
        ),
    ] = None,
    import_report: Annotated[
        list[Path] | None,
        typer.Option(
            "--import-report",
            dir_okay=False,
            help="A status report from `gen agent report` to verify and keep first (repeatable).",
            metavar="FILE",
        ),
    ] = None,
    allowed_signers: Annotated[
        Path | None,
        typer.Option(
            "--allowed-signers",
            envvar="GEN_FLEET_ALLOWED_SIGNERS",
            help="OpenSSH allowed_signers file of the sites' report keys "
            '(namespaces="gen-agent-report"); needed with --import-report.',
            metavar="FILE",
        ),
    ] = None,
    output_fmt: OutputOption = None,
) -> None:
    """Every site at a glance: last release published, last packed into an envelope and when,
    releases not packed yet, envelopes waiting in the outbox, and the last status a site reported.

    Nothing comes back through the gatekeeper: a site's status arrives as a signed file someone
    carries out (gen agent report, inside); --import-report verifies it and keeps it in the
    deploy repository. A report that is unsigned, tampered with, signed by a key the allowed
    signers file does not trust, or older than the one kept is refused (exit 1). Examples:

    \b
      gen fleet --deploy-repo ../deploy.git --outbox /mnt/gatekeeper/outbox
      gen fleet --deploy-repo ../deploy.git --html fleet.html -o json
      gen fleet --deploy-repo ../deploy.git --import-report cn-east-1.report --allowed-signers FILE
    """
    from generator.core import fsutil
    from generator.core.errors import GenError
    from generator.deliver import fleet, fleet_html, releases

    as_json = output_fmt is TextOrJson.json
    for path in import_report or ():

        def take(path: Path = path) -> fleet.Imported:
            if allowed_signers is None:
                raise GenError(
                    "--import-report needs --allowed-signers (or GEN_FLEET_ALLOWED_SIGNERS): "
                    "the keys whose reports are trusted"
                )
            return fleet.import_report(deploy_repo, path.read_bytes(), allowed_signers, str(path))

        done = run_json(take, as_json)
        if not as_json:
            verb = "imported" if done.new else "already imported"
            typer.echo(
                f"{verb} report of {done.report.site} signed by {done.report.signer}: "
                f"{fleet.status_line(done.report)}",
                err=True,
            )
    sites = run_json(lambda: fleet.fleet(deploy_repo, outbox), as_json)
    if html is not None:
        page = fleet_html.render(sites, _now()).encode()
        run_json(lambda: fsutil.write_atomic(html, page), as_json)
    if as_json:
        print_json([s.as_json() for s in sites])
        return
    if not sites:
        typer.echo(f"{deploy_repo}: no site published yet")
    rows = [("site", "published", "packed", "unpacked", "waiting", "reported")]
    for s in sites:
        published = (
            f"{s.published.label} {releases.format_time(s.published.time)}" if s.published else "-"
        )
        packed = "-"
        if s.packed:
            at = s.packed.release.label if s.packed.release else s.packed.tip[:12]
            packed = f"{at} seq {s.packed.sequence} {releases.format_time(s.packed.time)}"
        waiting = "?" if s.waiting is None else str(s.waiting)
        reported = (
            f"{fleet.status_line(s.reported.report)} "
            f"({releases.format_time(s.reported.report.time)})"
            if s.reported
            else "-"
        )
        rows.append((s.site, published, packed, str(s.unpacked), waiting, reported))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for r in rows:
        typer.echo("  ".join(f"{c:<{w}}" for c, w in zip(r[:5], widths, strict=True)) + f"  {r[5]}")
    if html is not None:
        typer.echo(f"wrote {html}", err=True)
