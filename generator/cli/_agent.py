"""``gen agent run``: the in-cluster pull agent (docs/agent.md).

Every option has an environment variable, which is how the agent's Deployment configures it.
"""

from __future__ import annotations

import signal
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from generator.cli import (
    LegacyFormatOption,
    TextOrJson,
    _version,
    app,
    output_format,
    run,
)

if TYPE_CHECKING:
    from generator.run.agent.settings import Settings

agent_app = typer.Typer(
    help="The in-cluster pull agent: keep a cluster at its site's signed deploy branch.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help like gen's own, also as the root of `gen-agent`
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(agent_app, name="agent")


@agent_app.callback()
def _agent(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """The in-cluster pull agent: keep a cluster at its site's signed deploy branch.

    Also the console script gen-agent, which needs no compiler: pip install gen-gitops.
    """


@agent_app.command("run")
def run_agent(
    site: Annotated[
        str,
        typer.Option(
            "--site", envvar="GEN_AGENT_SITE", help="This cluster's site.", metavar="SITE"
        ),
    ],
    allowed_signers: Annotated[
        Path,
        typer.Option(
            "--allowed-signers",
            envvar="GEN_ALLOWED_SIGNERS",
            help="OpenSSH allowed_signers file of trusted keys.",
            metavar="FILE",
        ),
    ],
    git_url: Annotated[
        str | None,
        typer.Option(
            "--git-url",
            envvar="GEN_AGENT_GIT_URL",
            help="Fetch the deploy branch from this git URL.",
            metavar="GIT_URL",
        ),
    ] = None,
    envelopes: Annotated[
        Path | None,
        typer.Option(
            "--envelopes",
            envvar="GEN_AGENT_ENVELOPES",
            file_okay=False,
            help="Or import ferry envelopes dropped into this directory (no git server needed).",
            metavar="DIR",
        ),
    ] = None,
    git_ssh_key: Annotated[
        Path | None,
        typer.Option(
            "--git-ssh-key",
            envvar="GEN_AGENT_GIT_SSH_KEY",
            help="SSH private key for an ssh git URL.",
            metavar="FILE",
        ),
    ] = None,
    git_known_hosts: Annotated[
        Path | None,
        typer.Option(
            "--git-known-hosts",
            envvar="GEN_AGENT_GIT_KNOWN_HOSTS",
            help="known_hosts for an ssh git URL.",
            metavar="FILE",
        ),
    ] = None,
    branch: Annotated[
        str,
        typer.Option(
            "--branch",
            envvar="GEN_AGENT_BRANCH",
            help="Deploy branch (default: deploy/<site>).",
            metavar="BRANCH",
        ),
    ] = "",
    state_dir: Annotated[
        Path,
        typer.Option(
            "--state-dir",
            envvar="GEN_AGENT_STATE",
            file_okay=False,
            help="Writable directory for the local "
            "repository; keep it on a volume (with --envelopes it holds the import ledger).",
            metavar="DIR",
        ),
    ] = Path("/var/lib/gen-agent/state"),
    interval: Annotated[
        str,
        typer.Option(
            "--interval",
            envvar="GEN_AGENT_INTERVAL",
            help="Time between reconciles (drift correction).",
            metavar="DURATION",
        ),
    ] = "5m",
    health_timeout: Annotated[
        str,
        typer.Option(
            "--health-timeout",
            envvar="GEN_AGENT_HEALTH_TIMEOUT",
            help="How long to wait for applied objects to become healthy.",
            metavar="DURATION",
        ),
    ] = "3m",
    kubeconfig: Annotated[
        Path | None,
        typer.Option(
            "--kubeconfig",
            envvar="GEN_AGENT_KUBECONFIG",
            help="Kubeconfig (default: in-cluster credentials in a "
            "pod, else the default kubeconfig).",
            metavar="FILE",
        ),
    ] = None,
    context: Annotated[
        str | None, typer.Option("--context", help="Kubeconfig context.", metavar="CONTEXT")
    ] = None,
    namespace: Annotated[
        str,
        typer.Option(
            "--namespace",
            envvar="GEN_AGENT_NAMESPACE",
            help="Namespace of the ApplySet parent, status and Events.",
            metavar="NAMESPACE",
        ),
    ] = "gen-agent",
    prune: Annotated[
        bool,
        typer.Option(
            "--prune/--no-prune",
            envvar="GEN_AGENT_PRUNE",
            help="Delete objects that left the branch.",
        ),
    ] = True,
    prune_max_share: Annotated[
        str,
        typer.Option(
            "--prune-max-share",
            envvar="GEN_AGENT_PRUNE_MAX_SHARE",
            help="Refuse to delete more than this share of the set at once (0.5 or 50%).",
            metavar="SHARE",
        ),
    ] = "50%",
    prune_pvcs: Annotated[
        bool,
        typer.Option(
            "--prune-pvcs",
            envvar="GEN_AGENT_PRUNE_PVCS",
            help="Allow deleting PersistentVolumeClaims.",
        ),
    ] = False,
    prune_namespaces: Annotated[
        bool,
        typer.Option(
            "--prune-namespaces",
            envvar="GEN_AGENT_PRUNE_NAMESPACES",
            help="Allow deleting Namespaces.",
        ),
    ] = False,
    n9e_url: Annotated[
        str,
        typer.Option(
            "--n9e-url",
            envvar="GEN_N9E_URL",
            help="Sync the commit's n9e/ files to this Nightingale.",
            metavar="N9E_URL",
        ),
    ] = "",
    n9e_user: Annotated[
        str, typer.Option("--n9e-user", envvar="GEN_N9E_USER", help="n9e user.", metavar="N9E_USER")
    ] = "",
    n9e_password: Annotated[
        str,
        typer.Option(
            "--n9e-password",
            envvar="GEN_N9E_PASSWORD",
            show_default=False,
            help="n9e password (better: the environment variable).",
            metavar="N9E_PASSWORD",
        ),
    ] = "",
    n9e_token: Annotated[
        str,
        typer.Option(
            "--n9e-token",
            envvar="GEN_N9E_TOKEN",
            show_default=False,
            help="n9e access token instead of user and password.",
            metavar="N9E_TOKEN",
        ),
    ] = "",
    metrics_port: Annotated[
        int,
        typer.Option(
            "--metrics-port",
            envvar="GEN_AGENT_METRICS_PORT",
            help="Port of /metrics and /healthz (-1: none).",
            metavar="PORT",
        ),
    ] = 9090,
    metrics_address: Annotated[
        str,
        typer.Option(
            "--metrics-address",
            envvar="GEN_AGENT_METRICS_ADDRESS",
            help="Address to serve metrics on.",
            metavar="ADDRESS",
        ),
    ] = "0.0.0.0",
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            envvar="GEN_AGENT_WORKERS",
            min=1,
            help="Concurrent API requests.",
            metavar="N",
        ),
    ] = 8,
    age_identity: Annotated[
        Path | None,
        typer.Option(
            "--age-identity",
            envvar="GEN_AGENT_AGE_IDENTITY",
            help="The site's age identity file: EncryptedSecrets "
            "are decrypted with it (docs/secrets.md).",
            metavar="FILE",
        ),
    ] = None,
    allow_rewind: Annotated[
        bool,
        typer.Option(
            "--allow-rewind",
            help="Accept a tip that does not descend from the last applied commit.",
        ),
    ] = False,
    auto_rollback: Annotated[
        bool,
        typer.Option(
            "--auto-rollback/--no-auto-rollback",
            envvar="GEN_AGENT_AUTO_ROLLBACK",
            help="Re-apply the last healthy release when one does not become healthy within "
            "the health timeout, and hold there until a newer release arrives.",
        ),
    ] = False,
    once: Annotated[
        bool, typer.Option("--once", help="Reconcile once and exit (status 1 unless synced).")
    ] = False,
    output_fmt: Annotated[
        TextOrJson | None,
        typer.Option(
            "--output",
            "-o",
            metavar="FORMAT",
            help="Output of --once: text (the default) or json.",
            show_default=False,
        ),
    ] = None,
    legacy_fmt: LegacyFormatOption = None,
) -> None:
    """Keep this cluster at the site's deploy branch: fetch, verify signatures, apply, prune, report.

    \b
    gen agent run --site cn-east-1 --envelopes /srv/inbox --allowed-signers /etc/gen-agent/allowed_signers
    gen agent run --site cn-north-2 --git-url ssh://git@git.internal/deploy.git --allowed-signers FILE --once
    """  # noqa: E501 (--help shows this verbatim: example commands stay whole, one line each)
    from generator.core.errors import GenError
    from generator.deliver.ferry.transport import DropDir
    from generator.run.agent import settings as agent_settings

    def build() -> Settings:
        if (git_url is None) == (envelopes is None):
            raise GenError("give exactly one source: --git-url or --envelopes")
        source: agent_settings.GitSource | agent_settings.EnvelopeSource
        if git_url:
            source = agent_settings.GitSource(git_url, git_ssh_key, git_known_hosts)
        elif envelopes is not None:
            source = agent_settings.EnvelopeSource(DropDir(envelopes))
        else:  # --git-url "": no source at all
            raise GenError("give exactly one source: --git-url or --envelopes")
        prune_settings = agent_settings.PruneSettings(
            prune,
            agent_settings.parse_share(prune_max_share),
            persistent_volume_claims=prune_pvcs,
            namespaces=prune_namespaces,
        )
        n9e = (
            agent_settings.N9eSettings(n9e_url, n9e_user, n9e_password, n9e_token)
            if n9e_url
            else None
        )
        return agent_settings.Settings(
            site=site,
            source=source,
            allowed_signers=allowed_signers,
            state_dir=state_dir,
            branch=branch,
            namespace=namespace,
            interval=_seconds(interval, "--interval/GEN_AGENT_INTERVAL"),
            health_timeout=_seconds(health_timeout, "--health-timeout/GEN_AGENT_HEALTH_TIMEOUT"),
            prune=prune_settings,
            kubeconfig=kubeconfig,
            context=context,
            n9e=n9e,
            metrics_address=metrics_address,
            metrics_port=metrics_port,
            workers=workers,
            age_identity=age_identity,
            allow_rewind=allow_rewind,
            auto_rollback=auto_rollback,
        )

    fmt = output_format(output_fmt, legacy_fmt, TextOrJson.text)
    settings = run(build)
    if once:
        _once(settings, fmt)
    else:
        run(lambda: _forever(settings))


def _once(settings: Settings, fmt: TextOrJson) -> None:
    from generator.run.agent import start, status

    def once() -> status.Result:
        agent = start.agent(settings, _log if fmt is TextOrJson.text else _quiet, serve=False)
        try:
            return agent.reconcile()
        finally:
            agent.close()

    result = run(once)
    if fmt is TextOrJson.json:
        typer.echo(status.as_json(result))
    if not result.ok:
        raise typer.Exit(1)


def _forever(settings: Settings) -> None:
    from generator.run.agent import start

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    agent = start.agent(settings, _log, serve=True)
    _log(
        f"gen-agent for site {settings.site}: {settings.source.describe()}, branch {settings.ref}, "
        f"every {settings.interval:.0f}s"
    )
    agent.run(stop)
    _log("stopped")


def _log(line: str) -> None:
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    typer.echo(f"{stamp} {line}", err=True)


def _quiet(line: str) -> None:
    return


def _seconds(text: str, option: str) -> float:
    """A duration option in seconds; a unit is required (``core.units``)."""
    from generator.core import units

    return units.positive_duration(text, option).total_seconds()


# Last: ``gen agent report`` registers itself on ``agent_app`` (so ``gen-agent report`` has it too).
from generator.cli import _agent_report  # noqa: E402, F401
