"""Before apply: does every compiled alert rule select at least one datasource on the server?

n9e accepts a rule whose ``datasource_queries`` (a name pattern, ids, or "all") match nothing, and
such a rule never evaluates. The server's own matcher (``POST /datasource/query``) answers which
datasources a rule selects, so gen asks it rather than re-implementing n9e's glob.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

from generator.core import errors


class Api(Protocol):
    """What the check needs of the server (``client.Client`` and the tests' double have it)."""

    def get(self, path: str, query: dict[str, str] | None = None) -> Any: ...

    def call(self, method: str, path: str, body: Any = None) -> Any: ...


class NoDatasource(errors.GenError):
    """Compiled rules select no datasource that exists on the server."""


@dataclass(frozen=True)
class Unmatched:
    """A datasource selection (category and queries) matching nothing, and the rules using it."""

    cate: str
    queries: tuple[str, ...]
    """Each query spelled for a person: ``name in prometheus-*``, ``id in 7``, ``all``."""
    rules: tuple[str, ...]

    def __str__(self) -> str:
        shown = ", ".join(self.rules[:3]) + (
            f" and {len(self.rules) - 3} more" if len(self.rules) > 3 else ""
        )
        return f"{self.cate} datasource {' and '.join(self.queries)} (rules: {shown})"


def unmatched(api: Api, rules: list[dict[str, Any]]) -> list[Unmatched]:
    """The selections of ``rules`` that match no datasource on the server (one server call each)."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for rule in rules:
        key = json.dumps(
            [rule.get("cate", ""), rule.get("datasource_queries") or []], sort_keys=True
        )
        groups.setdefault(key, []).append(rule)
    out = []
    for key, members in groups.items():
        cate, queries = json.loads(key)
        found = api.call(
            "POST", "/datasource/query", {"datasource_cate": cate, "datasource_queries": queries}
        )
        if not found:
            out.append(
                Unmatched(
                    cate,
                    tuple(_spelled(q) for q in queries) or ("(none given)",),
                    tuple(str(r.get("name")) for r in members),
                )
            )
    return out


def existing(api: Api) -> list[str]:
    """The server's datasources as ``name (plugin type, id N)``, for an error message."""
    answer = api.get("/datasource/brief")
    return [
        f"{d.get('name')} ({d.get('plugin_type')}, id {d.get('id')})"
        for d in answer or []
        if isinstance(d, dict)
    ]


def refusal(missing: list[Unmatched], datasources: list[str]) -> NoDatasource:
    """The error naming every unmatched selection and what exists instead."""
    there = ", ".join(datasources) or "none"
    lines = "; ".join(map(str, missing))
    return NoDatasource(
        f"compiled alert rules would never evaluate: no datasource matches {lines}; "
        f"the server has: {there}. Add or rename a datasource, fix "
        "site.monitoring.datasource in the inventory, or pass --allow-missing-datasource"
    )


def _spelled(query: dict[str, Any]) -> str:
    values = ", ".join(str(v) for v in query.get("values") or [])
    kind = {0: "id", 1: "name", 2: "all"}.get(
        query.get("match_type", -1), f"match_type {query.get('match_type')}"
    )
    return "all" if kind == "all" else f"{kind} {query.get('op', 'in')} {values}"
