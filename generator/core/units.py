"""Units operators write: durations (``30s``, ``5m``, ``1h30m``, ``7d``) and Kubernetes versions.

One parser of each, shared by the compiler, the ferry and the agent. A duration always carries its
unit: a bare ``90`` meant seconds to the agent and days to the ferry, so it is now refused, naming
the field it came from. Units, largest first: ``w`` ``d`` ``h`` ``m`` ``s`` ``ms``; a compound
lists each unit at most once, largest first, as Prometheus does (``1h30m``, ``2d12h``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

from generator.core.errors import GenError

_UNIT_SECONDS: dict[str, float] = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1, "ms": 0.001}
_NUMBER = r"\d+(?:\.\d+)?"
_PART = re.compile(rf"({_NUMBER})(ms|[wdhms])")
_COMPOUND = re.compile(rf"(?:{_NUMBER}(?:ms|[wdhms]))+")
_BARE = re.compile(_NUMBER)
_EXAMPLES = "30s, 5m, 2h, 7d or 1h30m"

# "1.30", "v1.30.2", and vendor builds such as "1.28.3-eks-1" or "v1.29.1+k3s1".
_KUBE_VERSION = re.compile(r"v?(\d+)\.(\d+)(?:\.(\d+))?(?:[-+][0-9A-Za-z.+-]*)?")


def duration(text: str, field: str) -> timedelta:
    """``text`` as a duration of zero or more; GenError naming ``field`` if it is not one.

    Refused: a bare number (``90``: which unit?), a negative, an unknown or uppercase unit, a unit
    repeated or out of order (``30m1h``), anything that is not a string.
    """
    return _parse(text, field, "duration")


def positive_duration(text: str, field: str) -> timedelta:
    """Like ``duration``, and zero is refused too (an interval, a timeout, an expiry)."""
    value = _parse(text, field, "positive duration")
    if not value:
        raise GenError(_not_a(text, field, "positive duration"))
    return value


def whole_seconds(text: str, field: str) -> int:
    """``duration`` in whole seconds (``1500ms`` is refused: the reader counts seconds)."""
    value = duration(text, field)
    if value % timedelta(seconds=1):
        raise GenError(f"{field}: {text!r} is not a whole number of seconds")
    return value // timedelta(seconds=1)


def format_duration(seconds: int) -> str:
    """The Prometheus spelling of whole ``seconds``: ``5m``, ``1h30m``, ``0s`` (``duration`` reads
    it back)."""
    if seconds == 0:
        return "0s"
    out = ""
    for unit in ("h", "m", "s"):
        size = int(_UNIT_SECONDS[unit])
        if seconds >= size:
            out += f"{seconds // size}{unit}"
            seconds %= size
    return out


def _parse(text: object, field: str, what: str) -> timedelta:
    if not isinstance(text, str):
        raise GenError(_not_a(text, field, what))
    raw = text.strip()
    if _BARE.fullmatch(raw):
        raise GenError(
            f"{field}: {text!r} is not a {what}: a unit is required, "
            f"e.g. {raw}s, {raw}m, {raw}h or {raw}d"
        )
    if not _COMPOUND.fullmatch(raw):
        raise GenError(_not_a(text, field, what))
    parts = _PART.findall(raw)
    ranks = [list(_UNIT_SECONDS).index(unit) for _, unit in parts]
    if ranks != sorted(set(ranks)):
        raise GenError(
            f"{field}: {text!r} is not a {what}: list each unit once, largest first (1h30m)"
        )
    return timedelta(seconds=sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts))


def _not_a(text: object, field: str, what: str) -> str:
    return f"{field}: {text!r} is not a {what} like {_EXAMPLES}"


@dataclass(frozen=True, order=True)
class KubeVersion:
    """A Kubernetes release, compared numerically (1.9 < 1.10); a missing patch level is 0."""

    major: int
    minor: int
    patch: int = 0

    @property
    def minor_version(self) -> tuple[int, int]:
        """(major, minor): what API availability and the bundled schemas depend on."""
        return self.major, self.minor

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


def kube_version(text: str, field: str = "kubernetes_version") -> KubeVersion:
    """``1.30``, ``v1.30.2``, ``1.28.3-eks-1`` as a version; GenError naming ``field`` otherwise."""
    match = _KUBE_VERSION.fullmatch(text.strip()) if isinstance(text, str) else None
    if not match:
        raise GenError(
            f"{field}: unsupported Kubernetes version {text!r}: expected e.g. 1.30 or v1.30.2"
        )
    major, minor, patch = match.groups()
    return KubeVersion(int(major), int(minor), int(patch or 0))
