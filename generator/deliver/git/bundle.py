"""Git bundles: create one (full or from a basis), read its header, fetch it into a quarantine ref,
and check who signed the commits it brought.

``git bundle verify`` accepts truncated and bit-flipped bundles, so callers verify the file's
size and sha256 before anything here reads it; fetching still runs with ``transfer.fsckObjects``
because a bundle is untrusted input until every commit in it is known to be signed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from generator.core.errors import GenError
from generator.deliver.git.repo import GitError, Repo

_SIGNATURES = {
    "G": "good",
    "B": "bad signature",
    "U": "signed by a key the allowed signers file does not trust",
    "X": "expired signature",
    "Y": "signed by an expired key",
    "R": "signed by a revoked key",
    "E": "signature cannot be checked",
    "N": "not signed",
}
_OID = re.compile(r"^[0-9a-f]{40}$")
MAX_HEADER = 1 << 16


class BundleError(GenError):
    """A bundle that cannot be read or fetched; the message says which file and why."""


@dataclass(frozen=True)
class Header:
    """What a bundle says about itself: the commits it needs and the refs it carries."""

    prerequisites: tuple[str, ...]
    refs: tuple[tuple[str, str], ...]
    """``(refname, commit)`` pairs in file order."""


@dataclass(frozen=True)
class CommitCheck:
    """Whether one commit is signed by an allowed signer, and by whom."""

    commit: str
    status: str
    """git's ``%G?`` letter: ``G`` good; anything else is refused."""
    signer: str
    fingerprint: str

    @property
    def trusted(self) -> bool:
        """Good, and an SSH signature (an OpenPGP or X.509 one never counts,
        whatever gpg trusts)."""
        return self.status == "G" and self.fingerprint.startswith("SHA256:")

    def describe(self) -> str:
        """``abc123456789 not signed`` / ``... signed by a key ... (SHA256:...)``."""
        what = _SIGNATURES.get(self.status, f"signature status {self.status}")
        key = f" ({self.fingerprint})" if self.fingerprint else ""
        return f"{self.commit[:12]} {what}{key}"


def create(repo: Repo, path: Path, ref: str, basis: str | None) -> None:
    """Write a bundle of ``ref`` to ``path``: everything, or only what ``basis`` lacks."""
    args = ["bundle", "create", "--quiet", str(path), ref]
    if basis:
        args.append(f"^{basis}")
    repo.run(*args)


def read_header(path: Path) -> Header:
    """Parse a v2/v3 bundle header
    (prerequisites and refs) without trusting the rest of the file."""
    with open(path, "rb") as f:
        raw = f.read(MAX_HEADER)
    end = raw.find(b"\n\n")
    if end < 0:
        raise BundleError(f"{path}: not a git bundle (no header end within {MAX_HEADER} bytes)")
    lines = raw[:end].decode("ascii", "replace").split("\n")
    if lines[0] not in ("# v2 git bundle", "# v3 git bundle"):
        raise BundleError(f"{path}: not a git bundle (first line {lines[0][:40]!r})")
    prerequisites: list[str] = []
    refs: list[tuple[str, str]] = []
    for line in lines[1:]:
        if line.startswith("@"):
            continue  # v3 capabilities such as @object-format=sha1
        oid, _, rest = line.lstrip("-").partition(" ")
        if not _OID.match(oid):
            raise BundleError(f"{path}: malformed bundle header line {line[:80]!r}")
        if line.startswith("-"):
            prerequisites.append(oid)
        else:
            refs.append((rest, oid))
    return Header(tuple(prerequisites), tuple(refs))


def fetch(repo: Repo, path: Path, ref: str, into: str) -> str:
    """Fetch ``ref`` from the bundle at ``path`` into the ref ``into`` (forced); the fetched commit.

    Nothing else in the repository changes: no branch, no tag, no FETCH_HEAD.
    """
    try:
        repo.run(
            "-c",
            "transfer.fsckObjects=true",
            "fetch",
            "--quiet",
            "--no-tags",
            "--no-write-fetch-head",
            str(path),
            f"+{ref}:{into}",
        )
    except GitError as e:
        raise BundleError(f"git cannot fetch {ref} from {path.name}: {e}") from e
    fetched = repo.resolve(into)
    if fetched is None:
        raise BundleError(f"fetching {ref} from {path.name} left no commit at {into}")
    return fetched


def check_signatures(
    repo: Repo, tip: str, known: str | None, allowed_signers: Path
) -> list[CommitCheck]:
    """Every commit reachable from ``tip`` but not from ``known``, with its signature status,
    oldest first.

    Signatures are checked by git against ``allowed_signers`` (``gpg.ssh.allowedSignersFile``).
    """
    if not allowed_signers.is_file():
        raise GenError(f"allowed signers file {allowed_signers} does not exist")
    args = [
        "-c",
        f"gpg.ssh.allowedSignersFile={allowed_signers}",
        "log",
        "--reverse",
        "--format=%H%x00%G?%x00%GS%x00%GK",
        tip,
    ]
    if known:
        args += ["--not", known]
    out = repo.text(*args, "--")
    checks = []
    for line in out.splitlines():
        commit, status, signer, fingerprint = [*line.split("\0"), "", "", ""][:4]
        checks.append(CommitCheck(commit, status, signer, fingerprint))
    return checks
