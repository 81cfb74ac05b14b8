"""``gen ferry pack``: one envelope per site, incremental from what was last sent.

The envelope is built in a directory the transport stages (for a drop directory: a hidden one
beside its final place), the ledger entry is committed (the moment the sequence number is spent),
and only then does the transport put it in place. A crash before the ledger update leaves a hidden
leftover and nothing sent; a crash after it leaves a sequence number the receiver never sees,
which its "missing basis" message then names, and ``--since`` or ``--full`` covers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from generator.core import fsutil
from generator.core.errors import GenError
from generator.deliver import publish
from generator.deliver.ferry import transport
from generator.deliver.ferry.ledger import SENT, Ledger, Record
from generator.deliver.ferry.transport import Transport
from generator.deliver.git import bundle, sign
from generator.deliver.git.repo import Repo, open_repo
from generator.formats import envelope
from generator.formats.envelope import Manifest


@dataclass(frozen=True)
class Settings:
    """Where envelopes come from and how they are signed."""

    deploy_repo: Path
    """The deploy repository ``gen publish`` writes (its ledger lives there too)."""
    signing_key: Path
    """SSH private key that signs manifests (or its ``.pub`` when the key is in ssh-agent)."""
    sender: str | None = None
    """The principal the receiver's allowed signers file gives the key; None:
    git's ``user.email``."""
    expires_in: timedelta = timedelta(days=30)
    """How long an envelope may take to be imported; older ones are refused (no freeze attacks)."""


@dataclass(frozen=True)
class Request:
    """What to pack for one site."""

    site: str
    full: bool = False
    """Bundle the whole branch, whatever was sent before (always importable)."""
    since: int | None = None
    """Build on the tip of this sent sequence
    (what the receiver says it has) instead of the last one."""
    sequence: int | None = None
    """Use this sequence number instead of the next one (above every one sent): to recover from a
    lost ledger, pass one above what the receiver's ``gen ferry status`` shows."""


@dataclass(frozen=True)
class Packed:
    """The envelope written for a site, or why none was needed."""

    site: str
    manifest: Manifest | None
    path: Path | None
    note: str = ""

    @property
    def size(self) -> int:
        return sum(f.size for f in self.manifest.files) if self.manifest else 0


def pack(
    request: Request, out: Transport | Path, settings: Settings, now: datetime | None = None
) -> Packed:
    """Put the next envelope of ``request.site`` into ``out`` and record it as sent.

    ``out`` is a transport, or a Path: a drop directory.

    Nothing is written when the branch has not moved since the envelope it would build on
    (unless ``full``).
    """
    repo = open_repo(settings.deploy_repo)
    site = envelope.check_site(request.site)
    tip = repo.resolve(publish.branch(site))
    if tip is None:
        raise GenError(
            f"{settings.deploy_repo}: no deploy branch for {site}; "
            f"run `gen publish -t {site}` first"
        )
    ledger = Ledger(repo, SENT)
    last = ledger.last(site)
    base = _basis(ledger, request, last)
    if base and base.manifest.tip == tip:
        return Packed(
            site, None, None, f"nothing new since sequence {base.manifest.sequence} ({tip[:12]})"
        )
    if base and not repo.is_ancestor(base.manifest.tip, tip):
        raise GenError(
            f"{publish.branch(site)} no longer contains {base.manifest.tip[:12]} (sequence "
            f"{base.manifest.sequence}): the branch was rewritten; pack with --full"
        )
    sequence = _sequence(request, last)
    moment = now or envelope.now()
    plan = _Plan(site, sequence, tip, base, moment)
    return _write(repo, ledger, last, transport.of(out), plan, settings)


@dataclass(frozen=True)
class _Plan:
    site: str
    sequence: int
    tip: str
    base: Record | None
    created: datetime


def _sequence(request: Request, last: Record | None) -> int:
    following = last.manifest.sequence + 1 if last else 1
    if request.sequence is None:
        return following
    if request.sequence < following:
        raise GenError(
            f"sequence {request.sequence} of {request.site} is not above the last one sent "
            f"({following - 1}); the receiver would refuse it as a replay"
        )
    return request.sequence


def _basis(ledger: Ledger, request: Request, last: Record | None) -> Record | None:
    if request.full:
        return None
    if request.since is None:
        return last
    found = ledger.find(request.site, request.since)
    if found is None:
        raise GenError(
            f"sequence {request.since} of {request.site} "
            f"was never sent from {ledger.repo.git_dir}; "
            "pack with --full"
        )
    return found


def _write(
    repo: Repo, ledger: Ledger, last: Record | None, out: Transport, plan: _Plan, settings: Settings
) -> Packed:
    name = envelope.envelope_name(plan.site, plan.sequence)
    staging = out.stage(name)
    try:
        raw, signature = _fill(repo, staging, plan, settings)
        repo.update_refs([ledger.append("sent", raw, signature, last)])
        final = out.put(staging, name)
    finally:
        out.discard(staging)
    return Packed(plan.site, envelope.parse(raw), final)


def _fill(repo: Repo, staging: Path, plan: _Plan, settings: Settings) -> tuple[bytes, bytes]:
    """Write bundle, manifest and signature into ``staging``; the manifest and signature bytes."""
    basis = plan.base.manifest.tip if plan.base else None
    bundle.create(repo, staging / envelope.BUNDLE, publish.branch(plan.site), basis)
    manifest = Manifest(
        plan.site,
        plan.sequence,
        plan.tip,
        basis,
        plan.base.manifest.sequence if plan.base else None,
        plan.created,
        plan.created + settings.expires_in,
        _sender(repo, settings),
        (envelope.measure(staging / envelope.BUNDLE),),
    )
    raw = manifest.to_json()
    signature = sign.sign(raw, settings.signing_key, envelope.NAMESPACE)
    for name, content in ((envelope.MANIFEST, raw), (envelope.SIGNATURE, signature)):
        (staging / name).write_bytes(content)
    for name in (envelope.BUNDLE, envelope.MANIFEST, envelope.SIGNATURE):
        fsutil.fsync_path(staging / name)
    fsutil.fsync_path(staging)
    return raw, signature


def _sender(repo: Repo, settings: Settings) -> str:
    sender = settings.sender or repo.config("user.email")
    if not sender:
        raise GenError(
            "no sender: pass --sender (or set GEN_FERRY_SENDER) to the principal the receiver's "
            "allowed signers file gives the signing key"
        )
    return sender
