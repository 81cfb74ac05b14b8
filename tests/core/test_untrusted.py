"""Reading files someone else put there: only regular files, never blocking, bounded."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from generator.core import untrusted
from generator.core.untrusted import Unreadable


def test_regular_file_within_the_limit_is_read(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"abc")
    assert untrusted.read_regular(tmp_path / "f", 3) == b"abc"


def test_a_file_over_the_limit_is_refused_before_reading(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"abcd")
    with pytest.raises(Unreadable, match=r"^f is larger than 3 bytes \(4\)$"):
        untrusted.read_regular(tmp_path / "f", 3)


@pytest.mark.parametrize(
    ("make", "what"),
    [
        (lambda p: os.symlink("/dev/zero", p), "a symbolic link"),
        (lambda p: os.mkfifo(p), "a FIFO"),
        (lambda p: os.mkdir(p), "a directory"),
    ],
)
def test_links_fifos_and_directories_are_refused_without_blocking(
    tmp_path: Path, make: Callable[[Path], object], what: str
) -> None:
    make(tmp_path / "f")
    with pytest.raises(Unreadable, match=f"^f is {what}, not a regular file$"):
        untrusted.read_regular(tmp_path / "f", 100)


def test_a_missing_file_is_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        untrusted.read_regular(tmp_path / "missing", 100)


def test_sha256_reads_at_most_one_byte_past_the_limit(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"x" * 10)
    with untrusted.open_regular(tmp_path / "f") as f:
        assert untrusted.sha256(f, 4)[0] == 5


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("cn-east-1-000001", "cn-east-1-000001"),
        ("a\nrejected b", "a\\x0arejected b"),
        ("\x1b[2Jx\\", "\\x1b[2Jx\\x5c"),
        ("caf\u00e9", "caf\\xc3\\xa9"),
        (os.fsdecode(b"bad\xff"), "bad\\xff"),
    ],
)
def test_names_are_escaped_to_one_printable_line(name: str, shown: str) -> None:
    assert untrusted.escape(name) == shown
