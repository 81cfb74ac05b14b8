"""Reading files someone else put there (a drop folder, a removable disk) without being fooled.

Only regular files are read: a symbolic link is never followed, a FIFO or device is never waited
on (opened non-blocking, then refused by ``fstat``), and a size limit is checked on the open file
before any byte is read, so nothing is read whole into memory unbounded. Names that came from such
a place are printed through ``escape`` so a newline or a control character cannot forge a line.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from generator.core.errors import GenError

_CHUNK = 1 << 20
_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class Unreadable(GenError):
    """Not a regular file that may be read (a link, a directory, a FIFO, too large, no access)."""


def kind(mode: int) -> str:
    """What a file of this ``st_mode`` is, for messages (``a symbolic link``, ``a FIFO``, ...)."""
    kinds = (
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISREG, "a regular file"),
    )
    return next((what for test, what in kinds if test(mode)), "an unknown kind of file")


@contextmanager
def open_regular(path: Path, limit: int | None = None) -> Iterator[BinaryIO]:
    """``path`` opened for reading if it is a regular file of at most ``limit`` bytes.

    Raise FileNotFoundError if it does not exist (the caller knows whether that means "not yet"),
    and Unreadable (naming the file by ``escape``) for anything else that is not a readable
    regular file within the limit. The file's size is checked before any byte is read.
    """
    fd = _open(path)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise Unreadable(f"{escape(path.name)} is {kind(info.st_mode)}, not a regular file")
        if limit is not None and info.st_size > limit:
            raise Unreadable(f"{escape(path.name)} is larger than {limit} bytes ({info.st_size})")
        os.set_blocking(fd, True)
        f = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with f:
        yield f


def _open(path: Path) -> int:
    try:
        return os.open(path, _FLAGS)
    except FileNotFoundError:
        raise
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise Unreadable(
                f"{escape(path.name)} is a symbolic link, not a regular file"
            ) from None
        raise Unreadable(f"{escape(path.name)} cannot be opened: {e.strerror}") from None


def read_regular(path: Path, limit: int) -> bytes:
    """The whole content of a regular file of at most ``limit`` bytes (see ``open_regular``)."""
    with open_regular(path, limit) as f:
        return _read_bounded(f, path, limit)


def _read_bounded(f: BinaryIO, path: Path, limit: int) -> bytes:
    data = f.read(limit + 1)  # the file may have grown since fstat
    if len(data) > limit:
        raise Unreadable(f"{escape(path.name)} grew beyond {limit} bytes while being read")
    return data


def sha256(f: BinaryIO, limit: int) -> tuple[int, str]:
    """Size and sha256 of what is left in ``f``, reading at most ``limit + 1`` bytes: a size
    above ``limit`` means the file is larger than promised (the hash is then of a prefix)."""
    digest, size = hashlib.sha256(), 0
    while size <= limit:
        chunk = f.read(min(_CHUNK, limit + 1 - size))
        if not chunk:
            break
        digest.update(chunk)
        size += len(chunk)
    return size, digest.hexdigest()


def escape(name: str) -> str:
    """``name`` as one printable ASCII line: backslash, control and non-ASCII bytes (also those
    of a name that is not UTF-8) become ``\\xNN``; a safe name is returned unchanged."""
    raw = name.encode("utf-8", "surrogateescape")
    return "".join(chr(b) if 0x20 <= b < 0x7F and b != 0x5C else f"\\x{b:02x}" for b in raw)
