"""age encryption (the only module that imports pyrage): recipients, identities, armor, encrypt,
decrypt.

Files are ASCII-armored age (``-----BEGIN AGE ENCRYPTED FILE-----``), readable by the ``age`` tool
(``age -d -i key.txt file.age``) and diffable line by line. Recipients are age X25519 public keys
(``age1...``) or SSH public keys (``ssh-ed25519 ...``, ``ssh-rsa ...``); identities are age identity
files (as ``age-keygen`` writes them) or unencrypted OpenSSH private keys. Every pyrage error is
turned into a CryptoError here, naming the file or object and what to do; none holds a secret value.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyrage
from pyrage import ssh, x25519

from generator.core.errors import GenError

ARMOR_BEGIN = "-----BEGIN AGE ENCRYPTED FILE-----"
ARMOR_END = "-----END AGE ENCRYPTED FILE-----"
AGE_HEADER = b"age-encryption.org/v1\n"
RECIPIENT_STANZAS = ("X25519", "ssh-ed25519", "ssh-rsa")
"""Stanza types that stand for one recipient (age adds random "grease" stanzas besides)."""
_SSH_PRIVATE = b"-----BEGIN OPENSSH PRIVATE KEY-----"
_IDENTITY_PREFIX = "AGE-SECRET-KEY-1"


class CryptoError(GenError):
    """A key or a ciphertext that cannot be used; the message says which and what to do."""


class NotForThisKey(CryptoError):
    """The ciphertext is intact but none of the identities can open it (another site's, or an old
    key)."""


@dataclass(frozen=True)
class Identities:
    """Private keys that decrypt, with where they came from (for messages; never the keys)."""

    keys: tuple[Any, ...]
    source: str
    """The file (or variable) they were read from."""
    public: tuple[str, ...] = ()
    """The age recipients of the X25519 keys among them."""
    problem: str = ""
    """Why there are no keys (not configured, unreadable), for the error of each secret they cannot
    open."""

    def describe(self) -> str:
        """``the identity in FILE (age1...)``: which keys were tried, for error messages."""
        shown = ", ".join(p[:16] + "..." for p in self.public)
        return f"the identity in {self.source}" + (f" ({shown})" if shown else "")


@dataclass(frozen=True)
class Header:
    """What an armored age file's header says without any key: the kinds of its recipient
    stanzas."""

    stanzas: tuple[str, ...]

    @property
    def recipients(self) -> int:
        """How many recipients the file is encrypted to."""
        return sum(1 for s in self.stanzas if s in RECIPIENT_STANZAS)


def generate() -> tuple[str, str]:
    """A new X25519 key pair: (identity ``AGE-SECRET-KEY-1...``, recipient ``age1...``)."""
    identity = x25519.Identity.generate()
    return str(identity), str(identity.to_public())


def identity_file(identity: str, comment: str = "") -> str:
    """An identity file in ``age-keygen``'s format (comment lines, then the key)."""
    public = str(x25519.Identity.from_str(identity).to_public())
    lines = [f"# {comment}"] if comment else []
    return "\n".join([*lines, f"# public key: {public}", identity, ""])


def recipient(text: str) -> Any:
    """A recipient from its public key text; CryptoError naming the key if it is not one."""
    text = text.strip()
    try:
        if text.startswith("age1"):
            return x25519.Recipient.from_str(text)
        if text.startswith(("ssh-ed25519 ", "ssh-rsa ")):
            return ssh.Recipient.from_str(text)
    except pyrage.RecipientError as e:
        raise CryptoError(f"invalid recipient {_short(text)}: {e}") from e
    raise CryptoError(
        f"invalid recipient {_short(text)}: expected an age public key (age1...) "
        "or an SSH public key (ssh-ed25519 ... or ssh-rsa ...)"
    )


def encrypt(plaintext: bytes, recipients: Sequence[str]) -> bytes:
    """ASCII-armored age ciphertext of ``plaintext`` for every recipient (randomized: never the same
    twice)."""
    if not recipients:
        raise CryptoError(
            "no recipients to encrypt to: set site.secrets.recipients in the inventory"
        )
    parsed = [recipient(r) for r in recipients]
    try:
        out: bytes = pyrage.encrypt(plaintext, parsed, armored=True)
    except pyrage.EncryptError as e:
        raise CryptoError(f"cannot encrypt: {e}") from e
    return out


def inspect(armored: bytes) -> Header:
    """Check an armored age file's structure (armor, base64, header) without a key; CryptoError if
    broken."""
    lines = armored.decode("ascii", "replace").strip().splitlines()
    if not lines or lines[0].strip() != ARMOR_BEGIN:
        raise CryptoError(f"not an ASCII-armored age file: it does not start with {ARMOR_BEGIN}")
    if lines[-1].strip() != ARMOR_END:
        raise CryptoError(f"truncated: it does not end with {ARMOR_END}")
    try:
        binary = base64.b64decode("".join(line.strip() for line in lines[1:-1]), validate=True)
    except (binascii.Error, ValueError) as e:
        raise CryptoError(f"corrupted armor: invalid base64 ({e})") from e
    if not binary.startswith(AGE_HEADER):
        raise CryptoError("corrupted: the armored data is not an age v1 file")
    header, found, _ = binary.partition(b"\n---")
    if not found:
        raise CryptoError("corrupted: the age header has no MAC line")
    stanzas = tuple(
        line[3:].split(b" ", 1)[0].decode("ascii", "replace")
        for line in header.split(b"\n")
        if line.startswith(b"-> ")
    )
    if not stanzas:
        raise CryptoError("corrupted: the age header names no recipient")
    return Header(stanzas)


def identities(data: bytes, source: str) -> Identities:
    """Identities from an age identity file or an unencrypted OpenSSH private key; CryptoError if
    none."""
    if _SSH_PRIVATE in data:
        return Identities((_ssh_identity(data, source),), source)
    keys, public = [], []
    for number, raw in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not line.startswith(_IDENTITY_PREFIX):
            raise CryptoError(
                f"{source}:{number}: not an age identity (expected {_IDENTITY_PREFIX}...)"
            )
        try:
            key = x25519.Identity.from_str(line)
        except pyrage.IdentityError as e:
            raise CryptoError(f"{source}:{number}: invalid age identity: {e}") from e
        keys.append(key)
        public.append(str(key.to_public()))
    if not keys:
        raise CryptoError(
            f"{source}: no identity in it (make one with: gen secrets keygen --out FILE)"
        )
    return Identities(tuple(keys), source, tuple(public))


def load_identities(path: Path) -> Identities:
    """``identities`` of a file; CryptoError naming it if it cannot be read."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise CryptoError(f"cannot read the identity file {path}: {e.strerror or e}") from e
    return identities(data, str(path))


def decrypt(armored: bytes, keys: Identities, what: str) -> bytes:
    """The plaintext of an armored age file; ``what`` names it in errors (which never hold the
    value).

    NotForThisKey when no identity opens it; CryptoError when it is damaged.
    """
    try:
        inspect(armored)
    except CryptoError as e:
        raise CryptoError(
            f"{what} is damaged ({e}); restore it from git or set it again (gen secrets rotate)"
        ) from e
    try:
        out: bytes = pyrage.decrypt(armored, list(keys.keys))
    except pyrage.DecryptError as e:
        if "no matching keys" in str(e).lower():
            raise NotForThisKey(
                f"{what} is not encrypted to {keys.describe()}: it was encrypted for another site "
                "or another key; in the repository, re-encrypt it to this site's recipients "
                "(gen secrets rotate --reencrypt) and compile"
            ) from e
        raise CryptoError(
            f"{what} is damaged ({e}); restore it from git or set it again (gen secrets rotate)"
        ) from e
    return out


def _ssh_identity(data: bytes, source: str) -> Any:
    try:
        return ssh.Identity.from_buffer(data)
    except pyrage.IdentityError as e:
        hint = (
            " (a passphrase-protected key: decrypt a copy, or use an age identity)"
            if "decrypt" in str(e)
            else ""
        )
        raise CryptoError(f"{source}: unusable SSH private key: {e}{hint}") from e


def _short(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:37] + "...")
