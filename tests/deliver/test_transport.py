"""The drop directory as a ferry transport: what waits, what is staged, taken and set aside."""

from __future__ import annotations

from pathlib import Path

import pytest

from generator.core.errors import GenError
from generator.deliver.ferry.transport import DropDir, Transport


def envelope(drop: Path, name: str) -> Path:
    (drop / name).mkdir(parents=True)
    (drop / name / "bundle").write_bytes(b"bundle")
    (drop / name / "manifest.json").write_bytes(b"{}")
    return drop / name


def test_only_finished_envelopes_wait_in_name_order(tmp_path: Path) -> None:
    drop: Transport = DropDir(tmp_path)
    for name in ("site-b-2", "site-a-1", "imported", "rejected", ".packing-site-a-2"):
        envelope(tmp_path, name)
    (tmp_path / "notes.txt").write_text("not an envelope")
    assert drop.waiting() == ["site-a-1", "site-b-2"]
    assert drop.open("site-a-1") == tmp_path.resolve() / "site-a-1"


def test_a_staged_envelope_is_invisible_until_put_and_its_name_is_never_reused(
    tmp_path: Path,
) -> None:
    drop = DropDir(tmp_path / "out")
    staged = drop.stage("site-a-1")
    (staged / "bundle").write_bytes(b"bundle")
    assert drop.waiting() == []
    assert drop.put(staged, "site-a-1") == tmp_path / "out" / "site-a-1"
    drop.discard(staged)  # after put: nothing to remove
    assert drop.waiting() == ["site-a-1"]
    assert (tmp_path / "out" / "site-a-1" / "bundle").read_bytes() == b"bundle"
    with pytest.raises(GenError, match="site-a-1 already exists; move it away"):
        drop.stage("site-a-1")


def test_set_aside_keeps_the_reason_and_deletes_only_the_withheld_files(tmp_path: Path) -> None:
    drop = DropDir(tmp_path)
    envelope(tmp_path, "site-a-1")
    envelope(tmp_path / "rejected", "site-a-1")  # an earlier copy, refused before
    moved = drop.set_aside("site-a-1", "wrong site\n", withhold=("bundle",))
    assert moved == tmp_path.resolve() / "rejected" / "site-a-1.1"
    assert sorted(p.name for p in moved.iterdir()) == ["REASON.txt", "manifest.json"]
    assert (moved / "REASON.txt").read_text() == "wrong site\n"
    assert drop.waiting() == []


def test_taken_envelopes_move_to_imported(tmp_path: Path) -> None:
    drop = DropDir(tmp_path)
    envelope(tmp_path, "site-a-1")
    assert drop.take("site-a-1") == tmp_path.resolve() / "imported" / "site-a-1"
    assert drop.waiting() == [] and not DropDir(tmp_path / "missing").reachable()
