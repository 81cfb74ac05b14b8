"""``gen ferry import``: take every envelope waiting in a transport into the inside repository.

For each envelope: ``verify`` (signature, canonical manifest, file sizes and hashes); then, per
site in sequence order: the site is one this repository takes; the sequence is newer than the
last imported (an identical copy of an accepted envelope is a no-op, anything else older is
refused: no replay, no rollback); not expired; the basis is present (else the envelope waits, and
the message says which sequences to resend); the bundle header matches the manifest. Then the
bundle is fetched into ``refs/ferry/quarantine/<site>``, the branch must fast-forward and every
new commit must be signed by an allowed signer, and finally ONE ``update-ref`` transaction moves
the deploy branch, appends to ``refs/ferry/imported/<site>`` and drops the quarantine ref.

Whatever is refused leaves the refs as they were (the quarantine ref is removed), and the transport
sets the envelope aside with its reason (a drop directory: ``rejected/<name>/REASON.txt``); it
takes imported ones (``imported/``); waiting and incomplete ones stay. An entry that cannot be an
envelope at all (a file, a link, a FIFO, a bad name) is refused the same way; one that cannot be
moved is reported with a warning and left, and never stops the envelopes after it. Names are
always shown escaped (``core.untrusted.escape``). A crash at any point
leaves the old state or the new one: objects fetched without a ref are unreachable, a leftover
quarantine ref is removed on the next run, and if the transaction was cut between its two refs
the next run completes it (see ``_repair``).
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from pathlib import Path

from generator.core.errors import GenError
from generator.core.untrusted import escape
from generator.deliver import publish
from generator.deliver.ferry import transport, verify
from generator.deliver.ferry.ledger import IMPORTED, Ledger, Record
from generator.deliver.ferry.transport import NotAnEnvelope, Transport
from generator.deliver.ferry.verify import Incomplete, Opened, Rejected
from generator.deliver.git import bundle
from generator.deliver.git.repo import ZERO, RefUpdate, Repo, open_repo
from generator.formats import envelope

QUARANTINE = "refs/ferry/quarantine/"
SITE_CONFIG = "ferry.site"


@dataclass(frozen=True)
class Settings:
    """The inside repository and whom it trusts."""

    repo: Path
    """Repository receiving the deploy branches (created bare if it does not exist)."""
    allowed_signers: Path
    """OpenSSH allowed_signers file: who may sign
    manifests (namespace gen-ferry) and commits (git)."""
    sites: tuple[str, ...] = ()
    """Sites this repository takes; empty: the repository's ``ferry.site`` config values."""


class Status(str, Enum):
    IMPORTED = "imported"
    DUPLICATE = "already imported"
    WAITING = "waiting"
    REJECTED = "rejected"


@dataclass(frozen=True)
class Outcome:
    """What happened to one envelope."""

    name: str
    status: Status
    message: str
    site: str = ""
    sequence: int = 0
    moved_to: Path | None = None


@dataclass(frozen=True)
class Report:
    """Every envelope's outcome, and any interrupted import that was completed first."""

    outcomes: tuple[Outcome, ...]
    repaired: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """Nothing was rejected and nothing is left waiting."""
        return all(o.status in (Status.IMPORTED, Status.DUPLICATE) for o in self.outcomes)


class WrongSite(Rejected):
    """The envelope belongs to another site: its bundle
    (another customer's configuration) is deleted."""


class Waiting(GenError):
    """The envelope builds on a commit this repository lacks; it stays until its basis arrives."""


@dataclass(frozen=True)
class _Context:
    repo: Repo
    state: Ledger
    sites: tuple[str, ...]
    allowed_signers: Path
    now: datetime
    known: dict[str, Record | None] = field(default_factory=dict)
    """Last imported record per site, read once per run and forgotten when it changes."""

    def last(self, site: str) -> Record | None:
        if site not in self.known:
            self.known[site] = self.state.last(site)
        return self.known[site]


def receive(source: Transport | Path, settings: Settings, now: datetime | None = None) -> Report:
    """Import every envelope waiting in ``source`` (a transport, or a Path: a drop directory); see
    the module docstring for the checks and guarantees."""
    drop = transport.of(source)
    if not drop.reachable():
        raise GenError(f"{drop.describe()}: no such directory")
    if not settings.allowed_signers.is_file():
        raise GenError(
            f"allowed signers file {settings.allowed_signers} does not exist (--allowed-signers)"
        )
    repo = open_repo(settings.repo, create=True)
    try:
        with _locked(repo):
            ctx = _Context(
                repo,
                Ledger(repo, IMPORTED),
                _sites(repo, settings),
                settings.allowed_signers,
                now or envelope.now(),
            )
            _clear_quarantine(repo)
            repaired = tuple(filter(None, (_repair(ctx, site) for site in ctx.sites)))
            opened, outcomes = _open_all(drop, ctx)
            outcomes += _take_all(drop, ctx, sorted(opened, key=_order))
    finally:
        repo.close()  # the agent imports on every reconcile
    return Report(tuple(outcomes), repaired)


def _order(env: Opened) -> tuple[str, int, str]:
    return env.manifest.site, env.manifest.sequence, env.path.name


def _take_all(drop: Transport, ctx: _Context, opened: list[Opened]) -> list[Outcome]:
    """Each envelope in order; then, once more, those left waiting: a later full envelope imported
    in the same run may have made them obsolete, which is better said now than on the next run."""
    taken = [_take(drop, ctx, env) for env in opened]
    waiting = {o.name for o in taken if o.status is Status.WAITING}
    retried = {env.path.name: _take(drop, ctx, env) for env in opened if env.path.name in waiting}
    return [retried.get(o.name, o) for o in taken]


def _sites(repo: Repo, settings: Settings) -> tuple[str, ...]:
    sites = settings.sites or tuple(repo.config_all(SITE_CONFIG))
    if not sites:
        raise GenError(
            f"{repo.git_dir}: which sites does this repository take? "
            "Pass --site, or record it once "
            f"with `git --git-dir={repo.git_dir} config --add {SITE_CONFIG} SITE`"
        )
    return tuple(envelope.check_site(s) for s in sites)


@contextmanager
def _locked(repo: Repo) -> Iterator[None]:
    with open(repo.git_dir / "gen-ferry-import.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise GenError(
                f"{repo.git_dir}: another `gen ferry import` is running on this repository"
            ) from None
        yield


def _clear_quarantine(repo: Repo) -> None:
    for ref in repo.refs(QUARANTINE):
        repo.delete_ref(ref)


def _repair(ctx: _Context, site: str) -> str | None:
    """Finish an import whose transaction was cut after
    the journal moved but before the branch did."""
    last = ctx.last(site)
    if last is None:
        return None
    ref, tip = publish.branch(site), last.manifest.tip
    current = ctx.repo.resolve(ref)
    if current == tip or ctx.repo.resolve(tip) is None:
        return None
    if current is not None and not ctx.repo.is_ancestor(current, tip):
        return None
    ctx.repo.update_refs([RefUpdate(ref, tip, current or ZERO)])
    return (
        f"{site}: {ref} moved to {tip[:12]}, the tip of imported sequence {last.manifest.sequence} "
        "(an earlier import was interrupted)"
    )


def _open_all(drop: Transport, ctx: _Context) -> tuple[list[Opened], list[Outcome]]:
    opened: list[Opened] = []
    outcomes: list[Outcome] = []
    for name in drop.waiting():
        try:
            opened.append(verify.open_envelope(drop.open(name), ctx.allowed_signers))
        except Incomplete as e:
            outcomes.append(Outcome(name, Status.WAITING, f"incomplete: {e}; left in place"))
        except (Rejected, NotAnEnvelope) as e:
            outcomes.append(_reject(drop, name, str(e)))
    return opened, outcomes


def _take(drop: Transport, ctx: _Context, env: Opened) -> Outcome:
    m = env.manifest
    try:
        status, message = _import(ctx, env)
    except Waiting as e:
        return Outcome(env.path.name, Status.WAITING, f"{e}; left in place", m.site, m.sequence)
    except (Rejected, bundle.BundleError) as e:
        withhold = (envelope.BUNDLE,) if isinstance(e, WrongSite) else ()
        return _reject(drop, env.path.name, str(e), m.site, m.sequence, withhold)
    try:
        moved: Path | None = drop.take(env.path.name)
    except GenError as e:
        # Imported all the same: the next run finds it again and takes it as a duplicate.
        moved, message = None, f"{message}; warning: left in place: {e}"
    return Outcome(env.path.name, status, message, m.site, m.sequence, moved)


def _import(ctx: _Context, env: Opened) -> tuple[Status, str]:
    m = env.manifest
    if m.site not in ctx.sites:
        raise WrongSite(
            f"this envelope is for site {m.site}, but {ctx.repo.git_dir} takes "
            f"{', '.join(ctx.sites)}: delivered to the wrong site; its bundle was deleted (another "
            "site's configuration); tell the sender"
        )
    last = ctx.last(m.site)
    if last is not None and m.sequence <= last.manifest.sequence:
        return _older(ctx, env, last)
    if ctx.now >= m.expires:
        raise Rejected(
            f"expired at {envelope.format_time(m.expires)} (now {envelope.format_time(ctx.now)}); "
            f"pack a new envelope: gen ferry pack -t {m.site}"
        )
    current = ctx.repo.resolve(publish.branch(m.site))
    _check_basis(ctx, m, current, last)
    _check_header(env)
    count = _fetch_and_accept(ctx, env, current, last)
    before = current[:12] if current else "(new)"
    return (
        Status.IMPORTED,
        f"{publish.branch(m.site)} {before} -> {m.tip[:12]} ({count} new commit(s))",
    )


def _older(ctx: _Context, env: Opened, last: Record) -> tuple[Status, str]:
    m = env.manifest
    same = last if last.manifest.sequence == m.sequence else ctx.state.find(m.site, m.sequence)
    if same is not None and same.digest == env.digest:
        return (
            Status.DUPLICATE,
            f"identical to sequence {m.sequence} imported {envelope.format_time(same.time)}",
        )
    if same is not None:
        raise Rejected(
            f"sequence {m.sequence} was already imported with a different manifest: a replay or a "
            f"forged resend; refused (last imported: sequence {last.manifest.sequence})"
        )
    raise Rejected(
        f"sequence {m.sequence} is older than the last imported sequence {last.manifest.sequence} "
        f"(no rollback): superseded, nothing to do"
    )


def _check_basis(
    ctx: _Context, m: envelope.Manifest, current: str | None, last: Record | None
) -> None:
    if m.basis is None:
        return
    if current is not None and ctx.repo.resolve(m.basis) and ctx.repo.is_ancestor(m.basis, current):
        return
    have = last.manifest.sequence if last else 0
    missing = range(have + 1, m.sequence)
    resend = (
        f"resend sequence{'s' if len(missing) > 1 else ''} {_span(missing)} of {m.site}, or "
        if missing
        else ""
    )
    since = f"--since {have}" if have else "--full"
    raise Waiting(
        f"lacks basis {m.basis[:12]} (the tip of sequence {m.basis_sequence}); last imported: "
        f"{f'sequence {have}' if have else 'nothing'}. To fix: {resend}pack a new envelope with "
        f"`gen ferry pack -t {m.site} {since}`" + ("" if since == "--full" else " (or --full)")
    )


def _span(numbers: range) -> str:
    return str(numbers[0]) if len(numbers) == 1 else f"{numbers[0]}-{numbers[-1]}"


def _check_header(env: Opened) -> None:
    m = env.manifest
    header = bundle.read_header(env.path / envelope.BUNDLE)
    expected = ((publish.branch(m.site), m.tip),)
    if header.refs != expected:
        raise Rejected(
            f"the bundle carries {list(header.refs)}, the manifest promises {list(expected)}"
        )
    extra = set(header.prerequisites) - ({m.basis} if m.basis else set())
    if extra:
        raise Rejected(
            f"the bundle needs commits the manifest does not name as its basis: "
            f"{', '.join(sorted(c[:12] for c in extra))}"
        )


def _fetch_and_accept(ctx: _Context, env: Opened, current: str | None, last: Record | None) -> int:
    """Fetch into quarantine, check the new history,
    then move branch and journal in one transaction."""
    m = env.manifest
    ref, quarantine = publish.branch(m.site), f"{QUARANTINE}{m.site}"
    try:
        if m.tip != current:
            fetched = bundle.fetch(ctx.repo, env.path / envelope.BUNDLE, ref, quarantine)
            if fetched != m.tip:
                raise Rejected(
                    f"the bundle's {ref} is {fetched[:12]}, the manifest promises {m.tip[:12]}"
                )
        count = _check_history(ctx, m, current)
        journal = ctx.state.append("imported", env.raw, env.signature, last)
        ctx.known.pop(m.site, None)
        ctx.repo.update_refs(
            [RefUpdate(ref, m.tip, current or ZERO), journal, RefUpdate(quarantine, None)]
        )
        return count
    finally:
        ctx.repo.delete_ref(quarantine)


def _check_history(ctx: _Context, m: envelope.Manifest, current: str | None) -> int:
    if current is not None and not ctx.repo.is_ancestor(current, m.tip):
        raise Rejected(
            f"{m.tip[:12]} does not descend from {publish.branch(m.site)} ({current[:12]}): not a "
            "fast-forward (history rewritten on the sending side?); refused"
        )
    checks = bundle.check_signatures(ctx.repo, m.tip, current, ctx.allowed_signers)
    untrusted = [c.describe() for c in checks if not c.trusted]
    if untrusted:
        raise Rejected(
            f"{len(untrusted)} of {len(checks)} new commit(s) not signed by an allowed signer: "
            f"{'; '.join(untrusted[:10])}{' ...' if len(untrusted) > 10 else ''}"
        )
    return len(checks)


def _reject(
    drop: Transport,
    name: str,
    reason: str,
    site: str = "",
    sequence: int = 0,
    withhold: tuple[str, ...] = (),
) -> Outcome:
    """Set ``name`` aside with its reason; if that fails, say so and leave it (the others go on)."""
    shown = escape(name)
    what = f"envelope {shown}" + (f" (site {site}, sequence {sequence})" if site else "")
    text = f"{what} was rejected at {envelope.format_time(envelope.now())}:\n{reason}\n"
    try:
        moved: Path | None = drop.set_aside(name, text, withhold)
    except GenError as e:
        moved, reason = None, f"{reason}; warning: could not be set aside, skipped: {e}"
    return Outcome(shown, Status.REJECTED, reason, site, sequence, moved)
