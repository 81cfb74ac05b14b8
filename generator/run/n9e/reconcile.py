"""Make a site's n9e match its compiled files: plan, then apply, idempotently.

``load`` reads ``compiled/<site>/n9e/``; ``run`` walks the site's n9e in dependency order and
creates, updates or deletes what differs (with ``dry_run`` it only reports what it would do):

0. the datasources the site's monitoring stack provides (``site.json``: ``datasources``) are
   created by name or updated where they differ; then every alert rule's datasource selection
   must match a datasource on the server, else nothing more is changed and
   ``datasources.NoDatasource`` says which (``allow_missing_datasource`` warns instead);
1. the team (user group) and the business group, found by name or created;
2. channels, message templates and the notify rule, matched by name and updated or created (a
   template's ident is made by the server and never changes, so an update keeps the server's);
3. alert rules, with the site's notify rule ids in ``notify_rule_ids``, matched by their identity
   annotation (``gen_rule``) and then by name. A rule is gen's when it carries ``managed-by=gen``
   and ``site=<site>``: gen's rules that are no longer declared are deleted; any other rule is
   never touched (a declared rule whose name a foreign rule holds is reported, not forced);
4. channels, templates and notify rules gen created for the site and no longer declares. The site
   is known by an exact marker, never a name prefix (``cn-east`` must not own ``cn-east-1``'s): a
   channel or notify rule is the site's when its description is exactly ``managed_note(site)``; a
   template (it has no description) when its channel (``notify_channel_ident``) is the site's.

A rule the server rejects is reported by name with the server's reason and the rest goes on; a
transport or login problem stops the run (``client.N9eError``). Nothing here imports the compiler:
the in-cluster agent calls ``load`` and ``run`` too.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from generator.core import errors, layout
from generator.core.location import Location
from generator.formats import n9e as model
from generator.run.n9e import datasources

PENDING = -1
"""Stand-in id of an object a dry run would create."""
IGNORED = frozenset({"id", "uuid", "group_id", "create_at", "create_by", "update_at", "update_by"})
"""Keys the server sets or ignores: never compared."""
EXACT = frozenset({"annotations", "headers", "parameters", "params", "content"})
"""Maps gen owns whole: compared exactly (elsewhere extra server keys are tolerated)."""
UNORDERED = frozenset({"append_tags", "notify_rule_ids", "severities", "user_group_ids"})


class Api(Protocol):
    """What ``run`` needs of the server; ``client.Client`` is the real one."""

    def get(self, path: str, query: dict[str, str] | None = None) -> Any: ...

    def call(self, method: str, path: str, body: Any = None) -> Any: ...

    def call_raw(self, method: str, path: str, body: Any = None) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Intent:
    """What a site's n9e should hold, as compiled."""

    site: str
    busi_group: str
    team: str
    alert_rules: list[dict[str, Any]]
    channels: list[dict[str, Any]]
    templates: list[dict[str, Any]]
    notify_rules: list[dict[str, Any]]
    datasources: list[dict[str, Any]] = field(default_factory=list)
    """Datasources the site's monitoring stack provides (n9e's upsert body, without ids)."""


@dataclass(frozen=True)
class Action:
    """One change to the server (or, in a dry run, one that would be made)."""

    verb: str
    """create, update or delete."""
    kind: str
    """datasource, team, busi-group, channel, template, notify-rule or alert-rule."""
    name: str
    fields: tuple[str, ...] = ()
    """For an update: the top-level fields that differ."""

    def __str__(self) -> str:
        detail = f" ({', '.join(self.fields)})" if self.fields else ""
        return f"{self.verb} {self.kind} {self.name!r}{detail}"


@dataclass(frozen=True)
class Rejection:
    """An object the server refused, with the server's reason."""

    kind: str
    name: str
    reason: str

    def __str__(self) -> str:
        return f"{self.kind} {self.name!r}: {self.reason}"


@dataclass
class Result:
    """What a run did (or would do)."""

    actions: list[Action] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    dry_run: bool = False
    warnings: list[str] = field(default_factory=list)
    """What was allowed deliberately but deserves a look (rules selecting no datasource)."""

    @property
    def changed(self) -> bool:
        return bool(self.actions)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly summary (``gen n9e apply -o json``)."""
        # The key is newer than the format: present only when used.
        warned = {"warnings": list(self.warnings)} if self.warnings else {}
        return {
            "dry_run": self.dry_run,
            "changed": self.changed,
            **warned,
            "actions": [
                {"verb": a.verb, "kind": a.kind, "name": a.name, "fields": list(a.fields)}
                for a in self.actions
            ],
            "rejected": [
                {"kind": r.kind, "name": r.name, "reason": r.reason} for r in self.rejections
            ],
        }


# -- loading ---------------------------------------------------------------------------------------


def load(site_dir: Path) -> Intent:
    """The intent in ``compiled/<site>/`` (its ``n9e/`` files);
    a missing or broken file is a user error."""
    site = _read(site_dir, layout.N9E_SITE)
    return Intent(
        site=str(site["site"]),
        busi_group=str(site["busi_group"]),
        team=str(site["team"]),
        alert_rules=_read(site_dir, layout.N9E_ALERT_RULES),
        channels=_read(site_dir, layout.N9E_CHANNELS),
        templates=_read(site_dir, layout.N9E_TEMPLATES),
        notify_rules=_read(site_dir, layout.N9E_NOTIFY_RULES),
        datasources=list(site.get("datasources") or []),
    )


def _read(site_dir: Path, rel: str) -> Any:
    path = site_dir / rel
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise errors.GenError(
            f"{path}: missing; run `gen compile` for a site with site.monitoring"
        ) from e
    except json.JSONDecodeError as e:
        raise errors.located(
            Location(str(path), e.lineno, e.colno), f"invalid JSON: {e.msg}"
        ) from e


# -- the run ---------------------------------------------------------------------------------------


def run(
    api: Api, intent: Intent, dry_run: bool = False, allow_missing_datasource: bool = False
) -> Result:
    """Bring the site's n9e to ``intent``; with ``dry_run`` change nothing and report the plan.

    Raises ``datasources.NoDatasource`` before any change when a rule would select no datasource,
    unless ``allow_missing_datasource`` (then the result carries a warning).
    """
    result = Result(dry_run=dry_run)
    planned = []
    for wanted in intent.datasources:
        change = datasources.plan(api, wanted)
        if change.verb:
            result.actions.append(Action(change.verb, "datasource", change.name, change.fields))
            if dry_run:
                planned.append(change.name)
            else:
                datasources.provision(api, wanted, change)
    missing = [
        m
        for m in datasources.unmatched(api, intent.alert_rules)
        if not (planned and _selects_planned(intent.alert_rules, m, planned))
    ]
    if missing:
        refusal = datasources.refusal(missing, datasources.existing(api))
        if not allow_missing_datasource:
            raise refusal
        result.warnings.append(str(refusal).split(". Add or rename")[0])
    ctx = _Run(api, intent, result, dry_run)
    team = ctx.team()
    group = ctx.busi_group(team)
    channels = ctx.named(
        "channel",
        "/notify-channel-configs",
        "/notify-channel-config",
        intent.channels,
        lambda obj: obj,
    )
    templates = ctx.named(
        "template",
        "/message-templates",
        "/message-template",
        intent.templates,
        lambda obj: _template(obj, team),
    )
    notify = ctx.named(
        "notify-rule",
        "/notify-rules",
        "/notify-rule",
        intent.notify_rules,
        lambda obj: _notify_rule(obj, team, channels, templates),
    )
    ctx.alert_rules(group, sorted(notify.values()))
    ctx.prune_notify()
    return result


@dataclass
class _Run:
    api: Api
    intent: Intent
    result: Result
    dry_run: bool

    def _act(self, verb: str, kind: str, name: str, fields: Iterable[str] = ()) -> None:
        self.result.actions.append(Action(verb, kind, name, tuple(fields)))

    def team(self) -> int:
        """The id of the team (user group), created when missing."""
        name = self.intent.team
        found = _by_name(_as_list(self.api.get("/user-groups", {"limit": "5000", "query": name})))
        if name in found:
            return int(found[name]["id"])
        self._act("create", "team", name)
        if self.dry_run:
            return PENDING
        self.api.call(
            "POST", "/user-groups", {"name": name, "note": model.managed_note(self.intent.site)}
        )
        return _id_of(self.api.get("/user-groups", {"limit": "5000", "query": name}), name, "team")

    def busi_group(self, team: int) -> int:
        """The id of the business group, created (owned by the team) when missing."""
        name = self.intent.busi_group
        query = {"all": "true", "limit": "5000", "query": name}
        found = _by_name(_as_list(self.api.get("/busi-groups", query)))
        if name in found:
            return int(found[name]["id"])
        self._act("create", "busi-group", name)
        if self.dry_run:
            return PENDING
        self.api.call(
            "POST",
            "/busi-groups",
            {
                "name": name,
                "label_enable": 0,
                "label_value": "",
                "members": [{"user_group_id": team, "perm_flag": "rw"}],
            },
        )
        return _id_of(self.api.get("/busi-groups", query), name, "business group")

    def named(
        self,
        kind: str,
        collection: str,
        item: str,
        desired: list[dict[str, Any]],
        shape: Callable[[dict[str, Any]], dict[str, Any]],
    ) -> dict[str, int]:
        """Upsert objects matched by name; returns every desired name's id."""
        existing = _by_name(_as_list(self.api.get(collection)))
        ids: dict[str, int] = {}
        created = []
        for obj in desired:
            body = shape(obj)
            current = existing.get(obj["name"])
            if current is None:
                self._act("create", kind, obj["name"])
                created.append(body)
                ids[obj["name"]] = PENDING
                continue
            ids[obj["name"]] = int(current["id"])
            diff = differences(body, current)
            if diff:
                self._act("update", kind, obj["name"], diff)
                if not self.dry_run:
                    self.api.call("PUT", f"{item}/{current['id']}", _put_body(body, current))
        if created and not self.dry_run:
            self.api.call("POST", collection, created)
            after = _by_name(_as_list(self.api.get(collection)))
            ids.update(
                {b["name"]: _id_of([after.get(b["name"], {})], b["name"], kind) for b in created}
            )
        return ids

    def alert_rules(self, group: int, notify_ids: list[int]) -> None:
        """Upsert the site's alert rules in the business group; delete gen's undeclared ones."""
        existing = (
            [] if group == PENDING else _as_list(self.api.get(f"/busi-group/{group}/alert-rules"))
        )
        owned = [r for r in existing if _owned(r, self.intent.site)]
        foreign = {r.get("name") for r in existing if not _owned(r, self.intent.site)}
        matches = _match(self.intent.alert_rules, owned)
        desired = {
            rule["name"]: {**rule, "notify_rule_ids": notify_ids}
            for rule in self.intent.alert_rules
        }
        stale = [r for r in owned if int(r["id"]) not in {int(m["id"]) for m in matches.values()}]
        self._delete_rules(group, stale)
        creates = []
        for name, body in desired.items():
            current = matches.get(name)
            if current is None and name in foreign:
                self.result.rejections.append(
                    Rejection(
                        "alert-rule",
                        name,
                        "a rule of that name exists in the "
                        "business group and is not gen's; rename or remove it",
                    )
                )
            elif current is None:
                creates.append(body)
            else:
                self._update_rule(group, body, current)
        self._create_rules(group, creates)

    def _delete_rules(self, group: int, stale: list[dict[str, Any]]) -> None:
        for rule in stale:
            self._act("delete", "alert-rule", str(rule.get("name")))
        if stale and not self.dry_run:
            self.api.call(
                "DELETE", f"/busi-group/{group}/alert-rules", {"ids": [int(r["id"]) for r in stale]}
            )

    def _update_rule(self, group: int, body: dict[str, Any], current: dict[str, Any]) -> None:
        diff = differences(body, current)
        if not diff:
            return
        self._act("update", "alert-rule", body["name"], diff)
        if self.dry_run:
            return
        answer = self.api.call_raw(
            "PUT",
            f"/busi-group/{group}/alert-rule/{current['id']}",
            {**body, "id": current["id"], "group_id": group},
        )
        if answer.get("err"):
            self.result.rejections.append(Rejection("alert-rule", body["name"], str(answer["err"])))

    def _create_rules(self, group: int, creates: list[dict[str, Any]]) -> None:
        for body in creates:
            self._act("create", "alert-rule", body["name"])
        if not creates or self.dry_run:
            return
        answer = self.api.call_raw("POST", f"/busi-group/{group}/alert-rules", creates)
        if answer.get("err"):
            self.result.rejections += [
                Rejection("alert-rule", b["name"], str(answer["err"])) for b in creates
            ]
            return
        dat = answer.get("dat")
        per_rule: dict[str, Any] = dat if isinstance(dat, dict) else {}
        for body in creates:
            reason = per_rule.get(body["name"], "the server did not answer for this rule")
            if reason:
                self.result.rejections.append(Rejection("alert-rule", body["name"], str(reason)))

    def prune_notify(self) -> None:
        """Delete the site's notify rules, then templates,
        then channels that are no longer declared."""
        note = model.managed_note(self.intent.site)
        # Read before deleting anything: a template is the site's through its channel.
        channels = [
            c
            for c in _as_list(self.api.get("/notify-channel-configs"))
            if c.get("description") == note
        ]
        idents = {c.get("ident") for c in channels}
        for kind, collection, desired, ours in (
            (
                "notify-rule",
                "/notify-rules",
                self.intent.notify_rules,
                lambda obj: obj.get("description") == note,
            ),
            (
                "template",
                "/message-templates",
                self.intent.templates,
                lambda obj: obj.get("notify_channel_ident") in idents,
            ),
            (
                "channel",
                "/notify-channel-configs",
                self.intent.channels,
                lambda obj: obj.get("description") == note,
            ),
        ):
            wanted = {obj["name"] for obj in desired}
            stale = [
                obj
                for obj in _as_list(self.api.get(collection))
                if ours(obj) and obj["name"] not in wanted
            ]
            for obj in stale:
                self._act("delete", kind, obj["name"])
            if stale and not self.dry_run:
                self.api.call("DELETE", collection, {"ids": [int(obj["id"]) for obj in stale]})


# -- pure helpers ----------------------------------------------------------------------------------


def differences(desired: dict[str, Any], actual: dict[str, Any]) -> list[str]:
    """Top-level keys of ``desired`` whose value ``actual`` does not hold
    (server-set keys ignored)."""
    return sorted(
        k for k in desired if k not in IGNORED and not _covers(k, desired[k], actual.get(k))
    )


def _covers(key: str, want: Any, have: Any) -> bool:
    if key in EXACT:
        return bool(want == (have if have is not None else type(want)()))
    if key in UNORDERED and isinstance(want, list) and isinstance(have, list):
        return sorted(map(json.dumps, want)) == sorted(map(json.dumps, have))
    if isinstance(want, dict):
        return isinstance(have, dict) and all(_covers(k, v, have.get(k)) for k, v in want.items())
    if isinstance(want, list):
        return (
            isinstance(have, list)
            and len(want) == len(have)
            and all(_covers(key, w, h) for w, h in zip(want, have, strict=True))
        )
    if isinstance(want, bool) or isinstance(have, bool):
        return want is have or (want == have and type(want) is type(have))
    return bool(want == have or (want in ("", 0, False) and have is None))


def _owned(rule: dict[str, Any], site: str) -> bool:
    tags = set(rule.get("append_tags") or [])
    return all(tag in tags for tag in model.owned_tags(site))


def _match(desired: list[dict[str, Any]], owned: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Desired rule name -> the owned rule it updates: same identity annotation first,
    then same name."""
    by_identity = {(r.get("annotations") or {}).get(model.IDENTITY_ANNOTATION): r for r in owned}
    by_name = {r.get("name"): r for r in owned}
    used: set[int] = set()
    out: dict[str, dict[str, Any]] = {}
    for rule in desired:
        for candidate in (
            by_identity.get(rule["annotations"][model.IDENTITY_ANNOTATION]),
            by_name.get(rule["name"]),
        ):
            if candidate is not None and int(candidate["id"]) not in used:
                out[rule["name"]] = candidate
                used.add(int(candidate["id"]))
                break
    return out


def _notify_rule(
    obj: dict[str, Any], team: int, channels: dict[str, int], templates: dict[str, int]
) -> dict[str, Any]:
    configs = []
    for config in obj["notify_configs"]:
        resolved = {k: v for k, v in config.items() if k not in ("channel", "template")}
        resolved["channel_id"] = channels.get(config["channel"], PENDING)
        resolved["template_id"] = templates.get(config["template"], PENDING)
        configs.append(resolved)
    return {**obj, "user_group_ids": [team], "notify_configs": configs}


def _template(obj: dict[str, Any], team: int) -> dict[str, Any]:
    """A compiled template as compared and sent: without ident, which the server makes (a UUID)."""
    return {**{k: v for k, v in obj.items() if k != "ident"}, "user_group_ids": [team]}


def _put_body(body: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    """An update of ``current``: its id, and its ident when the server set one (never changed)."""
    kept = {"ident": current["ident"]} if current.get("ident") and "ident" not in body else {}
    return {**body, **kept, "id": current["id"]}


def _selects_planned(
    rules: list[dict[str, Any]], missing: datasources.Unmatched, planned: list[str]
) -> bool:
    """In a dry run: whether the rules of an unmatched selection would select a datasource the run
    would create."""
    chosen = [r for r in rules if str(r.get("name")) in missing.rules]
    return bool(chosen) and all(
        datasources.would_match(r.get("datasource_queries") or [], planned) for r in chosen
    )


def _as_list(dat: Any) -> list[dict[str, Any]]:
    """The items of a list answer (some n9e lists come as ``{"list": [...]}``)."""
    if isinstance(dat, dict):
        dat = dat.get("list")
    return [item for item in dat or [] if isinstance(item, dict)]


def _by_name(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {str(item["name"]): item for item in items if "name" in item and "id" in item}


def _id_of(items: Any, name: str, kind: str) -> int:
    found = _by_name(_as_list(items))
    if name not in found:
        raise errors.GenError(f"n9e did not list the {kind} {name!r} after creating it")
    return int(found[name]["id"])
