"""Releases at the site: the one the agent runs, the last that became healthy, and the automatic
rollback (opt-in, ``Settings.auto_rollback``).

A deploy commit's release is read from its trailers (``generator.core.release``); a commit made
before releases existed is numbered by its position on the branch (the first commit is 1).

The agent remembers, in ``<state>/release.json`` (and in the status ConfigMap, read back when the
file is missing), the last release that became healthy (applied completely, every object healthy)
and, while an automatic rollback is in effect, the release that failed and the one it returned to.
While it holds, the agent keeps applying the healthy release and does not move forward until the
branch's tip is a different commit than the failed one.

During an automatic rollback nothing whose loss could lose data is deleted or moved back
(``KEEP_ON_ROLLBACK``, ``kept_forward``): those objects stay as the failed release made them and
are listed as retained, for an operator to decide.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from generator.core import fsutil, release
from generator.core.objects import ObjectId, identity
from generator.deliver.git.repo import GitError, Repo

STATE = "release.json"
"""File in the state directory: the last healthy release and the rollback in effect."""

KEEP_ON_ROLLBACK = {
    "PersistentVolumeClaim": "a claim holds data",
    "PersistentVolume": "a volume's reclaim policy may delete its storage",
    "Namespace": "deleting a namespace deletes everything in it, claims included",
    "StatefulSet": "its pods hold state and its claims may go with it "
    "(persistentVolumeClaimRetentionPolicy)",
    "CustomResourceDefinition": "deleting a definition deletes every object of its kind",
}
"""Kinds an automatic rollback never deletes (whatever ``prune`` allows), with the reason."""


@dataclass(frozen=True)
class Running:
    """A release as the agent knows it: its number, name and commit."""

    number: int
    commit: str
    name: str = ""
    rollback_to: int | None = None
    """The release this one restores (made by ``gen rollback``), or None."""

    @property
    def label(self) -> str:
        """``release 7 (spring-upgrade)``, ``release 4 (restores 1)``."""
        extra = [x for x in (self.name, f"restores {self.rollback_to}" if self.rollback_to else "")]
        shown = ", ".join(x for x in extra if x)
        return f"release {self.number}" + (f" ({shown})" if shown else "")

    def as_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "commit": self.commit,
            "name": self.name,
            "rollback_to": self.rollback_to,
        }

    @classmethod
    def from_dict(cls, raw: Any) -> Running | None:
        if not isinstance(raw, dict):
            return None
        number, commit = raw.get("number"), raw.get("commit")
        if not isinstance(number, int) or number < 1 or not isinstance(commit, str) or not commit:
            return None
        name = raw.get("name") if isinstance(raw.get("name"), str) else ""
        back = raw.get("rollback_to")
        return cls(number, commit, name or "", back if isinstance(back, int) else None)


def of_commit(repo: Repo, commit: str) -> tuple[Running, str]:
    """The release ``commit`` is, and a note when its trailer is malformed (then, as for a commit
    without one, it is numbered by its position on the branch)."""
    note = ""
    try:
        found = release.parse(repo.text("log", "-1", "--format=%B", commit, "--"))
    except release.ReleaseError as e:
        found, note = None, f"commit {commit[:12]}: {e}; numbered by its position on the branch"
    if found is not None:
        return Running(found.number, commit, found.name, found.rollback_to), note
    count = repo.text("rev-list", "--count", "--first-parent", commit, "--")
    return Running(int(count), commit), note


@dataclass(frozen=True)
class Hold:
    """An automatic rollback in effect: ``failed`` did not become healthy, ``to`` is applied."""

    failed: Running
    to: Running
    since: float
    """Unix time of the rollback."""
    why: str
    """What was not healthy (the first object and its state)."""
    timeout: float
    """The health timeout it did not become healthy within (seconds)."""

    @property
    def sentence(self) -> str:
        """What the status (``rollback``), the Warning event and the log say."""
        return (
            f"automatic rollback: {self.failed.label} (commit {self.failed.commit[:12]}) did not "
            f"become healthy within {_duration(self.timeout)} ({self.why}); returned to the last "
            f"healthy {self.to.label} (commit {self.to.commit[:12]}); holding there until a "
            f"release newer than {self.failed.number} arrives"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "failed": self.failed.as_dict(),
            "to": self.to.as_dict(),
            "since": self.since,
            "why": self.why,
            "timeout": self.timeout,
        }

    @classmethod
    def from_dict(cls, raw: Any) -> Hold | None:
        if not isinstance(raw, dict):
            return None
        failed, to = Running.from_dict(raw.get("failed")), Running.from_dict(raw.get("to"))
        since, timeout = raw.get("since"), raw.get("timeout")
        if failed is None or to is None or not isinstance(since, int | float):
            return None
        timeout = float(timeout) if isinstance(timeout, int | float) else 0.0
        return cls(failed, to, float(since), str(raw.get("why") or ""), timeout)


@dataclass(frozen=True)
class Memory:
    """What the agent remembers about releases across restarts."""

    last_healthy: Running | None = None
    hold: Hold | None = None
    attempt: str = ""
    """The commit the agent is trying to make healthy ..."""
    attempt_since: float = 0.0
    """... and the Unix time it first applied it (the health timeout counts from there)."""

    def as_json(self) -> bytes:
        data = {
            "last_healthy": self.last_healthy.as_dict() if self.last_healthy else None,
            "hold": self.hold.as_dict() if self.hold else None,
            "attempt": {"commit": self.attempt, "since": self.attempt_since},
        }
        return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()


def load(state_dir: Path, status: dict[str, str]) -> tuple[Memory, str]:
    """The memory kept in ``state_dir``; without the file, the last healthy release the status
    ConfigMap names (its commit is verified like any other before it is applied). A note when the
    file could not be read."""
    path = state_dir / STATE
    try:
        raw = json.loads(path.read_bytes())
    except FileNotFoundError:
        return _from_status(status), ""
    except (OSError, ValueError) as e:
        return _from_status(status), f"{path}: unreadable ({e}); using the status ConfigMap"
    if not isinstance(raw, dict):
        return _from_status(status), f"{path}: not a JSON object; using the status ConfigMap"
    found = raw.get("attempt")
    attempt: dict[str, Any] = found if isinstance(found, dict) else {}
    since = attempt.get("since")
    return Memory(
        Running.from_dict(raw.get("last_healthy")),
        Hold.from_dict(raw.get("hold")),
        str(attempt.get("commit") or ""),
        float(since) if isinstance(since, int | float) else 0.0,
    ), ""


HOLD_KEY = "rollbackHold"
"""The status ConfigMap's copy of the automatic rollback in effect (JSON; "" when none), so a
hold outlives the loss of the state volume."""


def hold_text(hold: Hold | None) -> str:
    """``hold`` as the status ConfigMap keeps it."""
    return json.dumps(hold.as_dict(), sort_keys=True) if hold else ""


def _from_status(status: dict[str, str]) -> Memory:
    """The last healthy release and the hold the status names (each commit is verified like any
    other before it is applied)."""
    number, commit = status.get("lastHealthyRelease", ""), status.get("lastHealthyCommit", "")
    if not number.isdigit() or int(number) < 1 or not commit:
        return Memory()
    try:
        hold = Hold.from_dict(json.loads(status.get(HOLD_KEY) or "null"))
    except ValueError:
        hold = None
    return Memory(Running(int(number), commit, status.get("lastHealthyReleaseName", "")), hold)


def save(state_dir: Path, memory: Memory) -> None:
    """Write ``memory`` (atomically, fsynced: it decides what the agent applies after a restart)."""
    fsutil.write_atomic(state_dir / STATE, memory.as_json(), durable=True)


def verify_earlier(repo: Repo, commit: str, tip: str, allowed: Path) -> str:
    """Why ``commit`` may not be rolled back to ("" when it may): it must be in the repository, an
    ancestor of the verified ``tip`` (on the branch) and signed by an allowed signer."""
    from generator.deliver.git import bundle

    try:
        if repo.resolve(commit) is None:
            return f"commit {commit[:12]} is not in the agent's repository"
        if not repo.is_ancestor(commit, tip):
            return f"commit {commit[:12]} is not on the branch that leads to {tip[:12]}"
        checks = bundle.check_signatures(repo, commit, repo.resolve(f"{commit}^"), allowed)
    except GitError as e:
        return f"cannot check commit {commit[:12]}: {e}"
    bad = [c.describe() for c in checks if not c.trusted]
    return f"commit {commit[:12]} is not signed by an allowed signer: {bad[0]}" if bad else ""


def kept_forward(
    healthy: list[dict[str, Any]], failed: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[tuple[ObjectId, str]]]:
    """The objects a rollback from ``failed`` to ``healthy`` applies: ``healthy``'s, except those
    that cannot safely go back, which keep the failed release's version (with why):

    - a CustomResourceDefinition: a version the failed release added may already store objects;
    - a PersistentVolumeClaim: a claim cannot shrink, and its data stays as it is;
    - a StatefulSet whose volumeClaimTemplates changed: they are immutable (going back would
      need the StatefulSet deleted) and the claims made from them stay;
    - a Job whose pod template changed: it is immutable, and the Job has run (or is running).
    """
    before = {identity(o): o for o in failed}
    out: list[dict[str, Any]] = []
    kept: list[tuple[ObjectId, str]] = []
    for obj in healthy:
        oid = identity(obj)
        other = before.get(oid)
        why = _why_forward(obj, other) if other is not None and other != obj else ""
        if other is not None and why:
            out.append(other)
            kept.append((oid, f"kept as the failed release made it: {why}"))
        else:
            out.append(obj)
    return out, kept


def _why_forward(healthy: dict[str, Any], failed: dict[str, Any]) -> str:
    kind = healthy.get("kind")
    if kind == "CustomResourceDefinition":
        return "a definition's versions may already store objects"
    if kind == "PersistentVolumeClaim":
        return "a claim cannot shrink and holds data"
    if kind == "Job":
        pods = [(o.get("spec") or {}).get("template") for o in (healthy, failed)]
        if pods[0] != pods[1]:
            return "a Job's pod template is immutable, and the Job has already run"
    if kind == "StatefulSet":
        templates = [
            (o.get("spec") or {}).get("volumeClaimTemplates") or [] for o in (healthy, failed)
        ]
        if templates[0] != templates[1]:
            return "its volumeClaimTemplates are immutable and its claims hold data"
    return ""


def blamed(
    unhealthy: Iterable[str], healthy: list[dict[str, Any]], failed: list[dict[str, Any]]
) -> list[str]:
    """The unhealthy objects the failed release changed (or added): a rollback helps only them.
    An object that is the same in both releases is unhealthy for another reason (a node, a
    registry) that going back would not cure. Objects are named as ``str(ObjectId)``."""
    before = {str(identity(o)): o for o in healthy}
    now = {str(identity(o)): o for o in failed}
    return [oid for oid in unhealthy if oid not in now or before.get(oid) != now[oid]]


def with_attempt(memory: Memory, commit: str, now: float) -> Memory:
    """``memory`` trying ``commit`` (since ``now`` unless it already was)."""
    return (
        memory if memory.attempt == commit else replace(memory, attempt=commit, attempt_since=now)
    )


def _duration(seconds: float) -> str:
    whole = int(seconds)
    if whole != seconds or whole < 60:
        return f"{seconds:g}s"
    minutes, rest = divmod(whole, 60)
    return f"{minutes}m{rest}s" if rest else f"{minutes}m"
