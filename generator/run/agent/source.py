"""Where the desired state comes from: the deploy branch, fetched or imported, verified, then read.

Two kinds of source, so a site needs no git server:

- a git URL: fetched into a local bare repository (``<state>/repo.git``) under ``refs/gen-agent/``;
- an envelope directory: ferry envelopes are imported into that repository by
  ``generator.deliver.ferry`` with exactly the checks of ``gen ferry import`` (manifest signature,
  hashes, sequence, expiry, fast-forward, commit signatures).

Either way the tip is trusted only if every commit since the last one applied (only the tip itself
when nothing was applied yet) is signed by an allowed signer, and the tip descends from the last
applied commit (no rollback by a rewritten branch). Files are then read straight from git objects:
no checkout, one ``ls-tree`` and one ``cat-file --batch``.
"""

from __future__ import annotations

import hashlib
import os
import shlex
from dataclasses import dataclass, field
from typing import Any

from generator.core import layout, yamlio
from generator.core.errors import GenError
from generator.core.objects import ObjectId, identity
from generator.deliver import publish
from generator.deliver.ferry import receive
from generator.deliver.git import bundle, tree
from generator.deliver.git.repo import GitError, Repo, open_repo
from generator.run.agent.settings import EnvelopeSource, GitSource, Settings

FETCHED = "refs/gen-agent/fetched"
MANIFESTS = f"{layout.MANIFESTS}/"
N9E = f"{layout.N9E}/"


class SourceError(GenError):
    """The branch could not be fetched or imported (network, credentials, missing branch)."""


class Refused(GenError):
    """The tip is not trusted: unsigned, signed by an unknown key, or not a fast-forward."""

    def __init__(self, message: str, commit: str) -> None:
        super().__init__(message)
        self.commit = commit


class ManifestError(GenError):
    """The commit's files are not a valid compiled site (bad YAML, an index mismatch,
    a duplicate)."""


@dataclass(frozen=True)
class Tip:
    """The branch's commit after fetching, and what the
    source had to say (rejected envelopes, ...)."""

    commit: str
    notes: tuple[str, ...] = ()
    rejected: tuple[str, ...] = ()
    """Envelopes refused by the import (signature, hashes, replay, ...), each with its reason."""


@dataclass(frozen=True)
class Desired:
    """A commit's objects (in file order) and its n9e files."""

    commit: str
    objects: list[dict[str, Any]]
    n9e: dict[str, bytes] = field(default_factory=dict)

    @property
    def ids(self) -> frozenset[ObjectId]:
        return frozenset(identity(o) for o in self.objects)


def open_local(settings: Settings) -> Repo:
    """The agent's own repository on its volume (created bare on first use)."""
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    return open_repo(settings.state_dir / "repo.git", create=True)


def fetch(repo: Repo, settings: Settings) -> Tip:
    """Bring the deploy branch up to date from the source; its tip (not yet verified)."""
    if isinstance(settings.source, GitSource):
        return _fetch_git(repo, settings.source, settings.ref)
    return _import_envelopes(repo, settings.source, settings)


def _fetch_git(repo: Repo, source: GitSource, ref: str) -> Tip:
    try:
        repo.run(
            "fetch",
            "--quiet",
            "--no-tags",
            "--no-write-fetch-head",
            "--end-of-options",
            source.url,
            f"+{ref}:{FETCHED}",
            env=_ssh_env(repo, source),
        )
    except GitError as e:
        raise SourceError(f"cannot fetch {ref} from {source.url}: {e}") from e
    tip = repo.resolve(FETCHED)
    if tip is None:
        raise SourceError(f"{source.url} has no branch {ref}")
    return Tip(tip)


def _ssh_env(repo: Repo, source: GitSource) -> dict[str, str]:
    """``GIT_SSH_COMMAND`` using the configured key (a private copy, mode 0600) and known_hosts."""
    if source.ssh_key is None:
        return {}
    key = repo.git_dir / "gen-agent-ssh-key"
    try:
        data = source.ssh_key.read_bytes()
        fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(key, 0o600)
    except OSError as e:
        raise SourceError(f"cannot use the ssh key {source.ssh_key}: {e.strerror}") from e
    hosts = (
        f"-o UserKnownHostsFile={shlex.quote(str(source.known_hosts))} -o StrictHostKeyChecking=yes"
        if source.known_hosts
        else "-o StrictHostKeyChecking=accept-new"
    )
    return {"GIT_SSH_COMMAND": f"ssh -i {shlex.quote(str(key))} -o IdentitiesOnly=yes {hosts}"}


def _import_envelopes(repo: Repo, source: EnvelopeSource, settings: Settings) -> Tip:
    where = source.transport.describe()
    if not source.transport.reachable():
        raise SourceError(f"envelope directory {where} does not exist (is the volume mounted?)")
    inside = receive.Settings(repo.git_dir, settings.allowed_signers, (settings.site,))
    report = receive.receive(source.transport, inside)
    notes = (
        tuple(f"{o.status.value} {o.name}: {o.message}" for o in report.outcomes) + report.repaired
    )
    rejected = tuple(
        f"{o.name}: {o.message}" for o in report.outcomes if o.status is receive.Status.REJECTED
    )
    tip = repo.resolve(publish.branch(settings.site))
    if tip is None:
        raise SourceError(
            f"no envelope of site {settings.site} has been imported yet from {where}"
            + (f" ({'; '.join(notes)})" if notes else "")
        )
    return Tip(tip, notes, rejected)


def verify(repo: Repo, tip: str, known: str, settings: Settings) -> int:
    """Raise Refused unless ``tip`` is trusted (see the module docstring);
    the number of commits checked."""
    base = _base(repo, tip, known, settings)
    checks = bundle.check_signatures(repo, tip, base, settings.allowed_signers)
    untrusted = [c.describe() for c in checks if not c.trusted]
    if untrusted:
        raise Refused(
            f"refused {tip[:12]}: {len(untrusted)} of {len(checks)} new commit(s) "
            "not signed by an allowed "
            f"signer ({settings.allowed_signers}): {'; '.join(untrusted[:5])}"
            f"{' ...' if len(untrusted) > 5 else ''}; the cluster is left as it is",
            tip,
        )
    return len(checks)


def _base(repo: Repo, tip: str, known: str, settings: Settings) -> str | None:
    """The commit new history is counted from: the last applied one, else the tip's first parent."""
    if known and known != tip and repo.resolve(known) and repo.is_ancestor(known, tip):
        return known
    if known and known != tip and not settings.allow_rewind:
        raise Refused(
            f"refused {tip[:12]}: it does not descend from the last applied commit {known[:12]} (a "
            "rewritten or rolled-back branch); the cluster is left as it is. If this is intended, "
            "run once with --allow-rewind",
            tip,
        )
    return repo.resolve(f"{tip}^")


Parsed = dict[str, tuple[str, list[dict[str, Any]]]]
"""Blob id -> (sha256, objects): manifests already read,
so an unchanged file is never parsed twice."""


def load(repo: Repo, commit: str, cache: Parsed | None = None) -> Desired:
    """The objects under ``manifests/`` and the files under ``n9e/`` of ``commit``, checked.

    ``cache`` (kept by the caller between reconciles) is updated to hold exactly this commit's
    manifests; the objects in it are shared and must not be changed.
    """
    cache = {} if cache is None else cache
    listing = _listing(repo, commit)
    manifests = {p: oid for p, oid in listing.items() if p.startswith(MANIFESTS)}
    others = {p: oid for p, oid in listing.items() if not p.startswith(MANIFESTS)}
    blobs = _cat(
        repo, sorted({oid for oid in manifests.values() if oid not in cache} | set(others.values()))
    )
    for path, oid in sorted(manifests.items()):
        if oid not in cache:
            cache[oid] = (hashlib.sha256(blobs[oid]).hexdigest(), _parse(blobs[oid], path, commit))
    for stale in set(cache) - set(manifests.values()):
        del cache[stale]
    digests = {p: cache[oid][0] for p, oid in manifests.items()}
    _check_index(blobs.get(others.get(layout.INDEX, "")), digests, commit)
    objects: list[dict[str, Any]] = []
    seen: dict[ObjectId, str] = {}
    for path, oid in sorted(manifests.items()):
        for obj in cache[oid][1]:
            key = identity(obj)
            if key in seen:
                raise ManifestError(f"{commit[:12]}: {key} is in both {seen[key]} and {path}")
            seen[key] = path
            objects.append(obj)
    n9e = {p[len(N9E) :]: blobs[oid] for p, oid in others.items() if p.startswith(N9E)}
    return Desired(commit, objects, n9e)


def _parse(data: bytes, path: str, commit: str) -> list[dict[str, Any]]:
    if not path.endswith((".yaml", ".yml")):
        return []
    found = yamlio.load_rendered(data.decode("utf-8", "replace"), f"{commit[:12]}:{path}")
    for obj in found:
        _checked_identity(obj, path)
    return found


def _checked_identity(obj: dict[str, Any], path: str) -> ObjectId:
    meta = obj.get("metadata")
    if (
        not isinstance(obj.get("apiVersion"), str)
        or not isinstance(obj.get("kind"), str)
        or not isinstance(meta, dict)
        or not isinstance(meta.get("name"), str)
    ):
        raise ManifestError(
            f"{path}: not a Kubernetes object (apiVersion, kind and metadata.name are needed)"
        )
    return identity(obj)


def _check_index(index: bytes | None, digests: dict[str, str], commit: str) -> None:
    """The commit's index.json and its manifests agree
    (a publish that went wrong is caught here)."""
    if index is None:
        return
    try:
        parsed = layout.parse(index, commit[:12])
    except layout.LayoutError as e:
        raise ManifestError(str(e)) from e
    problems = layout.mismatches(parsed, digests, MANIFESTS)
    if problems:
        raise ManifestError(
            f"{commit[:12]}: {'; '.join(problems[:5])}{' ...' if len(problems) > 5 else ''}"
        )


# The agent's hot path reads through the git binary, not gitpython: for a commit of 1,000
# manifests gitpython's tree walk and per-blob odb.stream cost 1.5x (first reconcile: 0.127 s
# against 0.083 s) and 1.7x (no-op: 0.012 s against 0.007 s); bench/git_reads.py.
def _listing(repo: Repo, commit: str) -> dict[str, str]:
    """Blob id of every file under manifests/ and n9e/, and of index.json, by path
    (one git process)."""
    listing = repo.run("ls-tree", "-r", "-z", "--full-tree", commit)
    wanted: dict[str, str] = {}
    for record in listing.split(b"\0"):
        meta, _, raw_path = record.partition(b"\t")
        path = raw_path.decode("utf-8", "replace")
        if b" blob " in meta and (path.startswith((MANIFESTS, N9E)) or path == layout.INDEX):
            wanted[path] = meta.split(b" ")[2].decode()
    return wanted


def _cat(repo: Repo, oids: list[str]) -> dict[str, bytes]:
    if not oids:
        return {}
    out = repo.run("cat-file", "--batch", input="".join(f"{oid}\n" for oid in oids).encode())
    try:
        return tree.split_batch(out, oids)
    except LookupError as e:
        raise ManifestError(f"{repo.git_dir}: object {e} is missing") from None
