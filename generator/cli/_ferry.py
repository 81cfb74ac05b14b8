"""Commands of the delivery path: publish, ferry pack, ferry import, ferry status.

Settings come from flags, each with an environment variable as fallback, so a release job or a
CronJob configures them once (README "Publish and ferry" lists them).
"""

from __future__ import annotations

import functools
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer

from generator.cli import RootOption, TargetOption, app, run

ferry_app = typer.Typer(
    help="Carry deploy branches through the one-way gatekeeper as signed envelopes.",
    no_args_is_help=True,
)
app.add_typer(ferry_app, name="ferry")

DeployRepoOption = Annotated[
    Path,
    typer.Option(
        "--deploy-repo",
        envvar="GEN_DEPLOY_REPO",
        help="Deploy repository holding deploy/<site> branches "
        "(a local path; publish creates it bare if missing).",
        metavar="DIR",
    ),
]
SigningKeyOption = Annotated[
    Path,
    typer.Option(
        "--signing-key",
        envvar="GEN_SIGNING_KEY",
        help="SSH private key that signs (or its .pub if the key is in "
        "ssh-agent). Keep it outside every repository.",
        metavar="FILE",
    ),
]
AllowedSignersOption = Annotated[
    Path,
    typer.Option(
        "--allowed-signers",
        envvar="GEN_ALLOWED_SIGNERS",
        help="OpenSSH allowed_signers file of trusted keys.",
        metavar="FILE",
    ),
]


@app.command()
def publish(
    deploy_repo: DeployRepoOption,
    signing_key: SigningKeyOption,
    root: RootOption = Path("."),
    target: TargetOption = None,
    author: Annotated[
        str | None,
        typer.Option(
            "--author",
            envvar="GEN_PUBLISH_AUTHOR",
            help="'Name <email>' of deploy commits (default: git's user).",
            metavar="AUTHOR",
        ),
    ] = None,
    allow_dirty: Annotated[
        bool,
        typer.Option(
            "--allow-dirty", help="Publish even if compiled/<site> has uncommitted changes."
        ),
    ] = False,
    name: Annotated[
        str,
        typer.Option(
            "--name",
            help="Name of the releases made (letters, digits, '.', '_', '-').",
            metavar="NAME",
        ),
    ] = "",
) -> None:
    """Commit each site's compiled/<site>/ to its signed deploy branch (deploy/<site>).

    One commit per changed site, none when nothing changed. Each is the site's next release
    (numbered from 1, with --name, the source commit and the site's gen diff summary in its
    message; gen releases lists them). Example:

    \b
      gen publish --deploy-repo ../deploy.git --signing-key ~/.ssh/gen-release --name spring
    """
    from generator.deliver import publish as pub
    from generator.deliver.git.plumbing import Identity
    from generator.review import summary

    identity = run(lambda: Identity.parse(author)) if author else None
    settings = run(
        lambda: pub.Settings(
            deploy_repo, signing_key, identity, allow_dirty, name, summary.summarize
        )
    )
    for result in run(lambda: pub.publish(root, tuple(target or ()), settings)):
        if result.changed:
            headline = result.summary.splitlines()[0] if result.summary else ""
            typer.echo(
                f"{result.site}: release {result.release}{f' ({name})' if name else ''} "
                f"committed {result.commit[:12]} on {result.branch} "
                f"({len(result.changes)} file(s) changed: {headline})"
            )
        else:
            typer.echo(f"{result.site}: unchanged ({result.commit[:12]})")


@ferry_app.command("pack")
def pack(
    target: Annotated[
        list[str], typer.Option("--target", "-t", help="Site to pack (repeatable).", metavar="SITE")
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out", "-o", help="Directory to write envelopes into.", file_okay=False, metavar="OUT"
        ),
    ],
    deploy_repo: DeployRepoOption,
    signing_key: SigningKeyOption,
    full: Annotated[
        bool, typer.Option("--full", help="Bundle the whole branch, not just what is new.")
    ] = False,
    since: Annotated[
        int | None,
        typer.Option(
            "--since",
            min=1,
            help="Build on the tip of this sent sequence (what the inside says it has).",
            metavar="N",
        ),
    ] = None,
    sequence: Annotated[
        int | None,
        typer.Option(
            "--sequence",
            min=1,
            help="Use this sequence number (above every one sent): after losing the ledger, "
            "one above what the inside's `gen ferry status` shows.",
            metavar="N",
        ),
    ] = None,
    sender: Annotated[
        str | None,
        typer.Option(
            "--sender",
            envvar="GEN_FERRY_SENDER",
            help="Principal of the signing key in the receiver's allowed "
            "signers (default: git's user.email).",
            metavar="SENDER",
        ),
    ] = None,
    expires_in: Annotated[
        str,
        typer.Option(
            "--expires-in",
            envvar="GEN_FERRY_EXPIRES_IN",
            help="Refuse import after this long: 30d, 12h, 2w.",
            metavar="DURATION",
        ),
    ] = "30d",
) -> None:
    """Write the next signed envelope of each site into OUT and record it as sent.

    \b
    gen ferry pack -t cn-east-1 --out /mnt/gatekeeper/outbox
    gen ferry pack -t cn-east-1 --out DIR --full      # when the inside lost track
    """
    from generator.deliver.ferry import pack as packer
    from generator.deliver.ferry.transport import DropDir
    from generator.formats import envelope

    settings = packer.Settings(deploy_repo, signing_key, sender, run(lambda: _expiry(expires_in)))
    out.mkdir(parents=True, exist_ok=True)
    outbox = DropDir(out)
    for site in target:
        request = packer.Request(site, full, since, sequence)
        packed = run(functools.partial(packer.pack, request, outbox, settings))
        if packed.manifest is None:
            typer.echo(f"{site}: {packed.note}; no envelope written")
            continue
        m = packed.manifest
        kind = "full" if m.full else f"since sequence {m.basis_sequence}"
        typer.echo(
            f"{site}: wrote {packed.path} (sequence {m.sequence}, {kind}, tip {m.tip[:12]}, "
            f"{packed.size} bytes, expires {envelope.format_time(m.expires)})"
        )


@ferry_app.command("import")
def import_(
    drop: Annotated[
        Path,
        # Described in the docstring: help lists no arguments (kubectl's style, no type labels).
        typer.Argument(metavar="DIR", file_okay=False, hidden=True),
    ],
    repo: Annotated[
        Path,
        typer.Option(
            "--repo",
            envvar="GEN_FERRY_REPO",
            help="Inside repository to update (created bare if missing).",
            metavar="DIR",
        ),
    ],
    allowed_signers: AllowedSignersOption,
    site: Annotated[
        list[str] | None,
        typer.Option(
            "--site",
            help="Site this repository takes (repeatable; default: its git config ferry.site).",
            metavar="SITE",
        ),
    ] = None,
) -> None:
    """Verify and import every envelope in DIR (where the gatekeeper delivers), oldest first.

    Imported envelopes move to DIR/imported/, refused ones to DIR/rejected/<name>/ with REASON.txt,
    and so does any entry that cannot be an envelope (a file, a link, a FIFO, a name with control
    characters; names are printed escaped); ones waiting for a missing basis stay. Exit status 1
    if anything was rejected or is waiting.
    """
    from generator.deliver.ferry import receive
    from generator.deliver.ferry.transport import DropDir

    settings = receive.Settings(repo, allowed_signers, tuple(site or ()))
    report = run(lambda: receive.receive(DropDir(drop), settings))
    for line in report.repaired:
        typer.echo(f"repaired {line}")
    for o in report.outcomes:
        moved = f" [moved to {o.moved_to}]" if o.status is receive.Status.REJECTED else ""
        typer.echo(
            f"{o.status.value:<16} {o.name}: {o.message}{moved}",
            err=o.status in (receive.Status.REJECTED, receive.Status.WAITING),
        )
    if not report.outcomes:
        typer.echo(f"no envelopes in {drop}")
    if not report.ok:
        raise typer.Exit(1)


@ferry_app.command("status")
def status(
    repo: Annotated[
        Path,
        typer.Option(
            "--repo",
            envvar="GEN_FERRY_REPO",
            help="Inside repository (or the deploy repository, for what was sent).",
            metavar="DIR",
        ),
    ],
) -> None:
    """Show, per site, the last imported (or sent) sequence, its tip commit and when."""
    from generator.deliver.ferry import status as ferry_status
    from generator.formats import envelope

    rows = run(lambda: ferry_status.status(repo))
    if not rows:
        typer.echo(f"{repo}: nothing imported or sent yet")
    for r in rows:
        typer.echo(
            f"{r.site:<20} {r.side:<8} sequence {r.sequence:<6} tip {r.tip[:12]}  "
            f"{envelope.format_time(r.time)}  {'full' if r.full else 'incremental'}  "
            f"branch {r.branch}"
        )


def _expiry(text: str) -> timedelta:
    """``--expires-in`` as a duration; a unit is required (``core.units``)."""
    from generator.core import units

    return units.positive_duration(text, "--expires-in/GEN_FERRY_EXPIRES_IN")
