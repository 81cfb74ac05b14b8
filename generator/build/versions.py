"""Versions of installed distributions, for cache keys (the tool fingerprint, the validator
caches).

``importlib.metadata.version`` imports the email package to parse METADATA (~30 ms, every
``gen compile``, a no-op included); the ``<name>-<version>.dist-info`` directories on ``sys.path``
already say it. A distribution found no such way (an egg, an odd layout) is asked of
``importlib.metadata`` as before.
"""

from __future__ import annotations

import functools
import os
import re
import sys


def version(dist: str) -> str | None:
    """The installed version of distribution ``dist``, None when it is not installed."""
    found = _dist_infos().get(_normalize(dist))
    if found is not None:
        return found
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@functools.cache
def _dist_infos() -> dict[str, str]:
    """Normalized name -> version of each ``.dist-info`` directory on ``sys.path``, the first on
    the path winning (as for importlib.metadata)."""
    out: dict[str, str] = {}
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for name in names:
            if name.endswith(".dist-info"):
                dist, sep, found = name[: -len(".dist-info")].partition("-")
                if sep and found:
                    out.setdefault(_normalize(dist), found)
    return out
