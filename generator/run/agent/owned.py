"""Does the agent own a field that the branch no longer has? (pure)

``drift.covers`` only asks whether the live object holds every desired value, so a field removed
from the branch (a label, a ConfigMap key, an env var, a port) would look "covered" forever. Server
side apply removes such a field only when it is applied again, and only if our field manager owns
it. The server records what each manager owns in ``metadata.managedFields`` (the FieldsV1 trie),
which the LIST the agent already makes returns: walking that trie against the desired object finds
a removed field with no request at all.

FieldsV1 keys: ``f:<name>`` a map field, ``k:<json>`` a keyed list entry (``{"name": "app"}``),
``v:<json>`` a set list entry, ``i:<n>`` a list index, ``.`` the node itself.
"""

from __future__ import annotations

import json
from typing import Any

Fields = dict[str, Any]


def fields_of(live: dict[str, Any], manager: str) -> Fields | None:
    """The fields ``manager`` owns in ``live`` by applying (None if it owns none there)."""
    for entry in (live.get("metadata") or {}).get("managedFields") or []:
        if (
            entry.get("manager") == manager
            and entry.get("operation") == "Apply"
            and not entry.get("subresource")
            and isinstance(entry.get("fieldsV1"), dict)
        ):
            found: Fields = entry["fieldsV1"]
            return found
    return None


def removed(live: dict[str, Any], want: dict[str, Any], manager: str) -> str:
    """The path of a field ``manager`` owns in ``live`` that ``want`` no longer has ("" if none).

    Only what was applied is judged; fields that other managers own are not ours to remove.
    """
    owned = fields_of(live, manager)
    return "" if owned is None else _missing(owned, want, "")


def _missing(fields: Fields, want: Any, path: str) -> str:
    for key, child in fields.items():
        if key == ".":
            continue
        found, where = _lookup(key, want, path)
        if found is _ABSENT:
            return where
        if isinstance(child, dict) and child:
            deeper = _missing(child, found, where)
            if deeper:
                return deeper
    return ""


_ABSENT = object()


def _lookup(key: str, want: Any, path: str) -> tuple[Any, str]:
    """The desired value a FieldsV1 key names (``_ABSENT`` if there is none), and its path."""
    kind, _, name = key.partition(":")
    if kind == "f":
        where = f"{path}.{name}"
        if not isinstance(want, dict) or want.get(name) is None:
            return _ABSENT, where
        return want[name], where
    if not isinstance(want, list):
        return _ABSENT, f"{path}[{name}]"
    if kind == "k":
        keys = json.loads(name)
        for item in want:
            if isinstance(item, dict) and _matches(item, keys):
                return item, f"{path}[{_label(keys)}]"
        return _ABSENT, f"{path}[{_label(keys)}]"
    if kind == "v":
        value = json.loads(name)
        return (value if value in want else _ABSENT), f"{path}[{name}]"
    if kind == "i":
        index = int(name)
        return (want[index] if index < len(want) else _ABSENT), f"{path}[{index}]"
    return want, path  # a key kind this version does not know: never a reason to apply


def _matches(item: dict[str, Any], keys: dict[str, Any]) -> bool:
    # The server keys entries with its defaults filled in (a port's protocol: TCP) that the branch
    # may leave out: a key field the branch does not set matches whatever the server defaulted.
    return all(
        name not in item or item[name] == value or str(item[name]) == str(value)
        for name, value in keys.items()
    )


def _label(keys: dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in keys.items())
