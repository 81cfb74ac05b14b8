"""What the agent is told: a frozen ``Settings`` built once from flags and environment, passed down.

Nothing below the CLI reads the environment or keeps configuration in module globals; tests build
``Settings`` directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from generator.core.errors import GenError
from generator.deliver.ferry.transport import Transport

FIELD_MANAGER = "gen-agent"
"""Server-side apply field manager of every object the agent writes."""


@dataclass(frozen=True)
class GitSource:
    """Fetch the deploy branch from a git URL (any transport git supports: ssh, https, file)."""

    url: str
    ssh_key: Path | None = None
    """Private key for ssh URLs (copied with mode 0600 first:
    mounted Secrets are often group-readable)."""
    known_hosts: Path | None = None
    """known_hosts file for ssh URLs; with a key and no file,
    host keys are checked against nothing."""

    def describe(self) -> str:
        return f"git {self.url}"


@dataclass(frozen=True)
class EnvelopeSource:
    """Import ferry envelopes the gatekeeper delivers (no git server needed)."""

    transport: Transport
    """Where they wait: a drop directory (``DropDir``) or another ferry transport."""

    def describe(self) -> str:
        return f"envelopes in {self.transport.describe()}"


@dataclass(frozen=True)
class PruneSettings:
    """When the agent may delete objects that left the deploy branch."""

    enabled: bool = True
    """False: never delete anything;
    objects that left the branch stay in the set and are reported."""
    max_share: float = 0.5
    """Refuse a prune that would delete more than this share of the previous set at once (0..1)."""
    min_refused: int = 3
    """Deleting this many objects or fewer is never refused by the share guard (small sites)."""
    persistent_volume_claims: bool = False
    """Allow deleting PersistentVolumeClaims (their data goes with them)."""
    namespaces: bool = False
    """Allow deleting Namespaces (everything in them goes too)."""


@dataclass(frozen=True)
class N9eSettings:
    """The site's Nightingale, synced from the commit's ``n9e/`` files after each apply."""

    url: str
    username: str = field(default="", repr=False)
    password: str = field(default="", repr=False)
    token: str = field(default="", repr=False)
    timeout: float = 15.0


@dataclass(frozen=True)
class Settings:
    """Everything one agent needs; see ``docs/agent.md`` for the matching flags and variables."""

    site: str
    """The site this cluster is; the branch defaults to ``deploy/<site>``."""
    source: GitSource | EnvelopeSource
    allowed_signers: Path
    """OpenSSH allowed_signers file: whose commit signatures (namespace ``git``) are trusted."""
    state_dir: Path
    """Writable directory for the local repository (``repo.git``); keep it on a volume."""
    branch: str = ""
    """Deploy branch; empty means ``deploy/<site>``."""
    namespace: str = "gen-agent"
    """Namespace of the ApplySet parent, the status ConfigMap and the agent's Events."""
    name: str = "gen-agent"
    """Base name of the parent (``<name>-applyset``) and status (``<name>-status``) ConfigMaps."""
    interval: float = 300.0
    """Seconds between reconciles (drift is corrected even when the commit did not change)."""
    health_timeout: float = 180.0
    """Seconds to wait for applied objects to become healthy."""
    health_poll: float = 2.0
    """Seconds between health checks while waiting."""
    prune: PruneSettings = PruneSettings()
    kubeconfig: Path | None = None
    """Kubeconfig file; None: in-cluster credentials when running in a pod,
    else the default kubeconfig."""
    context: str | None = None
    n9e: N9eSettings | None = None
    metrics_address: str = "0.0.0.0"
    metrics_port: int = 9090
    """Port of /metrics and /healthz; 0 picks a free one; -1 serves nothing."""
    workers: int = 8
    """Concurrent API requests while listing and applying."""
    age_identity: Path | None = None
    """The site's age identity file: EncryptedSecrets are decrypted with it into Secrets
    (docs/secrets.md)."""
    allow_rewind: bool = False
    """Accept a tip that does not descend from the last applied commit (a rewritten branch)."""
    auto_rollback: bool = False
    """When a release does not become healthy within ``health_timeout``, re-apply the last healthy
    release and hold there until a newer one arrives (``releases``; docs/agent.md)."""
    request_timeout: float = 30.0

    @property
    def ref(self) -> str:
        """The full ref of the deploy branch."""
        branch = self.branch or f"deploy/{self.site}"
        return branch if branch.startswith("refs/") else f"refs/heads/{branch}"

    @property
    def parent_name(self) -> str:
        return f"{self.name}-applyset"

    @property
    def status_name(self) -> str:
        return f"{self.name}-status"


def parse_share(text: str) -> float:
    """``0.3``, ``30%`` as a share between 0 and 1."""
    raw = text.strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise GenError(f"{text!r} is not a share like 0.3 or 30%") from None
    if not 0 <= value <= 1:
        raise GenError(f"{text!r} is not a share between 0 and 1 (0% and 100%)")
    return value
