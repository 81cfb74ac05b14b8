"""Before apply: the datasources the site's monitoring stack provides, and does every compiled
alert rule select at least one datasource on the server?

A site that runs components/monitoring-stack lists its Prometheus in ``site.json``
(``datasources``): ``plan`` and ``provision`` create it by name or update what differs, so the
rules' selection finds it.

n9e accepts a rule whose ``datasource_queries`` (a name pattern, ids, or "all") match nothing, and
such a rule never evaluates. The server's own matcher (``POST /datasource/query``) answers which
datasources a rule selects, so gen asks it rather than re-implementing n9e's glob.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Protocol

from generator.core import errors


class Api(Protocol):
    """What the check needs of the server (``client.Client`` and the tests' double have it)."""

    def get(self, path: str, query: dict[str, str] | None = None) -> Any: ...

    def call(self, method: str, path: str, body: Any = None) -> Any: ...

    def call_raw(self, method: str, path: str, body: Any = None) -> dict[str, Any]: ...


class NoDatasource(errors.GenError):
    """Compiled rules select no datasource that exists on the server."""


COMPARED = ("plugin_type", "category", "description")
"""Top-level fields of a provisioned datasource compared with the server's (plus ``http.url``)."""


@dataclass(frozen=True)
class Change:
    """What provisioning a compiled datasource takes: create, update (the fields), or nothing."""

    verb: str
    """create, update, or "" (up to date)."""
    name: str
    fields: tuple[str, ...] = ()
    current_id: int = 0


def plan(api: Api, wanted: dict[str, Any]) -> Change:
    """How the server's datasource of ``wanted["name"]`` differs from ``wanted`` (by name)."""
    name = str(wanted["name"])
    found = {
        str(d.get("name")): d for d in api.get("/datasource/brief") or [] if isinstance(d, dict)
    }
    if name not in found:
        return Change("create", name)
    current_id = int(found[name]["id"])
    current = _answer(api.call_raw("POST", "/datasource/desc", {"id": current_id}), name)
    fields = [k for k in COMPARED if wanted.get(k, "") != (current or {}).get(k, "")]
    url = ((current or {}).get("http") or {}).get("url")
    if url != wanted["http"]["url"]:
        fields.append("http.url")
    return Change("update" if fields else "", name, tuple(fields), current_id)


def provision(api: Api, wanted: dict[str, Any], change: Change) -> None:
    """Create or update one datasource as ``change`` says. Saved without n9e's connectivity
    test (``force_save``): Prometheus may not answer yet on the stack's first start, and the
    rules should be in place when it does."""
    body = {**wanted, "force_save": True}
    if change.verb == "update":
        body["id"] = change.current_id
    _answer(api.call_raw("POST", "/datasource/upsert", body), change.name)


def would_match(queries: list[dict[str, Any]], names: list[str]) -> bool:
    """Whether name ``in`` queries (match_type 1, n9e's ``*``/``?`` glob) select one of ``names``
    (for a dry run, where the datasources to create do not exist yet)."""
    chosen = list(names)
    for query in queries:
        if query.get("match_type") == 2:
            continue
        if query.get("match_type") != 1 or query.get("op", "in") != "in":
            return False
        patterns = [_glob(str(v)) for v in query.get("values") or []]
        chosen = [n for n in chosen if any(p.fullmatch(n) for p in patterns)]
    return bool(chosen)


def _glob(pattern: str) -> re.Pattern[str]:
    """tidwall/match, as n9e matches datasource names: ``*`` any run, ``?`` one character."""
    return re.compile(
        "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern),
        re.DOTALL,
    )


def _answer(envelope: dict[str, Any], name: str) -> Any:
    """The data of a datasource route's answer (``{"data", "error"}``); its error raised."""
    error = envelope.get("error") or envelope.get("err")
    if error:
        raise DatasourceRefused(f"n9e refused the datasource {name!r}: {error}")
    return envelope.get("data", envelope.get("dat"))


class DatasourceRefused(errors.GenError):
    """The server refused to create or update a compiled datasource."""


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
