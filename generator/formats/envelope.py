"""The envelope format: a directory ``<site>-<sequence>/`` holding three files.

    bundle              git bundle of refs/heads/deploy/<site> (full, or from the basis commit)
    manifest.json       canonical JSON (sorted keys, fixed layout): see ``Manifest``
    manifest.json.sig   SSHSIG signature of manifest.json, namespace ``gen-ferry``

The manifest is the only thing trusted, and only after its signature verifies; it is then parsed
strictly (known keys, exact types) and must be byte-for-byte its own canonical form, so two
readers can never disagree about what a signed manifest says (no duplicate keys, no variants).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from generator.core.errors import GenError
from generator.core.untrusted import escape

FORMAT = "gen-ferry/1"
NAMESPACE = "gen-ferry"
"""SSHSIG namespace of manifest signatures (git's commit signatures use ``git``)."""
MANIFEST = "manifest.json"
SIGNATURE = "manifest.json.sig"
BUNDLE = "bundle"
MAX_MANIFEST = 1 << 20
"""Larger manifest or signature files are refused unread."""

_SITE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_-]|\.(?!\.)){0,62}$")
_OID = re.compile(r"^[0-9a-f]{40}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_FILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_KEYS = {
    "format",
    "site",
    "sequence",
    "tip",
    "basis",
    "basis_sequence",
    "created",
    "expires",
    "sender",
    "files",
}
_TIME = "%Y-%m-%dT%H:%M:%SZ"


class EnvelopeError(GenError):
    """A manifest that is malformed, not canonical or self-contradictory."""


@dataclass(frozen=True)
class FileEntry:
    """One file of the envelope as the manifest promises it."""

    name: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    """What an envelope carries, signed by its sender."""

    site: str
    sequence: int
    """Per site, one more than the previous envelope sent (1 for the first)."""
    tip: str
    """The commit the site's deploy branch is at after importing."""
    basis: str | None
    """The commit the bundle builds on (the receiver must have it); None for a full bundle."""
    basis_sequence: int | None
    """The envelope whose tip is ``basis``; None for a full bundle."""
    created: datetime
    expires: datetime
    sender: str
    """The principal that signed the manifest (as named in the receiver's allowed signers file)."""
    files: tuple[FileEntry, ...]

    @property
    def full(self) -> bool:
        return self.basis is None

    @property
    def name(self) -> str:
        return envelope_name(self.site, self.sequence)

    def file(self, name: str) -> FileEntry:
        """The entry for ``name``; the manifest is known to list the bundle."""
        return next(f for f in self.files if f.name == name)

    def to_json(self) -> bytes:
        """The canonical bytes: what is signed, and the only form ``parse`` accepts."""
        body = {
            "format": FORMAT,
            "site": self.site,
            "sequence": self.sequence,
            "tip": self.tip,
            "basis": self.basis,
            "basis_sequence": self.basis_sequence,
            "created": _time(self.created),
            "expires": _time(self.expires),
            "sender": self.sender,
            "files": [{"name": f.name, "size": f.size, "sha256": f.sha256} for f in self.files],
        }
        return (json.dumps(body, sort_keys=True, indent=1, ensure_ascii=True) + "\n").encode()


def envelope_name(site: str, sequence: int) -> str:
    """The envelope's directory name, e.g. ``cn-east-1-000042`` (sorts by sequence)."""
    return f"{site}-{sequence:06d}"


def digest(data: bytes) -> str:
    """The sha256 of some bytes, hex."""
    return hashlib.sha256(data).hexdigest()


def measure(path: Path) -> FileEntry:
    """A file's entry (name, size, sha256), read in chunks."""
    with open(path, "rb") as f:
        sha = hashlib.file_digest(f, "sha256")
    return FileEntry(path.name, path.stat().st_size, sha.hexdigest())


def check_name(name: str) -> str:
    """``name`` if it can be an envelope's name where envelopes wait (it becomes part of paths and
    messages); raise EnvelopeError showing it escaped otherwise."""
    if not _NAME.match(name):
        raise EnvelopeError(
            f"{escape(name)} is not an envelope name (letters, digits, '.', '_', '-'; "
            "at most 128 characters)"
        )
    return name


def check_site(site: str) -> str:
    """``site`` if it is a safe site name (it becomes part of ref and directory names)."""
    if not _SITE.match(site) or site.endswith((".lock", ".")):
        raise EnvelopeError(f"{site!r} is not a valid site name (letters, digits, '-', '_', '.')")
    return site


def parse(raw: bytes) -> Manifest:
    """The manifest in ``raw``; raise EnvelopeError saying what is wrong with it."""
    try:
        body = json.loads(raw)
    except ValueError as e:
        raise EnvelopeError(f"{MANIFEST} is not JSON: {e}") from e
    if not isinstance(body, dict) or set(body) != _KEYS:
        keys = sorted(body) if isinstance(body, dict) else type(body).__name__
        raise EnvelopeError(f"{MANIFEST} has keys {keys}; expected {sorted(_KEYS)}")
    if body["format"] != FORMAT:
        raise EnvelopeError(
            f"{MANIFEST} format {body['format']!r} is not {FORMAT!r} (a newer gen?)"
        )
    manifest = _manifest(body)
    _check_consistent(manifest)
    if manifest.to_json() != raw:
        raise EnvelopeError(f"{MANIFEST} is not in canonical form (rewritten after signing?)")
    return manifest


def _manifest(body: dict[str, Any]) -> Manifest:
    basis, basis_sequence = body["basis"], body["basis_sequence"]
    return Manifest(
        site=check_site(_typed(body, "site", str)),
        sequence=_positive(body, "sequence"),
        tip=_matching(body, "tip", _OID),
        basis=None if basis is None else _matching(body, "basis", _OID),
        basis_sequence=None if basis_sequence is None else _positive(body, "basis_sequence"),
        created=_parse_time(body, "created"),
        expires=_parse_time(body, "expires"),
        sender=_typed(body, "sender", str),
        files=tuple(_file(item) for item in _typed(body, "files", list)),
    )


def _check_consistent(m: Manifest) -> None:
    if (m.basis is None) != (m.basis_sequence is None):
        raise EnvelopeError(
            f"{MANIFEST}: basis and basis_sequence must both be set or both be null"
        )
    if m.basis_sequence is not None and m.basis_sequence >= m.sequence:
        raise EnvelopeError(
            f"{MANIFEST}: basis_sequence {m.basis_sequence} is not before sequence {m.sequence}"
        )
    if m.expires <= m.created:
        raise EnvelopeError(
            f"{MANIFEST}: expires ({_time(m.expires)}) is not after created ({_time(m.created)})"
        )
    names = [f.name for f in m.files]
    if len(set(names)) != len(names) or BUNDLE not in names:
        raise EnvelopeError(
            f"{MANIFEST}: files must name {BUNDLE!r} once and no file twice; got {names}"
        )
    if not m.sender:
        raise EnvelopeError(f"{MANIFEST}: sender is empty")


def _file(item: Any) -> FileEntry:
    if not isinstance(item, dict) or set(item) != {"name", "size", "sha256"}:
        raise EnvelopeError(
            f"{MANIFEST}: a files entry must have exactly name, size and sha256: {item!r}"
        )
    name = _matching(item, "name", _FILE)
    size = item["size"]
    if type(size) is not int or size < 0:
        raise EnvelopeError(f"{MANIFEST}: size of {name} is not a non-negative integer: {size!r}")
    return FileEntry(name, size, _matching(item, "sha256", _SHA256))


def _typed(body: dict[str, Any], key: str, kind: type) -> Any:
    value = body[key]
    if type(value) is not kind:
        raise EnvelopeError(f"{MANIFEST}: {key} is not a {kind.__name__}: {value!r}")
    return value


def _positive(body: dict[str, Any], key: str) -> int:
    value = body[key]
    if type(value) is not int or value < 1:
        raise EnvelopeError(f"{MANIFEST}: {key} is not a positive integer: {value!r}")
    return value


def _matching(body: dict[str, Any], key: str, pattern: re.Pattern[str]) -> str:
    value = _typed(body, key, str)
    if not pattern.match(value):
        raise EnvelopeError(f"{MANIFEST}: {key} {value[:80]!r} is malformed")
    return str(value)


def _parse_time(body: dict[str, Any], key: str) -> datetime:
    value = _typed(body, key, str)
    try:
        return datetime.strptime(value, _TIME).replace(tzinfo=UTC)
    except ValueError as e:
        raise EnvelopeError(
            f"{MANIFEST}: {key} {value!r} is not a UTC time like 2030-01-31T23:59:00Z"
        ) from e


def _time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(_TIME)


def format_time(moment: datetime) -> str:
    """A time as manifests and messages show it: ``2030-01-31T23:59:00Z``."""
    return _time(moment)


def now() -> datetime:
    """The current UTC time at manifest precision (whole seconds)."""
    return datetime.now(UTC).replace(microsecond=0)
