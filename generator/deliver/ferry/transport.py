"""How envelopes cross the gatekeeper: a small protocol, and the drop directory that implements it.

The outside puts envelopes (``pack``); the inside lists those waiting, opens each as a directory
of its files, and then takes it (imported) or sets it aside with the reason it was refused
(``receive``, the agent's envelope source). Everything else (signatures, hashes, sequences, the
ledgers) is the same whatever the transport, and lives in ``pack``, ``verify`` and ``receive``.

A new transport (another directory layout, a removable disk, a gatekeeper's own API) implements
``Transport``; the CLI builds it from its options. ``DropDir`` is the directory the gatekeeper
copies envelopes into: ``<dir>/<name>/``, with ``imported/`` and ``rejected/<name>/REASON.txt``
beside them.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from generator.core.errors import GenError

IMPORTED_DIR = "imported"
REJECTED_DIR = "rejected"
REASON = "REASON.txt"
STAGING_PREFIX = ".packing-"


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
        """The names of the envelopes waiting, in name order."""
        ...

    def open(self, name: str) -> Path:
        """The directory holding a waiting envelope's files (an absolute path)."""
        ...

    def take(self, name: str) -> Path:
        """Remove an imported envelope from those waiting; where it is kept now."""
        ...

    def set_aside(self, name: str, reason: str, withhold: Iterable[str] = ()) -> Path:
        """Remove a refused envelope from those waiting, keeping ``reason`` with it; where it is.

        The files named in ``withhold`` are deleted rather than kept (another site's bundle).
        """
        ...


@dataclass(frozen=True)
class DropDir:
    """A directory: each envelope a subdirectory; imported ones move to ``imported/``, refused
    ones to ``rejected/<name>/`` with ``REASON.txt``; names taken get ``.1``, ``.2``, ...

    Envelopes appear by a rename of a finished directory (``.packing-<name>`` beside it), so the
    inside never sees half an envelope written by ``pack``; one still being copied by the
    gatekeeper is caught by the manifest's sizes and hashes and left waiting.
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
        _fsync(self.path)
        return final

    def discard(self, staged: Path) -> None:
        shutil.rmtree(staged, ignore_errors=True)

    def waiting(self) -> list[str]:
        skip = {IMPORTED_DIR, REJECTED_DIR}
        return sorted(
            p.name
            for p in self.path.iterdir()
            if p.is_dir() and p.name not in skip and not p.name.startswith(".")
        )

    def open(self, name: str) -> Path:
        # Absolute: git must never read a relative bundle path as a remote name.
        return self.path.resolve() / name

    def take(self, name: str) -> Path:
        return _move(self.open(name), self.path.resolve() / IMPORTED_DIR)

    def set_aside(self, name: str, reason: str, withhold: Iterable[str] = ()) -> Path:
        for file in withhold:
            (self.open(name) / file).unlink(missing_ok=True)
        moved = _move(self.open(name), self.path.resolve() / REJECTED_DIR)
        (moved / REASON).write_text(reason)
        return moved


def _move(path: Path, into: Path) -> Path:
    """Move a directory into ``into`` under its own name (``.1``, ``.2``, ... if taken)."""
    dest, n = into / path.name, 0
    while dest.exists():
        n += 1
        dest = into / f"{path.name}.{n}"
    try:
        into.mkdir(exist_ok=True)
        os.rename(path, dest)
    except OSError as e:
        raise GenError(f"cannot move {path} to {dest}: {e.strerror}") from e
    return dest


def of(where: Transport | Path) -> Transport:
    """``where`` as a transport: a Path is a drop directory."""
    return DropDir(where) if isinstance(where, Path) else where


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
