"""The secret files of a site: set, rotate, re-encrypt, show, list (what ``gen secrets`` does).

Values come in as bytes from the caller (the CLI reads stdin, never argv) and are encrypted at once
to the target's recipients: ``site.secrets.recipients`` (the site's own keys) plus
``site.secrets.team_recipients`` (engineers who may read and re-encrypt). Files are replaced
atomically (a temporary file in the same directory, fsync, rename), so a crash leaves the old file
or the new one. Only ``show`` and ``reencrypt`` decrypt, with identities the engineer holds.
"""

from __future__ import annotations

import os
import random
import string
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from generator.build import inventory
from generator.core import errors, layout, yamlio
from generator.core.errors import GenError
from generator.core.fsutil import write_atomic
from generator.core.location import Location
from generator.formats import age as crypto
from generator.formats import encrypted_secret as encrypted
from generator.formats import secret_refs as refs


@dataclass(frozen=True)
class Recipients:
    """Who a target's secrets are encrypted to."""

    site: tuple[str, ...]
    """The site's keys (its agent decrypts with one of them)."""
    team: tuple[str, ...] = ()
    """Team keys that may read and re-encrypt every secret of the site."""

    @property
    def all(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((*self.site, *self.team)))


@dataclass(frozen=True)
class Entry:
    """One secret of a target: its file, where it is referenced and the state of its file."""

    path: str
    file: str
    references: tuple[str, ...]
    """Inventory locations referencing it (``file:line:col``)."""
    state: str
    """ok, missing (referenced, no file), unused (file, no reference), damaged, or stale (encrypted
    to another number of recipients than the inventory lists: re-encrypt it)."""
    recipients: int = 0
    """How many recipients the file is encrypted to (0 when missing or damaged)."""


def recipients(root: Path, target: str) -> Recipients:
    """The target's recipients from its merged parameters; located errors when missing or
    invalid."""
    tgt = _target(root, target)
    config = (tgt.parameters.get("site") or {}).get("secrets")
    if not isinstance(config, dict) or not config.get("recipients"):
        raise errors.located(
            tgt.location(("site",)),
            f"target {target} has no site.secrets.recipients: add the "
            "site's age public key (gen secrets keygen makes a key pair)",
            "$.site.secrets",
        )
    found: dict[str, list[str]] = {}
    for group in ("recipients", "team_recipients"):
        for i, text in enumerate(config.get(group) or []):
            try:
                crypto.recipient(str(text))
            except crypto.CryptoError as e:
                raise errors.located(
                    tgt.location(("site", "secrets", group, i)),
                    str(e),
                    f"$.site.secrets.{group}[{i}]",
                ) from e
            found.setdefault(group, []).append(str(text).strip())
    return Recipients(tuple(found.get("recipients", ())), tuple(found.get("team_recipients", ())))


def set_value(root: Path, target: str, path: str, value: bytes, replace: bool = False) -> str:
    """Encrypt ``value`` to the target's recipients into its secret file; the file (relative to
    root).

    A new secret unless ``replace`` (rotation): setting an existing one, or rotating a missing one,
    is an error naming the command to use instead.
    """
    file = _file(target, path)
    exists = (root / file).is_file()
    if exists and not replace:
        raise errors.located(
            Location(file),
            f"the secret {path} of {target} exists; change it with "
            f"`gen secrets rotate -t {target} {path}`",
        )
    if replace and not exists:
        raise errors.located(
            Location(file),
            f"no secret {path} for {target} to rotate; create it with "
            f"`gen secrets set -t {target} {path}`{_known(root, target)}",
        )
    if not value:
        raise GenError("refusing to store an empty value")
    _write(root / file, crypto.encrypt(value, recipients(root, target).all))
    return file


def reencrypt(root: Path, target: str, paths: Iterable[str], keys: crypto.Identities) -> list[str]:
    """Re-encrypt secrets (all of the target's when ``paths`` is empty) to its current recipients.

    Every file is decrypted before any is written, so a key that opens only some changes nothing.
    """
    wanted = list(paths) or [e.path for e in listing(root, target) if e.state != "missing"]
    to = recipients(root, target).all
    values = {path: show(root, target, path, keys) for path in wanted}
    files = []
    for path, value in values.items():
        _write(root / _file(target, path), crypto.encrypt(value, to))
        files.append(_file(target, path))
    return files


def show(root: Path, target: str, path: str, keys: crypto.Identities) -> bytes:
    """The plaintext of one secret; located errors for a missing, damaged or foreign-key file."""
    file = _file(target, path)
    try:
        data = (root / file).read_bytes()
    except FileNotFoundError:
        raise errors.located(
            Location(file), f"no secret {path} for target {target}{_known(root, target)}"
        ) from None
    try:
        return crypto.decrypt(data, keys, f"the secret {path} of {target}")
    except crypto.CryptoError as e:
        raise errors.located(Location(file), str(e)) from e


def listing(root: Path, target: str) -> list[Entry]:
    """Every secret the target references or has a file for, by path."""
    tgt = _target(root, target)
    referenced: dict[str, list[str]] = {}
    for keypath, text in refs.find(tgt.parameters):
        try:
            ref = refs.parse(text)
        except refs.RefError:
            continue  # gen compile reports it, located
        where = tgt.location(keypath)
        referenced.setdefault(ref.path, []).append(str(where) if where else tgt.file)
    expected = _expected(root, target)
    paths = sorted(set(referenced) | set(_stored(root, target)))
    return [
        _entry(root, target, p, tuple(dict.fromkeys(referenced.get(p, []))), expected)
        for p in paths
    ]


def keygen(out: Path, comment: str = "") -> str:
    """Write a new age identity to ``out`` (mode 0600, never overwriting); its public recipient."""
    identity, public = crypto.generate()
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise GenError(f"{out} exists; choose another file (a key is never overwritten)") from None
    except OSError as e:
        raise GenError(f"cannot create {out}: {e.strerror or e}") from e
    with os.fdopen(fd, "w") as handle:
        handle.write(crypto.identity_file(identity, comment))
    return public


def generate(length: int) -> bytes:
    """A random value of ``length`` letters and digits (for passwords gen may choose)."""
    if length < 12:
        raise GenError("a generated secret needs at least 12 characters")
    rng = random.SystemRandom()
    return "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(length)).encode()


def _target(root: Path, name: str) -> inventory.Target:
    return inventory.Inventory(root, inventory.settings_for(root)).target(name)


def _file(target: str, path: str) -> str:
    try:
        refs.check_path(path)
    except refs.RefError as e:
        raise GenError(str(e)) from e
    return refs.file_for(target, path)


def _stored(root: Path, target: str) -> list[str]:
    directory = root / refs.SECRETS_DIR / target
    if not directory.is_dir():
        return []
    found = (
        refs.path_of(target, p.relative_to(root).as_posix())
        for p in directory.rglob(f"*{refs.SUFFIX}")
    )
    return sorted(p for p in found if p)


def _known(root: Path, target: str) -> str:
    stored = _stored(root, target)
    return (
        f" (its secrets: {', '.join(stored)})"
        if stored
        else f" (it has none under secrets/{target}/)"
    )


def _expected(root: Path, target: str) -> int | None:
    try:
        return len(recipients(root, target).all)
    except GenError:
        return None


def _entry(
    root: Path, target: str, path: str, references: tuple[str, ...], expected: int | None
) -> Entry:
    file = refs.file_for(target, path)
    try:
        header = crypto.inspect((root / file).read_bytes())
    except FileNotFoundError:
        return Entry(path, file, references, "missing")
    except crypto.CryptoError:
        return Entry(path, file, references, "damaged")
    state = "unused" if not references else "ok"
    if state == "ok" and expected is not None and header.recipients != expected:
        state = "stale"
    return Entry(path, file, references, state, header.recipients)


def _write(path: Path, data: bytes) -> None:
    """Replace ``path`` atomically (and durably) with ``data``."""
    write_atomic(path, data, durable=True)


def as_dict(entry: Entry) -> dict[str, Any]:
    """An entry as JSON-ready data (``gen secrets list -o json``)."""
    return {
        "path": entry.path,
        "file": entry.file,
        "state": entry.state,
        "recipients": entry.recipients,
        "references": list(entry.references),
    }


def materialized(root: Path, target: str, keys: crypto.Identities) -> list[dict[str, Any]]:
    """The Secrets of a compiled site (``compiled/<site>/``), decrypted: for applying by hand
    without the agent.

    Every EncryptedSecret that cannot be opened is a problem located at its compiled file.
    """
    directory = root / "compiled" / target / layout.MANIFESTS
    if not directory.is_dir():
        raise GenError(
            f"no compiled/{target}/{layout.MANIFESTS}: run `gen compile -t {target}` first"
        )
    out, problems = [], []
    for path in sorted(directory.rglob("*.yaml")):
        rel = path.relative_to(root).as_posix()
        for obj in yamlio.load_rendered(path.read_text(encoding="utf-8"), rel):
            if not encrypted.is_encrypted(obj):
                continue
            try:
                out.append(encrypted.materialize(obj, keys))
            except encrypted.SecretError as e:
                problems.append(errors.Problem(Location(rel), "", str(e)))
    if problems:
        raise errors.ProblemReport(
            problems, f"{len(problems)} secret(s) of {target} cannot be decrypted"
        )
    return out
