"""n9e for tests: ``ApiDouble`` (in memory) and ``real_n9e`` (a real v9.1.1), for the same tests.

The double behaves like the real server where gen depends on it (each point read off the v9.1.1
source): message templates get a server-made UUID ident and refuse an update that changes it
(``cannot update ident``); errors come in Chinese unless the request says ``X-Language: en``; the
server starts with one datasource, ``embedded-tsdb``, and matches rules' datasource queries
(``POST /datasource/query``) with the same glob (``*`` and ``?``).
"""

from __future__ import annotations

import copy
import itertools
import json
import os
import re
import uuid
from collections.abc import Iterator, Mapping
from typing import Any, NoReturn

import pytest

from generator.run.n9e import client

ROOT_USER, ROOT_PASSWORD = "root", "root.2020"
SITE_DATASOURCE = "prometheus-site"
"""A datasource the compiled sites' pattern (``prometheus-*``) selects: added to each server."""
CHINESE = {"Name has invalid characters": "名称包含非法字符"}
"""What the real server says (zh_CN) without ``X-Language: en``, for the errors the double makes."""


class ApiDouble:
    """An in-memory n9e API: the routes, envelopes and checks reconcile relies on, nothing more."""

    def __init__(self, headers: Mapping[str, str] | None = None) -> None:
        self.english = (headers or {}).get("X-Language", "").startswith("en")
        self.ids = itertools.count(2)
        self.store: dict[str, list[dict[str, Any]]] = {
            "/user-groups": [],
            "/busi-groups": [],
            "/notify-channel-configs": [],
            "/message-templates": [],
            "/notify-rules": [],
        }
        self.rules: dict[int, list[dict[str, Any]]] = {}
        self.datasources = [{"id": 1, "name": "embedded-tsdb", "plugin_type": "prometheus"}]
        self.writes = 0

    def get(self, path: str, query: dict[str, str] | None = None) -> Any:
        if path.startswith("/busi-group/"):
            return copy.deepcopy(self.rules.get(int(path.split("/")[2]), []))
        if path == "/datasource/brief":
            keys = ("id", "name", "plugin_type")
            return [{k: d[k] for k in keys} for d in self.datasources]
        return copy.deepcopy(self.store[path])

    def call(self, method: str, path: str, body: Any = None) -> Any:
        answer = self.call_raw(method, path, body)
        if answer.get("err"):
            raise client.ApiError(f"{method} {path}: {answer['err']}")
        return answer.get("dat")

    def call_raw(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        if path.startswith("/datasource/"):
            return self._datasource(path, body)
        self.writes += 1
        if path.startswith("/busi-group/"):
            return self._rules(method, path, body)
        collection, _, item = path.rpartition("/") if path.count("/") > 1 else (path, "", "")
        if method == "POST":
            new = [self._stored(obj, path) for obj in (body if isinstance(body, list) else [body])]
            self.store[path] += new
            return {
                "dat": new[0]["id"] if isinstance(body, dict) else [n["id"] for n in new],
                "err": "",
            }
        if method == "DELETE":
            self.store[path] = [o for o in self.store[path] if o["id"] not in body["ids"]]
            return {"dat": None, "err": ""}
        items = self.store[collection + "s"]  # PUT /notify-rule/7 updates an item of /notify-rules
        (target,) = [o for o in items if o["id"] == int(item)]
        if collection == "/message-template" and body.get("ident") != target["ident"]:
            return {"dat": None, "err": "cannot update ident"}
        target.update({**body, "id": int(item), "update_at": 2})
        return {"dat": None, "err": ""}

    def _stored(self, obj: dict[str, Any], path: str = "") -> dict[str, Any]:
        made = {"ident": str(uuid.uuid4())} if path == "/message-templates" else {}
        return {
            **copy.deepcopy(obj),
            **made,
            "id": next(self.ids),
            "create_at": 1,
            "update_at": 1,
            "create_by": "root",
        }

    def _rules(self, method: str, path: str, body: Any) -> dict[str, Any]:
        parts = path.split("/")
        group = self.rules.setdefault(int(parts[2]), [])
        if method == "POST":
            errors = {rule["name"]: self._refuse(rule, group) for rule in body}
            group += [
                {**self._stored(r), "uuid": 0, "severities": [1]}
                for r in body
                if not errors[r["name"]]
            ]
            return {"dat": errors, "err": ""}
        if method == "DELETE":
            group[:] = [r for r in group if r["id"] not in body["ids"]]
            return {"dat": None, "err": ""}
        (target,) = [r for r in group if r["id"] == int(parts[-1])]
        reason = self._refuse(body, [r for r in group if r is not target])
        if not reason:
            target.update({**body, "uuid": 0})
        return {"dat": None, "err": reason}

    def _refuse(self, rule: dict[str, Any], group: list[dict[str, Any]]) -> str:
        if any(c in rule["name"] for c in "<>&'\""):
            return self._say("Name has invalid characters")
        if any(r["name"] == rule["name"] for r in group):
            return "AlertRule already exists"  # zh_CN has no translation of this one either
        return ""

    def _say(self, message: str) -> str:
        return message if self.english else CHINESE.get(message, message)

    def _datasource(self, path: str, body: Any) -> dict[str, Any]:
        # These routes answer {"data", "error"}, not {"dat", "err"}.
        if path == "/datasource/upsert":
            self.writes += 1
            saved = {k: copy.deepcopy(v) for k, v in body.items() if k != "force_save"}
            if body.get("id"):  # an update: the server keeps the id and changes the fields
                [current] = [d for d in self.datasources if d["id"] == body["id"]]
                current.update(saved)
                return {"data": {"id": current["id"]}, "error": ""}
            if any(d["name"] == body["name"] for d in self.datasources):
                return {"data": None, "error": "name already exists"}
            self.datasources.append({**saved, "id": next(self.ids)})
            return {"data": {"id": self.datasources[-1]["id"]}, "error": ""}
        if path == "/datasource/desc":
            [found] = [d for d in self.datasources if d["id"] == body["id"]]
            return {"data": copy.deepcopy(found), "error": ""}
        matched = _select(self.datasources, body["datasource_cate"], body["datasource_queries"])
        return {"dat": [{"id": d["id"], "name": d["name"]} for d in matched] or None, "err": ""}


def _select(
    datasources: list[dict[str, Any]], cate: str, queries: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """n9e's GetDatasourceIDsByDatasourceQueries for ``in`` queries: every query narrows the set."""
    chosen = [d for d in datasources if d["plugin_type"] == cate]
    for query in queries:
        values = query.get("values") or []
        if query["match_type"] == 0:
            chosen = [d for d in chosen if d["id"] in values or d["name"] in values]
        elif query["match_type"] == 1:
            chosen = [d for d in chosen if any(_glob(str(v)).fullmatch(d["name"]) for v in values)]
    return chosen


def _glob(pattern: str) -> re.Pattern[str]:
    """tidwall/match: ``*`` any run, ``?`` one character, nothing else special."""
    return re.compile(
        "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern), re.DOTALL
    )


def add_site_datasource(api: Any) -> None:
    """Give ``api`` (the double or a real client) the datasource the compiled rules select, once."""
    if any(d.get("name") == SITE_DATASOURCE for d in api.get("/datasource/brief") or []):
        return
    answer = api.call_raw(
        "POST",
        "/datasource/upsert",
        {
            "name": SITE_DATASOURCE,
            "plugin_type": "prometheus",
            "plugin_type_name": "Prometheus Like",
            "category": "timeseries",
            "http": {"url": "http://127.0.0.1:9"},
            "settings": {},
            "force_save": True,
        },
    )  # saved without a connectivity check: nothing listens there
    assert not answer.get("error") and not answer.get("err"), json.dumps(answer)


@pytest.fixture(scope="module")
def real_n9e(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A real n9e v9.1.1 for this module (with ``SITE_DATASOURCE``), or a skip saying why not."""
    from tests.support.servers import ServerStartError
    from tests.support.servers.n9e import ensure_n9e, start_n9e

    if os.environ.get("GEN_OFFLINE") != "1":  # n9e calls api.github.com at start-up
        _unavailable(
            "n9e is started only in a network namespace without routes: run pytest "
            "through tools/offline (as make test does)"
        )
    try:
        ensure_n9e()
    except ServerStartError as e:
        _unavailable(
            f"no n9e v9.1.1 binary: {e} (its stderr says why, e.g. the Go module proxy "
            "refusing github.com/ccfos/nightingale/v6 and no vendored source)"
        )
    with start_n9e(tmp_path_factory.mktemp("n9e")) as server:
        add_site_datasource(root_client(server.url))
        yield server


def _unavailable(reason: str) -> NoReturn:
    """Skip the tests that need n9e, or fail them with GEN_REQUIRE_N9E=1 (CI)."""
    if os.environ.get("GEN_REQUIRE_N9E"):
        pytest.fail(f"GEN_REQUIRE_N9E=1 and {reason}")
    pytest.skip(f"{reason}; GEN_REQUIRE_N9E=1 makes this a failure")


def root_client(url: str) -> client.Client:
    """A logged-in client of the real server as its root user."""
    real = client.Client(client.Settings(url), client.Credentials(ROOT_USER, ROOT_PASSWORD))
    real.login()
    return real
