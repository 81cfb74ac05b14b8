"""Is an envelope intact and from a trusted sender?
(Everything that needs only the envelope itself.)

In this order: the manifest's signature against the allowed signers (nothing in the manifest is
believed before that), the manifest's strict and canonical form, then every file's size and
sha256, streamed: a bundle damaged or cut short in transit is caught here, since ``git bundle
verify`` would let it through.

Every file is read as untrusted (``core.untrusted``): only a regular file, never through a link,
never blocking on a FIFO, its size checked before a byte is read (the manifest and signature
against ``MAX_MANIFEST``, the others against the size the signed manifest promises).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from generator.core import untrusted
from generator.core.errors import GenError
from generator.deliver.git import sign
from generator.formats import envelope
from generator.formats.envelope import EnvelopeError, Manifest

RESEND = "copy the envelope through the gatekeeper again"


class Rejected(GenError):
    """The envelope must not be imported; the message says why and what to do."""


class Incomplete(GenError):
    """A file of the envelope is missing: perhaps still being copied. Left in place."""


@dataclass(frozen=True)
class Opened:
    """An envelope whose signature and files verified."""

    path: Path
    manifest: Manifest
    raw: bytes
    signature: bytes

    @property
    def digest(self) -> str:
        return envelope.digest(self.raw)


def open_envelope(path: Path, allowed_signers: Path) -> Opened:
    """The verified envelope at ``path``; raise Rejected or Incomplete saying why not."""
    raw = _small(path / envelope.MANIFEST)
    signature = _small(path / envelope.SIGNATURE)
    verdict = sign.verify(raw, signature, allowed_signers, envelope.NAMESPACE, _claimed_sender(raw))
    if not verdict.ok:
        raise Rejected(f"manifest signature: {verdict.reason}")
    try:
        manifest = envelope.parse(raw)
    except EnvelopeError as e:
        raise Rejected(f"signed manifest is invalid: {e}") from e
    for entry in manifest.files:
        _check_file(path / entry.name, entry)
    return Opened(path, manifest, raw, signature)


def _small(path: Path) -> bytes:
    try:
        return untrusted.read_regular(path, envelope.MAX_MANIFEST)
    except FileNotFoundError:
        raise Incomplete(f"{path.name} is missing (still being copied?)") from None
    except untrusted.Unreadable as e:
        raise Rejected(str(e)) from None


def _claimed_sender(raw: bytes) -> str:
    """The sender the (not yet verified) manifest names: only used to ask whose signature it is."""
    try:
        sender = json.loads(raw).get("sender")
    except (ValueError, AttributeError):
        return ""
    return sender if isinstance(sender, str) else ""


def _check_file(path: Path, expected: envelope.FileEntry) -> None:
    try:
        with untrusted.open_regular(path) as f:
            _check_size(path, os.fstat(f.fileno()).st_size, expected)
            size, sha256 = untrusted.sha256(f, expected.size)
    except FileNotFoundError:
        raise Incomplete(f"{path.name} is missing (still being copied?)") from None
    except untrusted.Unreadable as e:
        raise Rejected(str(e)) from None
    _check_size(path, size, expected)  # changed while being read
    if sha256 != expected.sha256:
        raise Rejected(
            f"{path.name} sha256 {sha256[:16]}... is not the manifest's "
            f"{expected.sha256[:16]}... (damaged in transit); {RESEND}"
        )


def _check_size(path: Path, size: int, expected: envelope.FileEntry) -> None:
    if size != expected.size:
        how = "truncated" if size < expected.size else "grown"
        raise Rejected(
            f"{path.name} is {size} bytes, the manifest says {expected.size} ({how} in "
            f"transit); {RESEND}"
        )
