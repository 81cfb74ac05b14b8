"""What each side of the gatekeeper remembers, per site, as a journal of manifests in git.

    sender   (deploy repository)  refs/ferry/sent/<site>       one entry per envelope packed
    receiver (inside repository)  refs/ferry/imported/<site>   one entry per envelope accepted

An entry stores the envelope's ``manifest.json`` and ``manifest.json.sig`` exactly as they
travelled, so either side can prove what was sent or accepted, and the receiver can tell a second
copy of an accepted envelope (same bytes: a no-op) from a replay (same or older sequence, other
bytes: refused). Both journals live in the repository they describe, so they survive as long as it
does and are moved by the same atomic ref updates as the branches.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from generator.deliver.git import journal
from generator.deliver.git.repo import ZERO, RefUpdate, Repo
from generator.formats import envelope
from generator.formats.envelope import Manifest

SENT = "refs/ferry/sent/"
IMPORTED = "refs/ferry/imported/"
_SUBJECT = re.compile(r"^\w+ (\S+) sequence (\d+)\b")


@dataclass(frozen=True)
class Record:
    """One envelope a side remembers: its manifest, the manifest's sha256, when,
    and the journal entry."""

    manifest: Manifest
    digest: str
    time: datetime
    entry: str


@dataclass(frozen=True)
class Ledger:
    """One side's journals in ``repo``, all under ``prefix`` (``SENT`` or ``IMPORTED``)."""

    repo: Repo
    prefix: str

    def ref(self, site: str) -> str:
        """The journal ref of a site."""
        return f"{self.prefix}{site}"

    def sites(self) -> list[str]:
        """Every site with a journal, in name order."""
        return sorted(ref[len(self.prefix) :] for ref in self.repo.refs(self.prefix))

    def last(self, site: str) -> Record | None:
        """The newest record of a site, or None if nothing was ever recorded."""
        for entry in journal.entries(self.repo, self.ref(site)):
            return self._record(entry)
        return None

    def find(self, site: str, sequence: int) -> Record | None:
        """The record of one sequence number, or None if it is not in the journal."""
        for entry in self.history(site):
            match = _SUBJECT.match(entry.subject)
            if match and int(match.group(2)) == sequence:
                return self._record(entry)
        return None

    def history(self, site: str) -> Iterator[journal.Entry]:
        """The site's journal entries, newest first."""
        return journal.entries(self.repo, self.ref(site))

    def append(self, verb: str, raw: bytes, signature: bytes, previous: Record | None) -> RefUpdate:
        """Write the entry recording a manifest and return the ref update that commits it.

        The caller applies the update, alone or in one transaction with others; until then the
        journal is unchanged. ``previous`` is the record the update must still find at the ref.
        """
        manifest = envelope.parse(raw)
        subject = f"{verb} {manifest.site} sequence {manifest.sequence} tip {manifest.tip[:12]}"
        message = f"{subject}\n\nmanifest-sha256: {envelope.digest(raw)}\n"
        files = {envelope.MANIFEST: raw, envelope.SIGNATURE: signature}
        commit = journal.write(self.repo, files, message, previous.entry if previous else None)
        return RefUpdate(self.ref(manifest.site), commit, previous.entry if previous else ZERO)

    def _record(self, entry: journal.Entry) -> Record:
        raw = journal.read(self.repo, entry.commit, envelope.MANIFEST)
        return Record(envelope.parse(raw), envelope.digest(raw), entry.time, entry.commit)
