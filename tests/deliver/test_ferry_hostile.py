"""A drop folder filled with whatever a file system can hold, property-based (real git, real keys).

Random regular files, folders, FIFOs, links (to /dev/zero, to a large file, to a folder, to
nothing) under random names (newlines, control characters, non-ASCII), and copies of a valid
envelope with one file replaced by such a thing. For ``gen ferry import`` and for the agent's
envelope source alike: no traceback, no hang (every run under ``LIMIT`` seconds), no ref moves,
and the next valid envelope then imports.
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from types import FrameType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from generator.core.untrusted import escape
from generator.deliver import publish
from generator.deliver.ferry.receive import Status
from generator.deliver.ferry.transport import DropDir
from generator.formats import envelope
from generator.run.agent import source
from generator.run.agent.settings import EnvelopeSource
from generator.run.agent.settings import Settings as AgentSettings
from tests.support.ferry import SITE, World, refs, rev

BRANCH = publish.branch(SITE)
LIMIT = 30
"""Seconds one import may take at most; far more than a real one needs on a loaded machine."""

KINDS = (
    "file",
    "folder",
    "fifo",
    "link to /dev/zero",
    "link to large",
    "link to folder",
    "dangling",
)
NAME_CHARS = st.characters(
    codec="utf-8", exclude_characters="/\0", min_codepoint=1, max_codepoint=0x2FF
)
NAMES = st.one_of(
    st.text(NAME_CHARS, min_size=1, max_size=12).filter(lambda n: n not in (".", "..")),
    st.sampled_from(["imported", "rejected", "cn-east-1-000001", "a\nrejected b", "\x1b[2J"]),
)
MUTANTS = st.tuples(
    st.sampled_from((envelope.MANIFEST, envelope.SIGNATURE, envelope.BUNDLE)),
    st.sampled_from(KINDS),
)
ENTRIES = st.lists(
    st.tuples(NAMES, st.one_of(st.sampled_from(KINDS), MUTANTS), st.binary(max_size=64)),
    max_size=5,
    unique_by=lambda e: e[0],
)
EXAMPLES = settings(
    max_examples=20,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@dataclass(frozen=True)
class Place:
    """Where one example happens: its drop folder, and where hostile things point to."""

    drop: Path
    large: Path
    """A sparse 8 GiB file: read whole it would exhaust memory."""


def make(path: Path, kind: str, data: bytes, place: Place) -> None:
    """Put a ``kind`` of thing at ``path`` (replacing what is there)."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        path.unlink()
    targets = {
        "link to /dev/zero": Path("/dev/zero"),
        "link to large": place.large,
        "link to folder": place.drop.parent,
        "dangling": place.drop.parent / "nowhere",
    }
    if kind == "file":
        path.write_bytes(data)
    elif kind == "folder":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    else:
        os.symlink(targets[kind], path)


def fill(
    place: Place, entries: list[tuple[str, str | tuple[str, str], bytes]], valid: Path
) -> None:
    """The hostile entries; a tuple kind is a copy of ``valid`` with that file replaced."""
    for name, kind, data in entries:
        path = place.drop / name
        if isinstance(kind, tuple):
            shutil.copytree(valid, path)
            make(path / kind[0], kind[1], data, place)
        else:
            make(path, kind, data, place)


class Hung(Exception):
    """An import ran longer than LIMIT seconds."""


@contextmanager
def time_limit(seconds: int) -> Iterator[None]:
    """Raise Hung in the block after ``seconds`` (a read blocked on a FIFO is interrupted too)."""

    def expire(signum: int, frame: FrameType | None) -> None:
        raise Hung(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


_EXAMPLES = itertools.count()


@dataclass(frozen=True)
class Bench:
    """A synced world whose next envelopes go to a new drop folder per example."""

    world: World

    def place(self) -> Place:
        base = self.world.drop.parent / f"example-{next(_EXAMPLES)}"
        (base / "drop").mkdir(parents=True)
        with open(base / "large", "wb") as f:
            f.truncate(1 << 33)
        return Place(base / "drop", base / "large")

    def next_envelope(self, place: Place) -> Path:
        """A new change of SITE packed outside the drop folder (it arrives last); full, so that
        an example that failed half-way cannot leave the next one waiting for a basis."""
        self.world.change()
        return self.world.pack(out=place.drop.parent / "outside", full=True)


def check(
    bench: Bench,
    entries: list[tuple[str, str | tuple[str, str], bytes]],
    repo: Path,
    receive: Callable[[Path], object],
) -> None:
    """The property, for one drop folder: see the module docstring."""
    place = bench.place()
    valid = bench.next_envelope(place)
    fill(place, entries, valid)
    before = refs(repo)
    with time_limit(LIMIT):
        receive(place.drop)
    assert refs(repo) == before
    shutil.move(valid, place.drop / valid.name)
    with time_limit(LIMIT):
        receive(place.drop)
    assert rev(repo, BRANCH) == rev(bench.world.deploy, BRANCH)


synced = pytest.mark.parametrize("world", ["synced"], indirect=True)


@synced
@EXAMPLES
@given(entries=ENTRIES)
def test_import_from_a_hostile_drop_folder_moves_no_ref_and_the_next_envelope_imports(
    world: World, entries: list[tuple[str, str | tuple[str, str], bytes]]
) -> None:
    bench = Bench(world)

    empty = {escape(name) for name, kind, _ in entries if kind == "folder"}

    def receive(drop: Path) -> None:
        report = replace(world, drop=drop).receive()
        for outcome in report.outcomes:
            assert outcome.name.isascii() and outcome.name.isprintable(), outcome
            # Only an empty folder may wait: it could be an envelope still being copied.
            assert outcome.status is not Status.WAITING or outcome.name in empty, outcome

    check(bench, entries, world.inside, receive)


@synced
@EXAMPLES
@given(entries=ENTRIES)
def test_agent_envelope_source_in_a_hostile_drop_folder_moves_no_ref_and_imports_the_next(
    world: World, entries: list[tuple[str, str | tuple[str, str], bytes]]
) -> None:
    bench = Bench(world)
    state = world.drop.parent / "agent"

    def receive(drop: Path) -> None:
        agent = AgentSettings(
            SITE, EnvelopeSource(DropDir(drop)), world.keys.allowed_signers, state
        )
        repo = source.open_local(agent)
        try:
            tip = source.fetch(repo, agent)
        finally:
            repo.close()
        assert all("\n" not in note for note in tip.notes), tip.notes

    if not (state / "repo.git").exists():  # the agent starts from a full envelope
        place = bench.place()
        replace(world, drop=place.drop).pack(full=True)
        receive(place.drop)
    check(bench, entries, state / "repo.git", receive)
