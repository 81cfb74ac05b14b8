"""Secret references in the inventory, in the spirit of Kapitan's refs: ``?{age:<path>}``.

A reference is a whole string value. Its path is relative to the site's own secret directory, so a
class shared by many sites (``REDIS_PASSWORD: ?{age:redis/password}``) points each site at its own
file, ``secrets/<site>/redis/password.age``, and no site can name another site's file. Pure: no I/O.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from generator.core.errors import GenError

BACKEND = "age"
SECRETS_DIR = "secrets"
SUFFIX = ".age"

MARKER = re.compile(r"\?\{[A-Za-z0-9_-]+:")
"""What makes a string look like a reference (and so be checked as one): ``?{<backend>:``."""
_WHOLE = re.compile(r"\A\?\{(?P<backend>[A-Za-z0-9_-]+):(?P<path>[^{}]*)\}\Z")
_SEGMENT = re.compile(r"\A[A-Za-z0-9_][A-Za-z0-9._-]*\Z")

KeyPath = tuple[str | int, ...]


class RefError(GenError):
    """A malformed reference; the caller adds where it was written."""


@dataclass(frozen=True, order=True)
class Ref:
    """A parsed reference to one secret file of a site."""

    path: str
    """Relative path without the ``.age`` suffix, e.g. ``registry/password``."""

    def file(self, site: str) -> str:
        """The secret file of ``site`` this reference points at, relative to the project root."""
        return file_for(site, self.path)

    def __str__(self) -> str:
        return f"?{{{BACKEND}:{self.path}}}"


def looks_like_ref(value: Any) -> bool:
    """True for a string holding ``?{<backend>:`` anywhere (a reference, or a malformed one)."""
    return isinstance(value, str) and MARKER.search(value) is not None


def parse(text: str) -> Ref:
    """The reference a whole string value makes; RefError saying what is wrong otherwise."""
    match = _WHOLE.match(text)
    if match is None:
        raise RefError(
            "a secret reference must be the whole value, exactly ?{age:<path>} (it cannot be "
            "part of a longer string)"
        )
    if match["backend"] != BACKEND:
        raise RefError(
            f"unknown secret backend {match['backend']!r}: only ?{{age:<path>}} is supported"
        )
    check_path(match["path"])
    return Ref(match["path"])


def check_path(path: str) -> None:
    """A secret path is relative, '/'-separated, without '..' or empty parts; RefError otherwise."""
    if not path:
        raise RefError("empty secret path: write ?{age:<path>}, e.g. ?{age:redis/password}")
    if path.startswith("/"):
        raise RefError(f"secret path {path!r} must be relative (to secrets/<site>/)")
    if path.endswith(SUFFIX):
        raise RefError(
            f"secret path {path!r}: leave out the {SUFFIX} suffix (it is added to find the file)"
        )
    for part in path.split("/"):
        if part in ("", ".", ".."):
            raise RefError(f"secret path {path!r} may not contain empty, '.' or '..' parts")
        if not _SEGMENT.match(part):
            raise RefError(
                f"secret path {path!r}: each part must be letters, digits, '_', '-' or '.' "
                "(not starting with '.' or '-')"
            )


def file_for(site: str, path: str) -> str:
    """``secrets/<site>/<path>.age``: where the secret ``path`` of ``site`` is stored."""
    return f"{SECRETS_DIR}/{site}/{path}{SUFFIX}"


def path_of(site: str, file: str) -> str | None:
    """The secret path a file of ``secrets/<site>/`` stores (the inverse of ``file_for``), or
    None."""
    prefix = f"{SECRETS_DIR}/{site}/"
    if not file.startswith(prefix) or not file.endswith(SUFFIX):
        return None
    return file[len(prefix) : -len(SUFFIX)]


def find(params: Any, path: KeyPath = ()) -> Iterator[tuple[KeyPath, str]]:
    """Every string in a parameter tree that looks like a reference, with its key path, in tree
    order."""
    if not path and not _may_hold_ref(params):
        return
    items: Iterable[tuple[Any, Any]]
    if isinstance(params, dict):
        items = params.items()
    elif isinstance(params, list):
        items = enumerate(params)
    else:
        if looks_like_ref(params):
            yield path, params
        return
    # Leaves are tested here, not in a call each: a site's parameters have ~1,400 of them.
    for key, value in items:
        if isinstance(value, str):
            if "?{" in value and MARKER.search(value) is not None:
                yield (*path, key), value
        elif isinstance(value, (dict, list)):
            yield from find(value, (*path, key))


def _may_hold_ref(params: Any) -> bool:
    """False when no string of the tree contains ``?{`` (so none is a reference): one look at
    its JSON text (C code) instead of a walk through every value (most sites hold no secret).
    True when that cannot be shown (a value JSON cannot hold)."""
    if isinstance(params, str):
        return "?{" in params
    try:
        text = json.dumps(params, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        return True
    # JSON escapes neither "?" nor "{": a string holding "?{" shows it in the text as it is.
    return "?{" in text
