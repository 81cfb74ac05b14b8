"""Does a live object already hold what we would apply? (pure)

The cheap check, ``covers``, asks whether every field of the desired object is present in the live
one with the same value: server defaults and fields owned by others are extra and do not matter.
It normalises what the API server rewrites on its own (quantities such as ``0.5`` -> ``500m``,
empty maps and lists left out). A live object that ``covers`` says is different is then dry-run
on the server and compared with ``same_object``; only a real difference is applied, so a no-op
reconcile writes nothing, and a normalisation missed here costs one dry-run, never a write.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

_QUANTITY = re.compile(
    r"^([+-]?(?:\d+\.?\d*|\.\d+))(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?\d+)?$"
)
_FACTORS = {
    None: Decimal(1),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal(10) ** 3,
    "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15,
    "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50,
    "Ei": Decimal(2) ** 60,
}
VOLATILE = ("resourceVersion", "managedFields", "generation")
"""Metadata that changes without the object's content changing (ignored by ``same_object``)."""


def covers(live: Any, want: Any) -> bool:
    """Whether ``live`` holds every value of ``want`` (maps: a superset; lists: same length,
    element-wise)."""
    if isinstance(want, dict):
        if not isinstance(live, dict):
            return not want and live is None
        return all(_covers_key(live, key, value) for key, value in want.items())
    if isinstance(want, list):
        if not isinstance(live, list):
            return not want and live is None
        return len(live) == len(want) and all(
            covers(lv, wv) for lv, wv in zip(live, want, strict=True)
        )
    if live == want and type(live) is type(want):
        return True
    return _same_scalar(live, want)


def _covers_key(live: dict[str, Any], key: str, want: Any) -> bool:
    if key not in live:
        return want is None or want == {} or want == []
    return covers(live[key], want)


def _same_scalar(live: Any, want: Any) -> bool:
    if isinstance(live, bool) or isinstance(want, bool):
        return live is want
    if isinstance(live, (int, float)) and isinstance(want, (int, float)):
        return live == want
    if isinstance(live, str) and isinstance(want, (str, int, float)):
        a, b = quantity(live), quantity(str(want))
        return a is not None and a == b
    return False


def quantity(text: str) -> Decimal | None:
    """The value of a Kubernetes quantity (``500m``, ``1Gi``, ``2``, ``1e3``),
    or None if it is not one."""
    match = _QUANTITY.match(text)
    if not match:
        return None
    suffix = match.group(2)
    try:
        number = Decimal(match.group(1))
        if suffix and suffix[0] in "eE":
            return number * Decimal(10) ** int(suffix[1:])
        return number * _FACTORS[suffix]
    except (InvalidOperation, KeyError):
        return None


def same_object(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two server copies of an object are equal but for volatile metadata."""
    return _stripped(a) == _stripped(b)


def _stripped(obj: dict[str, Any]) -> dict[str, Any]:
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in VOLATILE}
    return {**obj, "metadata": meta}
