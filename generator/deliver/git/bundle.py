"""Git bundles: create one (full or from a basis), read its header, fetch it into a quarantine ref,
and check who signed the commits it brought.

``git bundle verify`` accepts truncated and bit-flipped bundles, so callers verify the file's
size and sha256 before anything here reads it. A bundle is still untrusted input until every
commit in it is known to be signed, and ``git fetch`` from a bundle does not fsck what it brings
(git 2.39 ignores ``transfer.fsckObjects`` there), so ``fetch`` indexes the bundle's pack itself
with ``git index-pack --strict``: every object is fsck-checked, whatever git version, before any
ref points at it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from generator.core import untrusted
from generator.core.errors import GenError
from generator.deliver.git.repo import Repo, run_git

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
_FSCK = (
    "--strict=badFilemode=error",  # git only warns: a deploy tree has no use for odd modes
    "--fsck-objects",
)


class BundleError(GenError):
    """A bundle that cannot be read or fetched; the message says which file and why."""


@dataclass(frozen=True)
class Header:
    """What a bundle says about itself: the commits it needs and the refs it carries."""

    prerequisites: tuple[str, ...]
    refs: tuple[tuple[str, str], ...]
    """``(refname, commit)`` pairs in file order."""
    length: int = 0
    """Bytes of the header (its blank line included): the pack starts there."""


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
    try:
        with untrusted.open_regular(path) as f:
            raw = f.read(MAX_HEADER)
    except (OSError, untrusted.Unreadable) as e:
        raise BundleError(f"{path}: cannot read the bundle: {_why(e)}") from None
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
    return Header(tuple(prerequisites), tuple(refs), end + 2)


def _why(e: Exception) -> str:
    return e.strerror or str(e) if isinstance(e, OSError) else str(e)


def fetch(repo: Repo, path: Path, ref: str, into: str) -> str:
    """Bring the objects of the bundle at ``path`` into ``repo``, every one fsck-checked and
    connected (``git index-pack --strict``), then point the ref ``into`` (forced) at the commit
    the bundle carries as ``ref``; that commit.

    On any refusal no ref changes (objects already written stay unreachable). Nothing else in the
    repository changes: no branch, no tag, no FETCH_HEAD.
    """
    header = read_header(path)
    commit = dict(header.refs).get(ref)
    if commit is None:
        raise BundleError(f"{path.name} does not carry {ref} (it carries {list(header.refs)})")
    _index_pack(repo, path, header)
    if repo.resolve(commit) != commit:
        raise BundleError(f"{path.name}: {ref} is {commit[:12]}, which is not a commit")
    repo.run("update-ref", into, commit)
    return commit


def _index_pack(repo: Repo, path: Path, header: Header) -> None:
    """Index the pack after the header; raise BundleError with git's complaint if it refuses."""
    try:
        with untrusted.open_regular(path) as f:
            f.seek(header.length)
            args = ["index-pack", "--stdin", "--fix-thin", *_FSCK]
            proc = run_git(["--git-dir", str(repo.git_dir), *args], stdin=f)
    except (OSError, untrusted.Unreadable) as e:
        raise BundleError(f"{path}: cannot read the bundle: {_why(e)}") from None
    if proc.returncode != 0:
        lines = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        why = "; ".join(line.strip() for line in lines[:5]) or f"exit {proc.returncode}"
        raise BundleError(f"{path.name}: git refuses the objects in the bundle: {why}")


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
