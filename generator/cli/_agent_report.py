"""``gen agent report`` (also ``gen-agent report``): inside the site, the agent's status as a small
signed file to carry out for ``gen fleet --import-report`` (docs/releases.md)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from generator.cli import run
from generator.cli._agent import agent_app


@agent_app.command("report")
def report(
    out: Annotated[
        Path,
        typer.Option("--out", dir_okay=False, help="File to write.", metavar="FILE"),
    ],
    signing_key: Annotated[
        Path,
        typer.Option(
            "--signing-key",
            envvar="GEN_REPORT_SIGNING_KEY",
            help="SSH private key of this site that signs the report (or its .pub in ssh-agent).",
            metavar="FILE",
        ),
    ],
    signer: Annotated[
        str,
        typer.Option(
            "--signer",
            envvar="GEN_REPORT_SIGNER",
            help="The key's principal in the outside's allowed signers file, <name>@<site> "
            "(default: gen-agent@<site>).",
            metavar="PRINCIPAL",
        ),
    ] = "",
    site: Annotated[
        str,
        typer.Option(
            "--site",
            envvar="GEN_AGENT_SITE",
            help="This cluster's site (default: the one the status names).",
            metavar="SITE",
        ),
    ] = "",
    namespace: Annotated[
        str,
        typer.Option(
            "--namespace",
            envvar="GEN_AGENT_NAMESPACE",
            help="The agent's namespace.",
            metavar="NAMESPACE",
        ),
    ] = "gen-agent",
    name: Annotated[
        str,
        typer.Option(
            "--name",
            help="The agent's name (its status ConfigMap is <name>-status).",
            metavar="NAME",
        ),
    ] = "gen-agent",
    kubeconfig: Annotated[
        Path | None,
        typer.Option(
            "--kubeconfig",
            envvar="GEN_AGENT_KUBECONFIG",
            help="Kubeconfig (default: in-cluster credentials in a pod, else the default).",
            metavar="FILE",
        ),
    ] = None,
    context: Annotated[
        str | None, typer.Option("--context", help="Kubeconfig context.", metavar="CONTEXT")
    ] = None,
) -> None:
    """Write the agent's status (result, commit, release, last healthy release, rollback) as a
    small file signed with this site's SSH key, for someone to carry out of the site; outside,
    gen fleet --import-report FILE verifies and shows it. Changes nothing in the cluster.

    \b
    gen agent report --out /media/usb/cn-east-1.report --signing-key /etc/gen-agent/report-key
    """
    from generator.run import report as reporter
    from generator.run.agent import kube

    def write() -> str:
        client = kube.connect(kubeconfig, context)
        settings = reporter.Settings(namespace, f"{name}-status", signing_key, signer, site)
        made = reporter.write(client, settings, out, datetime.now(UTC))
        return f"wrote {out}: report of {made.site} signed by {made.signer}"

    typer.echo(run(write))
