"""One reconcile, and the loop that runs it forever.

``Agent.reconcile`` is the table of contents of the agent (see the package docstring). Every step
is idempotent and the ApplySet parent is widened before anything is applied, so a crash at any
point converges on the next run. The loop reconciles every ``interval`` (correcting drift even when
the commit did not change), sooner with exponential backoff after a failure, and keeps a heartbeat
for ``/healthz``.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

from generator.core.errors import GenError
from generator.core.objects import ObjectId
from generator.deliver.git.repo import Repo
from generator.formats import encrypted_secret as encrypted
from generator.run.agent import apply, health, plan, prune, releases, source, status
from generator.run.agent.kube import Kube, KubeError, Unavailable
from generator.run.agent.metrics import Metrics
from generator.run.agent.settings import Settings
from generator.run.agent.source import Desired, Refused, Tip
from generator.run.agent.status import DEGRADED, FAILED, REFUSED, SYNCED, Result
from generator.run.n9e import client as n9e_client
from generator.run.n9e import reconcile as n9e_reconcile

FIRST_RETRY = 10.0
"""Seconds before retrying a failed reconcile; doubled each time, up to the interval."""


class _Stop(GenError):
    """A step failed in a way that ends the reconcile (source, manifests, parent unreadable)."""

    def __init__(self, result: Result) -> None:
        super().__init__(result.message)
        self.result = result


@dataclass
class Agent:
    """An agent: settings, a Kubernetes client, its metrics and its local repository."""

    settings: Settings
    kube: Kube
    metrics: Metrics
    log: Callable[[str], None] = lambda line: None
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    _heartbeat: float = field(default_factory=time.monotonic)
    _repo: Repo | None = None
    _parsed: source.Parsed = field(default_factory=dict)
    _pool: ThreadPoolExecutor | None = None
    _held: tuple[str, apply.Held] = ("", {})
    """The commit last applied and the objects that held it (``apply.Held``)."""
    _parsed_other: source.Parsed = field(default_factory=dict)
    """Manifests of a second commit: the last healthy release while judging the tip, the failed
    release while an automatic rollback holds (both read again on every round)."""
    _memory: releases.Memory | None = None
    _releases: dict[str, tuple[releases.Running, str]] = field(default_factory=dict)
    _reported: str = ""
    """The commit of the release last logged as running."""
    _verified: tuple[str, str, bytes] | None = None
    """The tip and last applied commit last found trusted, with the allowed signers then."""
    _loaded: Desired | None = None
    """The tip's manifests as last read (a commit's files never change)."""

    @property
    def repo(self) -> Repo:
        if self._repo is None:
            self._repo = source.open_local(self.settings)
        return self._repo

    @property
    def pool(self) -> ThreadPoolExecutor:
        """The request threads, kept from one reconcile to the next (starting them again each
        time costs a no-op reconcile a third of its time on a loaded node)."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(
                max_workers=max(1, self.settings.workers), thread_name_prefix="gen-agent"
            )
        return self._pool

    def close(self) -> None:
        """Stop the request threads (a later reconcile starts new ones)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def alive(self) -> bool:
        """False when the loop has not moved for much longer than a reconcile may take
        (``/healthz``)."""
        limit = 2 * self.settings.interval + 2 * self.settings.health_timeout + 600
        return time.monotonic() - self._heartbeat < limit

    # -- the loop ----------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Reconcile until ``stop`` is set: every interval, sooner
        (with backoff) after a failure."""
        failures = 0
        try:
            while not stop.is_set():
                result = self.reconcile()
                failures = 0 if result.result in (SYNCED, REFUSED) else failures + 1
                stop.wait(self.delay(failures))
        finally:
            self.close()

    def delay(self, failures: int) -> float:
        """Seconds until the next reconcile after ``failures`` failed ones in a row."""
        if failures == 0:
            return self.settings.interval
        return min(
            self.settings.interval, min(FIRST_RETRY, self.settings.interval) * 2.0 ** (failures - 1)
        )

    def reconcile(self) -> Result:
        """One reconcile, recorded (status, events, metrics); returns what happened,
        never raises a GenError."""
        self._heartbeat = time.monotonic()
        started = time.monotonic()
        try:
            result = self._reconcile()
        except _Stop as e:
            result = e.result
        except GenError as e:
            result = Result(FAILED, reasons=("internal",), message=str(e))
        except Exception as e:
            result = Result(
                FAILED,
                reasons=("internal",),
                message=f"internal error (a bug in gen, please report it): {type(e).__name__}: {e}",
            )
        result = replace(result, duration=time.monotonic() - started)
        memory = self._remember()
        result = replace(
            result,
            last_healthy=memory.last_healthy,
            hold=memory.hold,
        )
        problems = status.record(self.kube, self.settings, result, self.metrics, self.clock())
        result = replace(result, status_error="; ".join(problems))
        self._heartbeat = time.monotonic()
        self._log_release(result)
        self.log(result.summary())
        for line in (*result.steps, *result.notes, *problems):
            self.log(f"  {line}")
        return result

    def _log_release(self, result: Result) -> None:
        """One line when the release the cluster runs changes."""
        running = result.release if result.complete else None
        if running is None or running.commit == self._reported:
            return
        self._reported = running.commit
        last = result.last_healthy
        self.log(
            f"running {running.label}, commit {running.commit[:12]}"
            + (f"; last healthy: {last.label}" if last else "")
        )

    # -- the stages --------------------------------------------------------------------------------

    def _reconcile(self) -> Result:
        s = self.settings
        tip = self._fetch()
        parent = self._read_parent()
        try:
            self._verify(tip, parent)
        except Refused as e:
            return Result(REFUSED, e.commit, ("signature",), str(e), notes=tip.notes)
        memory = self._remember()
        hold = memory.hold
        if hold is not None and (hold.failed.commit != tip.commit or not s.auto_rollback):
            self.log(
                f"{self._release(tip.commit)[0].label} arrived: the automatic rollback from "
                f"{hold.failed.label} ends"
                if hold.failed.commit != tip.commit
                else f"automatic rollback is off: the hold at {hold.to.label} ends, "
                f"{hold.failed.label} is applied again"
            )
            hold = None
            self._keep(replace(memory, hold=None))
        if hold is not None:
            return self._hold(tip, hold, parent)
        self._keep(releases.with_attempt(self._remember(), tip.commit, self.clock()))
        result = self._converge(tip, tip.commit, parent)
        self._learn(result)
        return self._judge(tip, result)

    def _converge(
        self, tip: Tip, target: str, parent: prune.Parent, hold: releases.Hold | None = None
    ) -> Result:
        """Make the cluster hold ``target`` (the tip, or during an automatic rollback the last
        healthy release, with what may not go back kept as the failed release made it)."""
        s = self.settings
        raw = self._load(tip, target)
        kept: list[tuple[ObjectId, str]] = []
        if hold is not None:
            failed = self._load(tip, hold.failed.commit, self._parsed_other)
            objects, kept = releases.kept_forward(raw.objects, failed.objects)
            raw = replace(raw, objects=objects)
        desired, unopened = self._materialize(raw)
        set_id = plan.applyset_id(s.parent_name, s.namespace)
        wanted = {**plan.members_of(desired.objects), **{oid: "v1" for oid in unopened}}
        pool = self.pool
        widened = self._write_parent(set_id, {**parent.members, **wanted}, target, parent)
        live = apply.observe(self.kube, desired.objects, set_id, pool)
        held = self._held[1] if self._held[0] == target else {}
        report = apply.apply(
            self.kube, plan.phases(desired.objects), live, set_id, pool, self.sleep, held
        )
        self._held = (target, report.held)
        if report.down:
            raise _Stop(_down(target, report, len(desired.objects)))
        report.errors.update(unopened)
        keep = releases.KEEP_ON_ROLLBACK if hold is not None else None
        pruning = self._prune(parent.members, wanted, report, set_id, pool, keep)
        pruning.kept += kept
        final = {
            **{oid: parent.members[oid] for oid, _ in pruning.kept if oid in parent.members},
            **wanted,
        }
        self._write_parent(set_id, final, target, widened)
        unhealthy = self._health(report)
        n9e_error = self._n9e(desired)
        return self._result(tip, desired, report, pruning, unhealthy, n9e_error, len(final))

    # -- releases ----------------------------------------------------------------------------------

    def _remember(self) -> releases.Memory:
        """What the agent knows about releases (read once: the state file, else the status)."""
        if self._memory is not None:
            return self._memory
        current, known = None, (self.settings.state_dir / releases.STATE).is_file()
        if not known:
            try:
                res = self.kube.resource("v1", "ConfigMap")
                current = self.kube.get(res, self.settings.namespace, self.settings.status_name)
                known = True
            except KubeError:  # unknown for now: asked again next time
                pass
        memory, note = releases.load(self.settings.state_dir, (current or {}).get("data") or {})
        if note:
            self.log(note)
        if known:
            self._memory = memory
        return memory

    def _keep(self, memory: releases.Memory) -> None:
        """Remember ``memory``, on the state volume too (a failure to write it is logged: the
        agent goes on with what it knows in memory)."""
        if memory == self._memory:
            return
        self._memory = memory
        try:
            releases.save(self.settings.state_dir, memory)
        except OSError as e:
            self.log(f"cannot write {self.settings.state_dir / releases.STATE}: {e.strerror}")

    def _release(self, commit: str) -> tuple[releases.Running, str]:
        """The release ``commit`` is (read once per commit), and a note if its trailer is bad."""
        if commit not in self._releases:
            self._releases = {commit: releases.of_commit(self.repo, commit), **self._releases}
            if len(self._releases) > 8:
                self._releases = dict(list(self._releases.items())[:8])
        return self._releases[commit]

    def _learn(self, result: Result) -> None:
        """A release applied completely with every object healthy becomes the last healthy one."""
        if result.complete and result.release is not None and "health" not in result.reasons:
            self._keep(replace(self._remember(), last_healthy=result.release))

    def _judge(self, tip: Tip, result: Result) -> Result:
        """``result`` of applying the tip, or, when it did not become healthy within the health
        timeout and ``auto_rollback`` is on, the result of returning to the last healthy release."""
        s = self.settings
        memory = self._remember()
        last, failed = memory.last_healthy, result.release
        if not (result.complete and "health" in result.reasons) or failed is None:
            return result
        if not s.auto_rollback:
            return result
        if last is None:
            return _noted(result, "no release has become healthy yet: nothing to roll back to")
        if last.commit == result.commit:
            return result
        healthy = self._load(tip, last.commit, self._parsed_other)
        culprits = releases.blamed(
            [u for u, _ in result.unhealthy],
            healthy.objects,
            self._load(tip, result.commit).objects,
        )
        if not culprits:
            return _noted(
                result,
                f"not rolled back: every unhealthy object is the same in the last healthy "
                f"{last.label}, so going back would not cure it",
            )
        waited = self.clock() - memory.attempt_since
        if waited < s.health_timeout:
            return _noted(
                result,
                f"{failed.label} unhealthy for {waited:.0f}s of its {s.health_timeout:.0f}s "
                "health timeout; rolling back once it has passed",
            )
        refused = releases.verify_earlier(self.repo, last.commit, tip.commit, s.allowed_signers)
        if refused:
            return replace(
                result,
                message=f"{result.message}; cannot roll back to {last.label}: {refused}",
            )
        why = dict(result.unhealthy)[culprits[0]]
        more = f" and {len(culprits) - 1} more" if len(culprits) > 1 else ""
        hold = releases.Hold(
            failed, last, self.clock(), f"{culprits[0]}: {why}{more}", s.health_timeout
        )
        self._keep(replace(memory, hold=hold))
        self.metrics.rollbacks.inc()  # counted now: the apply below may yet fail, the hold stays
        self.log(f"AUTOMATIC ROLLBACK: {hold.sentence}")
        back = self._converge(tip, last.commit, self._read_parent(), hold)
        self._learn(back)
        out = self._holding(back, hold)
        return replace(
            out, rolled_back=True, notes=(*out.notes, f"{failed.label}: {result.summary()}")
        )

    def _hold(self, tip: Tip, hold: releases.Hold, parent: prune.Parent) -> Result:
        """A reconcile while an automatic rollback is in effect: the last healthy release again
        (verified like any commit), never the failed tip."""
        s = self.settings
        refused = releases.verify_earlier(self.repo, hold.to.commit, tip.commit, s.allowed_signers)
        if refused:
            return Result(
                FAILED,
                hold.to.commit,
                ("rollback",),
                f"{hold.sentence}; but {refused}: the cluster is left as it is",
                notes=tip.notes,
            )
        back = self._converge(tip, hold.to.commit, parent, hold)
        self._learn(back)
        return self._holding(back, hold)

    def _holding(self, result: Result, hold: releases.Hold) -> Result:
        """``result`` of applying the last healthy release, told as the rollback it is."""
        sentence = hold.sentence
        return replace(
            result,
            result=DEGRADED if result.result == SYNCED else result.result,
            reasons=("rollback", *result.reasons),
            message="; ".join(m for m in (sentence, result.message) if m),
        )

    def _fetch(self) -> Tip:
        try:
            return source.fetch(self.repo, self.settings)
        except GenError as e:  # SourceError, and git or ferry errors alike
            raise _Stop(Result(FAILED, reasons=("source",), message=str(e))) from e

    def _read_parent(self) -> prune.Parent:
        try:
            return prune.read(self.kube, self.settings)
        except KubeError as e:
            raise _Stop(
                Result(FAILED, reasons=(_why(e),), message=f"cannot read the ApplySet parent: {e}")
            ) from e

    def _verify(self, tip: Tip, parent: prune.Parent) -> None:
        """``source.verify``, skipped when the same tip over the same applied commit was found
        trusted by the same allowed signers (an interval reconcile of an unchanged branch)."""
        try:
            signers = self.settings.allowed_signers.read_bytes()
        except OSError:
            signers = b""  # verify names the unreadable file
        key = (tip.commit, parent.commit, signers)
        if signers and self._verified == key:
            return
        self._verified = None
        source.verify(self.repo, tip.commit, parent.commit, self.settings)
        self._verified = key

    def _load(self, tip: Tip, commit: str, cache: source.Parsed | None = None) -> Desired:
        if cache is None and self._loaded is not None and self._loaded.commit == commit:
            return self._loaded
        try:
            desired = source.load(self.repo, commit, self._parsed if cache is None else cache)
        except GenError as e:  # ManifestError, and YAML problems located in the commit
            raise _Stop(Result(FAILED, commit, ("manifests",), str(e), notes=tip.notes)) from e
        if cache is None:
            self._loaded = desired
        return desired

    def _materialize(self, desired: Desired) -> tuple[Desired, dict[ObjectId, str]]:
        """EncryptedSecrets decrypted into Secrets; those that cannot be opened, by the Secret they
        stand for (reported like a failed apply, and kept in the set: never pruned for it)."""
        keys = encrypted.site_identities(self.settings.age_identity)
        objects, unopened = encrypted.materialize_all(desired.objects, keys)
        return replace(desired, objects=objects), unopened

    def _write_parent(
        self, set_id: str, members: plan.Members, commit: str, current: prune.Parent
    ) -> prune.Parent:
        try:
            return prune.write(self.kube, self.settings, set_id, members, commit, current)
        except KubeError as e:
            raise _Stop(
                Result(FAILED, commit, (_why(e),), f"cannot write the ApplySet parent: {e}")
            ) from e

    def _prune(
        self,
        previous: plan.Members,
        wanted: plan.Members,
        report: apply.Report,
        set_id: str,
        pool: ThreadPoolExecutor,
        keep: dict[str, str] | None = None,
    ) -> _Pruning:
        verdict = plan.prune_plan(previous, wanted, self.settings.prune, keep)
        kept = list(verdict.retained)
        if verdict.delete and report.errors:
            kept += [
                (oid, "prune postponed: some objects failed to apply") for oid in verdict.delete
            ]
            return _Pruning(kept=kept, refused=verdict.refused)
        done = prune.delete(self.kube, {oid: previous[oid] for oid in verdict.delete}, set_id, pool)
        kept += [(oid, why) for oid, why in done.failed.items()]
        return _Pruning(done.deleted, kept, verdict.refused, done.failed, done.released)

    def _health(self, report: apply.Report) -> list[tuple[ObjectId, str]]:
        """Wait (up to the timeout, never a poll past it) for what was applied now; the rest is
        judged as observed."""
        applied = set(report.applied)
        unhealthy = [
            (oid, h.message)
            for oid, obj in report.live.items()
            if oid not in applied and not (h := health.assess(obj)).current
        ]
        pending = {oid: report.live[oid] for oid in report.applied if oid in report.live}
        deadline = time.monotonic() + self.settings.health_timeout
        while pending:
            pending = {oid: obj for oid, obj in pending.items() if not health.assess(obj).current}
            left = deadline - time.monotonic()
            if not pending or left <= 0:
                break
            self.sleep(min(self.settings.health_poll, left))  # the last look is at the deadline
            pending = {oid: self._refresh(obj) for oid, obj in pending.items()}
        unhealthy += [(oid, health.assess(obj).message) for oid, obj in pending.items()]
        return sorted(unhealthy)

    def _refresh(self, obj: apply.Obj) -> apply.Obj:
        meta = obj["metadata"]
        try:
            res = self.kube.resource(obj["apiVersion"], obj["kind"])
            return self.kube.get(res, meta.get("namespace", ""), meta["name"]) or obj
        except KubeError:
            return obj

    def _n9e(self, desired: Desired) -> str:
        """Sync the commit's n9e files to the site's Nightingale; "" or what went wrong."""
        settings = self.settings.n9e
        if settings is None:
            return ""
        if not desired.n9e:
            return f"{desired.commit[:12]} has no n9e/ files (is site.monitoring enabled?)"
        try:
            with tempfile.TemporaryDirectory(prefix="gen-agent-n9e-") as tmp:
                for name, data in desired.n9e.items():
                    (Path(tmp) / "n9e" / name).parent.mkdir(parents=True, exist_ok=True)
                    (Path(tmp) / "n9e" / name).write_bytes(data)
                intent = n9e_reconcile.load(Path(tmp))
            api = n9e_client.Client(
                n9e_client.Settings(settings.url, settings.timeout),
                n9e_client.Credentials(settings.username, settings.password, settings.token),
            )
            api.login()
            outcome = n9e_reconcile.run(api, intent)
        except GenError as e:
            return str(e)
        return "; ".join(str(r) for r in outcome.rejections)

    def _result(
        self,
        tip: Tip,
        desired: Desired,
        report: apply.Report,
        pruning: _Pruning,
        unhealthy: list[tuple[ObjectId, str]],
        n9e_error: str,
        members: int,
    ) -> Result:
        reasons = _reasons(tip, report, pruning, unhealthy, n9e_error)
        errors = [(str(oid), why) for oid, why in sorted(report.errors.items())]
        errors += [(str(oid), why) for oid, why in sorted(pruning.failed.items())]
        errors += [("n9e", n9e_error)] if n9e_error else []
        errors += [
            ("envelope " + line.split(":", 1)[0], line.split(":", 1)[-1].strip())
            for line in tip.rejected
        ]
        message = pruning.refused or (
            "; ".join(f"{what}: {why}" for what, why in errors[:3]) if errors else ""
        )
        if not message and unhealthy:
            message = (
                f"{len(unhealthy)} object(s) not healthy: {unhealthy[0][0]}: {unhealthy[0][1]}"
            )
        retained = [(str(oid), why) for oid, why in pruning.kept] + [
            (str(oid), why) for oid, why in pruning.released
        ]
        running, bad_trailer = self._release(desired.commit)
        return Result(
            DEGRADED if reasons else SYNCED,
            desired.commit,
            tuple(reasons),
            message,
            tuple(report.applied),
            len(report.unchanged),
            tuple(pruning.deleted),
            members,
            tuple(errors),
            tuple(retained),
            tuple((str(oid), why) for oid, why in unhealthy),
            (*tip.notes, bad_trailer) if bad_trailer else tip.notes,
            report.dry_runs,
            steps=tuple(report.steps),
            release=running,
        )


def _noted(result: Result, note: str) -> Result:
    return replace(result, notes=(*result.notes, note))


def _why(error: KubeError) -> str:
    """The failure reason of a step that met ``error``: "api" when the server did not answer."""
    return "api" if isinstance(error, Unavailable) else "apply"


def _down(commit: str, report: apply.Report, total: int) -> Result:
    """The round that stopped early because the API server is gone (nothing pruned)."""
    return Result(
        FAILED,
        commit,
        ("api",),
        f"{report.down}; stopped with {report.skipped} of {total} object(s) not attempted, "
        "nothing pruned; retrying with backoff",
        applied=tuple(report.applied),
        unchanged=len(report.unchanged),
        errors=tuple((str(oid), why) for oid, why in sorted(report.errors.items())),
    )


@dataclass
class _Pruning:
    deleted: list[ObjectId] = field(default_factory=list)
    kept: list[tuple[ObjectId, str]] = field(default_factory=list)
    refused: str = ""
    failed: dict[ObjectId, str] = field(default_factory=dict)
    released: list[tuple[ObjectId, str]] = field(default_factory=list)


def _reasons(
    tip: Tip,
    report: apply.Report,
    pruning: _Pruning,
    unhealthy: list[tuple[ObjectId, str]],
    n9e_error: str,
) -> list[str]:
    reasons = []
    if report.errors:
        reasons.append("apply")
    if pruning.failed:
        reasons.append("prune")
    if pruning.refused:
        reasons.append("prune-guard")
    if unhealthy:
        reasons.append("health")
    if n9e_error:
        reasons.append("n9e")
    if any("sign" in line for line in tip.rejected):
        reasons.append("signature")
    elif tip.rejected:
        reasons.append("source")
    return reasons
