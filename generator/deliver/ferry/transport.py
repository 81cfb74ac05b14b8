"""How envelopes cross the gatekeeper: a small protocol, and the drop directory that implements it.

The outside puts envelopes (``pack``); the inside lists those waiting, opens each as a directory
of its files, and then takes it (imported) or sets it aside with the reason it was refused
(``receive``, the agent's envelope source). Everything else (signatures, hashes, sequences, the
ledgers) is the same whatever the transport, and lives in ``pack``, ``verify`` and ``receive``.

A new transport (another directory layout, a removable disk, a gatekeeper's own API) implements
``Transport``; the CLI builds it from its options. ``DropDir`` is the directory the gatekeeper
copies envelopes into: ``<dir>/<name>/``, with ``imported/`` and ``rejected/<name>/REASON.txt``
beside them.

A drop folder is written by others and may hold anything a file system can: every entry is
listed, and one that cannot be an envelope (a file, a link, a FIFO, a name with a newline) is
refused by ``open`` and set aside like any refused envelope, so it never blocks later ones.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from generator.core import fsutil
from generator.core.errors import GenError
from generator.core.untrusted import escape, kind
from generator.formats import envelope

IMPORTED_DIR = "imported"
REJECTED_DIR = "rejected"
REASON = "REASON.txt"
STAGING_PREFIX = ".packing-"
ENTRY = "entry"
"""A refused entry that is not a directory is kept as ``rejected/<name>/entry``."""


class NotAnEnvelope(GenError):
    """A waiting entry that cannot be an envelope (its kind or its name); the message says why."""


class Transport(Protocol):
    """Where envelopes wait between the two sides of the gatekeeper."""

    def describe(self) -> str:
        """Where, for messages (``/srv/inbox``)."""
        ...

    def reachable(self) -> bool:
        """Whether envelopes can be listed now (False: a volume not mounted, a path mistyped)."""
        ...

    def stage(self, name: str) -> Path:
        """An empty directory, seen by nobody, to write envelope ``name`` into before ``put``.

        Raise GenError if an envelope of that name is already waiting.
        """
        ...

    def put(self, staged: Path, name: str) -> Path:
        """Make the staged envelope visible under ``name``, at once and durably; where it now is."""
        ...

    def discard(self, staged: Path) -> None:
        """Remove what ``stage`` made if ``put`` did not happen (nothing if it did)."""
        ...

    def waiting(self) -> list[str]:
        """The names of the envelopes waiting, in name order: every entry that may be one, even
        one ``open`` will refuse (so that it is set aside rather than silently left)."""
        ...

    def open(self, name: str) -> Path:
        """The directory holding a waiting envelope's files (an absolute path); raise
        NotAnEnvelope if the entry cannot be an envelope (its name, or not a directory)."""
        ...

    def take(self, name: str) -> Path:
        """Remove an imported envelope from those waiting; where it is kept now."""
        ...

    def set_aside(self, name: str, reason: str, withhold: Iterable[str] = ()) -> Path:
        """Remove a refused envelope from those waiting, keeping ``reason`` with it; where it is.

        The files named in ``withhold`` are deleted rather than kept (another site's bundle).
        Raise GenError if it cannot be moved (the caller warns and goes on with the others).
        """
        ...


@dataclass(frozen=True)
class DropDir:
    """A directory: each envelope a subdirectory; imported ones move to ``imported/``, refused
    ones to ``rejected/<name>/`` with ``REASON.txt``; names taken get ``.1``, ``.2``, ...

    Envelopes appear by a rename of a finished directory (``.packing-<name>`` beside it), so the
    inside never sees half an envelope written by ``pack``; of one still being copied by the
    gatekeeper, a missing file leaves it waiting and a half-written one is caught by the
    manifest's sizes and hashes and refused.
    """

    path: Path

    def describe(self) -> str:
        return str(self.path)

    def reachable(self) -> bool:
        return self.path.is_dir()

    def stage(self, name: str) -> Path:
        final = self.path / name
        if final.exists():
            raise GenError(f"{final} already exists; move it away (or deliver it) first")
        staging = self.path / f"{STAGING_PREFIX}{name}"
        shutil.rmtree(staging, ignore_errors=True)  # a leftover of a crashed pack
        staging.mkdir(parents=True)
        return staging

    def put(self, staged: Path, name: str) -> Path:
        final = self.path / name
        os.rename(staged, final)
        fsutil.fsync_path(self.path)
        return final

    def discard(self, staged: Path) -> None:
        shutil.rmtree(staged, ignore_errors=True)

    def waiting(self) -> list[str]:
        skip = {IMPORTED_DIR, REJECTED_DIR}
        # Hidden entries are staging (.packing-*) or the gatekeeper's own temporary files.
        return sorted(n for n in os.listdir(self.path) if n not in skip and not n.startswith("."))

    def open(self, name: str) -> Path:
        try:
            envelope.check_name(name)
        except envelope.EnvelopeError as e:
            raise NotAnEnvelope(str(e)) from None
        # Absolute: git must never read a relative bundle path as a remote name.
        path = self.path.resolve() / name
        try:
            mode = path.lstat().st_mode
        except FileNotFoundError:
            return path  # gone since listed: its files are missing, it waits
        if not stat.S_ISDIR(mode):
            raise NotAnEnvelope(f"{name} is {kind(mode)}, not an envelope directory")
        return path

    def take(self, name: str) -> Path:
        return _move(self.path.resolve() / name, self.path.resolve() / IMPORTED_DIR, name)

    def set_aside(self, name: str, reason: str, withhold: Iterable[str] = ()) -> Path:
        entry = self.path.resolve() / name
        try:
            mode = entry.lstat().st_mode
            for file in withhold if stat.S_ISDIR(mode) else ():
                (entry / file).unlink(missing_ok=True)
        except OSError as e:
            raise GenError(f"cannot set {escape(name)} aside: {e.strerror}") from e
        into = self.path.resolve() / REJECTED_DIR
        if stat.S_ISDIR(mode):
            moved = _move(entry, into, escape(name))
        else:
            moved = _move_into_folder(entry, into, escape(name))
        _write_reason(moved / REASON, reason)
        return moved


def _move(path: Path, into: Path, name: str) -> Path:
    """Move ``path`` into the directory ``into`` as ``name`` (``.1``, ``.2``, ... if taken)."""
    dest = _free(_real_dir(into) / name)
    try:
        os.rename(path, dest)
    except OSError as e:
        raise GenError(f"cannot move {escape(str(path))} to {dest}: {e.strerror}") from e
    return dest


def _move_into_folder(path: Path, into: Path, name: str) -> Path:
    """Move an entry that is not a directory to ``into/name/entry``; that folder."""
    folder = _free(_real_dir(into) / name)
    try:
        folder.mkdir()
    except OSError as e:
        raise GenError(f"cannot create {folder}: {e.strerror}") from e
    try:
        os.rename(path, folder / ENTRY)
    except OSError as e:
        folder.rmdir()
        raise GenError(f"cannot move {escape(str(path))} to {folder}: {e.strerror}") from e
    return folder


def _free(path: Path) -> Path:
    """``path``, or the first of ``path.1``, ``path.2``, ... that does not exist."""
    dest, n = path, 0
    while os.path.lexists(dest):
        n += 1
        dest = path.with_name(f"{path.name}.{n}")
    return dest


def _real_dir(path: Path) -> Path:
    """``path``, created if missing; raise GenError if it is anything but a directory (a symbolic
    link could send refused envelopes anywhere)."""
    try:
        if not os.path.lexists(path):
            path.mkdir(exist_ok=True)
        mode = path.lstat().st_mode
    except OSError as e:
        raise GenError(f"cannot create {path}: {e.strerror}") from e
    if not stat.S_ISDIR(mode):
        raise GenError(f"{path} is {kind(mode)}, not a directory")
    return path


def _write_reason(path: Path, reason: str) -> None:
    """Write ``REASON.txt`` as a new file: one that came with the envelope (perhaps a link to
    somewhere else) is replaced, never written through."""
    try:
        with contextlib.suppress(FileNotFoundError, IsADirectoryError):
            path.unlink()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "w") as f:
            f.write(reason)
    except OSError as e:
        raise GenError(f"cannot write {path}: {e.strerror}") from e


def of(where: Transport | Path) -> Transport:
    """``where`` as a transport: a Path is a drop directory."""
    return DropDir(where) if isinstance(where, Path) else where
