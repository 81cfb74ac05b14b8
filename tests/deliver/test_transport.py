"""The drop directory as a ferry transport: what waits, what is staged, taken and set aside."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from generator.core.errors import GenError
from generator.deliver.ferry.transport import DropDir, NotAnEnvelope, Transport


def envelope(drop: Path, name: str) -> Path:
    (drop / name).mkdir(parents=True)
    (drop / name / "bundle").write_bytes(b"bundle")
    (drop / name / "manifest.json").write_bytes(b"{}")
    return drop / name


def test_every_entry_but_staging_and_the_kept_folders_waits_in_name_order(tmp_path: Path) -> None:
    drop: Transport = DropDir(tmp_path)
    for name in ("site-b-2", "site-a-1", "imported", "rejected", ".packing-site-a-2"):
        envelope(tmp_path, name)
    (tmp_path / "notes.txt").write_text("not an envelope")
    assert drop.waiting() == ["notes.txt", "site-a-1", "site-b-2"]
    assert drop.open("site-a-1") == tmp_path.resolve() / "site-a-1"
    with pytest.raises(NotAnEnvelope, match=r"^notes.txt is a regular file, not an envelope dir"):
        drop.open("notes.txt")


@pytest.mark.parametrize(
    ("make", "what"),
    [
        (lambda p: os.symlink("/dev/zero", p), "a symbolic link"),
        (lambda p: os.symlink(p.parent / "imported", p), "a symbolic link"),
        (lambda p: os.mkfifo(p), "a FIFO"),
        (lambda p: p.write_bytes(b"x"), "a regular file"),
    ],
)
def test_an_entry_that_is_not_a_directory_is_refused_and_set_aside_unopened(
    tmp_path: Path, make: Callable[[Path], object], what: str
) -> None:
    drop = DropDir(tmp_path)
    (tmp_path / "imported").mkdir()
    make(tmp_path / "site-a-1")
    with pytest.raises(NotAnEnvelope, match=f"^site-a-1 is {what}, not an envelope directory$"):
        drop.open("site-a-1")
    moved = drop.set_aside("site-a-1", "not an envelope\n")
    assert moved == tmp_path.resolve() / "rejected" / "site-a-1"
    assert (moved / "REASON.txt").read_text() == "not an envelope\n"
    assert os.path.lexists(moved / "entry") and drop.waiting() == []
    assert (tmp_path / "imported").is_dir()  # a link to it was moved, not what it points at


def test_a_name_with_control_characters_is_refused_and_set_aside_escaped(tmp_path: Path) -> None:
    drop = DropDir(tmp_path)
    envelope(tmp_path, "a\nimported b\x1b")
    [name] = drop.waiting()
    with pytest.raises(NotAnEnvelope, match=r"^a\\x0aimported b\\x1b is not an envelope name"):
        drop.open(name)
    moved = drop.set_aside(name, "bad name\n")
    assert moved == tmp_path.resolve() / "rejected" / "a\\x0aimported b\\x1b"
    assert sorted(p.name for p in moved.iterdir()) == ["REASON.txt", "bundle", "manifest.json"]


def test_a_reason_file_sent_with_the_envelope_is_replaced_not_written_through(
    tmp_path: Path,
) -> None:
    drop = DropDir(tmp_path / "drop")
    victim = tmp_path / "victim"
    victim.write_text("keep")
    envelope(tmp_path / "drop", "site-a-1")
    os.symlink(victim, tmp_path / "drop" / "site-a-1" / "REASON.txt")
    moved = drop.set_aside("site-a-1", "refused\n")
    assert (moved / "REASON.txt").read_text() == "refused\n" and victim.read_text() == "keep"


def test_set_aside_refuses_to_move_into_a_rejected_folder_that_is_not_one(tmp_path: Path) -> None:
    drop = DropDir(tmp_path / "drop")
    envelope(tmp_path / "drop", "site-a-1")
    os.symlink(tmp_path, tmp_path / "drop" / "rejected")
    with pytest.raises(GenError, match=r"rejected is a symbolic link, not a directory$"):
        drop.set_aside("site-a-1", "refused\n")
    assert drop.waiting() == ["site-a-1"] and not (tmp_path / "site-a-1").exists()


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
