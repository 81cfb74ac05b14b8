"""An in-memory stand-in for the n9e API, run through the same tests as the real server."""

from __future__ import annotations

import copy
import itertools
from typing import Any

from generator.run.n9e import client


class ApiDouble:
    """An in-memory n9e API: the routes, envelopes and checks reconcile relies on, nothing more."""

    def __init__(self) -> None:
        self.ids = itertools.count(1)
        self.store: dict[str, list[dict[str, Any]]] = {
            "/user-groups": [], "/busi-groups": [], "/notify-channel-configs": [], "/message-templates": [],
            "/notify-rules": []}
        self.rules: dict[int, list[dict[str, Any]]] = {}
        self.writes = 0

    def get(self, path: str, query: dict[str, str] | None = None) -> Any:
        if path.startswith("/busi-group/"):
            return copy.deepcopy(self.rules.get(int(path.split("/")[2]), []))
        return copy.deepcopy(self.store[path])

    def call(self, method: str, path: str, body: Any = None) -> Any:
        answer = self.call_raw(method, path, body)
        if answer["err"]:
            raise client.ApiError(f"{method} {path}: {answer['err']}")
        return answer["dat"]

    def call_raw(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        self.writes += 1
        if path.startswith("/busi-group/"):
            return self._rules(method, path, body)
        collection, _, item = path.rpartition("/") if path.count("/") > 1 else (path, "", "")
        if method == "POST":
            new = [self._stored(obj) for obj in (body if isinstance(body, list) else [body])]
            self.store[path] += new
            return {"dat": new[0]["id"] if isinstance(body, dict) else [n["id"] for n in new], "err": ""}
        if method == "DELETE":
            self.store[path] = [o for o in self.store[path] if o["id"] not in body["ids"]]
            return {"dat": None, "err": ""}
        items = self.store[collection + "s"]  # PUT /notify-rule/7 updates an item of /notify-rules
        (target,) = [o for o in items if o["id"] == int(item)]
        target.update({**body, "id": int(item), "update_at": 2})
        return {"dat": None, "err": ""}

    def _stored(self, obj: dict[str, Any]) -> dict[str, Any]:
        return {**copy.deepcopy(obj), "id": next(self.ids), "create_at": 1, "update_at": 1, "create_by": "root"}

    def _rules(self, method: str, path: str, body: Any) -> dict[str, Any]:
        parts = path.split("/")
        group = self.rules.setdefault(int(parts[2]), [])
        if method == "POST":
            errors = {rule["name"]: self._refuse(rule, group) for rule in body}
            group += [{**self._stored(r), "uuid": 0, "severities": [1]} for r in body if not errors[r["name"]]]
            return {"dat": errors, "err": ""}
        if method == "DELETE":
            group[:] = [r for r in group if r["id"] not in body["ids"]]
            return {"dat": None, "err": ""}
        (target,) = [r for r in group if r["id"] == int(parts[-1])]
        reason = self._refuse(body, [r for r in group if r is not target])
        if not reason:
            target.update({**body, "uuid": 0})
        return {"dat": None, "err": reason}

    @staticmethod
    def _refuse(rule: dict[str, Any], group: list[dict[str, Any]]) -> str:
        if any(c in rule["name"] for c in "<>&'\""):
            return "Name has invalid characters"
        if any(r["name"] == rule["name"] for r in group):
            return "AlertRule already exists"
        return ""
