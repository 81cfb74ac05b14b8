"""``gen n9e apply``: reconcile a site's n9e with compiled/<site>/n9e/.

The behaviour tests run twice: against a real Nightingale v9.1.1 (``real_n9e`` in
tests/support/n9e.py: built once from the vendored source by tools/build-n9e.sh, started once per
module on 127.0.0.1 with SQLite and miniredis) and against ``ApiDouble``, an in-memory stand-in of
the same API that behaves like the server where the reconciler depends on it. Without a binary, or
outside tools/offline's network namespace, the real-server cases are skipped with the reason;
``GEN_REQUIRE_N9E=1`` turns that into a failure (CI).
"""

from __future__ import annotations

import copy
import itertools
import json
import os
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, cast

import pytest

from generator.core import layout
from generator.run.n9e import client, datasources, reconcile
from tests.support.n9e import ROOT_PASSWORD, ROOT_USER, ApiDouble, add_site_datasource, root_client
from tests.support.project import REPO

_names = itertools.count(1)


# -- servers ---------------------------------------------------------------------------------------


@pytest.fixture(params=["double", pytest.param("real", marks=pytest.mark.n9e)])
def api(request: pytest.FixtureRequest) -> reconcile.Api:
    """The double (asked in the client's language) or the real server, with the site datasource."""
    if request.param == "double":
        double = ApiDouble(client.LANGUAGE)
        add_site_datasource(double)
        return double
    return root_client(request.getfixturevalue("real_n9e").url)


# -- helpers ---------------------------------------------------------------------------------------


def intent_as(tmp_path: Path, source: str = "cn-east-1", site: str = "") -> reconcile.Intent:
    """The compiled intent of ``source`` renamed to a fresh site
    (one real server serves every test)."""
    site = site or f"t{next(_names)}-{os.getpid() % 1000}"
    directory = tmp_path / site / "n9e"
    directory.mkdir(parents=True)
    for path in (REPO / "compiled" / source / "n9e").glob("*.json"):
        (directory / path.name).write_text(path.read_text().replace(source, site))
    return reconcile.load(tmp_path / site)


def with_rules(intent: reconcile.Intent, rules: list[dict[str, Any]]) -> reconcile.Intent:
    return reconcile.Intent(**{**intent.__dict__, "alert_rules": rules})


def group_id(api: reconcile.Api, intent: reconcile.Intent) -> int:
    groups = _list(
        api.get("/busi-groups", {"all": "true", "limit": "5000", "query": intent.busi_group})
    )
    return next(int(g["id"]) for g in groups if g["name"] == intent.busi_group)


def server_rules(api: reconcile.Api, intent: reconcile.Intent) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in api.get(f"/busi-group/{group_id(api, intent)}/alert-rules")}


def notify_rule_id(api: reconcile.Api, intent: reconcile.Intent) -> int:
    (rule,) = [r for r in api.get("/notify-rules") if r["name"] == f"gen-{intent.site}"]
    return int(rule["id"])


# -- behaviour -------------------------------------------------------------------------------------


def test_first_apply_creates_everything_and_reads_back_as_compiled(
    api: reconcile.Api, tmp_path: Path
) -> None:
    intent = intent_as(tmp_path)
    result = reconcile.run(api, intent)
    assert result.rejections == []
    created = {(a.kind, a.name) for a in result.actions if a.verb == "create"}
    assert {("busi-group", intent.busi_group), ("notify-rule", f"gen-{intent.site}")} <= created
    assert {("alert-rule", r["name"]) for r in intent.alert_rules} <= created
    on_server = server_rules(api, intent)
    assert on_server.keys() == {r["name"] for r in intent.alert_rules}
    notify = notify_rule_id(api, intent)
    for rule in intent.alert_rules:
        assert (
            reconcile.differences({**rule, "notify_rule_ids": [notify]}, on_server[rule["name"]])
            == []
        )
    channels = {c["name"]: c for c in api.get("/notify-channel-configs")}
    for channel in intent.channels:
        assert reconcile.differences(channel, channels[channel["name"]]) == []


def test_second_apply_is_a_no_op(api: reconcile.Api, tmp_path: Path) -> None:
    intent = intent_as(tmp_path, "cn-north-2")
    reconcile.run(api, intent)
    again = reconcile.run(api, intent)
    assert again.actions == [] and again.rejections == [] and not again.changed


def test_renamed_changed_and_removed_rules_converge_in_one_run(
    api: reconcile.Api, tmp_path: Path
) -> None:
    intent = intent_as(tmp_path)
    reconcile.run(api, intent)
    ids_before = {r["annotations"]["gen_rule"]: r["id"] for r in server_rules(api, intent).values()}
    rules = {r["annotations"]["gen_rule"]: copy.deepcopy(r) for r in intent.alert_rules}
    rules["business/gatekeeper/transfer-backlog"]["name"] = "gatekeeper: queue too long"
    rules["system/site/node-cpu-high"]["rule_config"]["queries"][0]["prom_ql"] = "cpu_busy > 95"
    del rules["business/abc-service/latency-high"]
    changed = with_rules(intent, list(rules.values()))
    result = reconcile.run(api, changed)
    assert result.rejections == []
    assert sorted(map(str, result.actions)) == sorted(
        [
            "delete alert-rule 'abc-service: p99 latency above 1s'",
            "update alert-rule 'Node CPU high' (rule_config)",
            "update alert-rule 'gatekeeper: queue too long' (name)",
        ]
    )
    after = server_rules(api, changed)
    assert "abc-service: p99 latency above 1s" not in after
    assert (
        after["gatekeeper: queue too long"]["id"]
        == ids_before["business/gatekeeper/transfer-backlog"]
    )
    assert after["Node CPU high"]["rule_config"]["queries"][0]["prom_ql"] == "cpu_busy > 95"
    assert reconcile.run(api, changed).actions == []


def test_rule_gen_does_not_own_is_never_touched(api: reconcile.Api, tmp_path: Path) -> None:
    intent = intent_as(tmp_path)
    reconcile.run(api, intent)
    group = group_id(api, intent)
    foreign = {
        **copy.deepcopy(intent.alert_rules[0]),
        "name": "hand-made rule",
        "append_tags": ["team=ops"],
        "annotations": {"summary": "typed into the UI"},
    }
    assert api.call_raw("POST", f"/busi-group/{group}/alert-rules", [foreign])["dat"] == {
        "hand-made rule": ""
    }
    reconcile.run(api, with_rules(intent, intent.alert_rules[1:]))
    after = server_rules(api, intent)
    assert "hand-made rule" in after and after["hand-made rule"]["append_tags"] == ["team=ops"]
    assert intent.alert_rules[0]["name"] not in after


def test_rule_the_server_rejects_is_reported_by_name_with_its_reason(
    api: reconcile.Api, tmp_path: Path
) -> None:
    intent = intent_as(tmp_path)
    bad = {
        **copy.deepcopy(intent.alert_rules[0]),
        "name": "bad <rule>",
        "annotations": {"summary": "x", "gen_rule": "business/x/bad"},
    }
    result = reconcile.run(api, with_rules(intent, [*intent.alert_rules, bad]))
    assert [(r.kind, r.name) for r in result.rejections] == [("alert-rule", "bad <rule>")]
    assert "invalid characters" in result.rejections[0].reason
    assert len(server_rules(api, intent)) == len(intent.alert_rules)


def test_declared_rule_whose_name_a_foreign_rule_holds_is_reported_not_forced(
    api: reconcile.Api, tmp_path: Path
) -> None:
    intent = intent_as(tmp_path)
    reconcile.run(api, with_rules(intent, intent.alert_rules[1:]))
    group = group_id(api, intent)
    squatter = {
        **copy.deepcopy(intent.alert_rules[0]),
        "append_tags": ["team=ops"],
        "annotations": {"summary": "x"},
    }
    api.call_raw("POST", f"/busi-group/{group}/alert-rules", [squatter])
    result = reconcile.run(api, intent)
    assert [r.name for r in result.rejections] == [intent.alert_rules[0]["name"]]
    assert "not gen's" in result.rejections[0].reason
    assert server_rules(api, intent)[intent.alert_rules[0]["name"]]["append_tags"] == ["team=ops"]


def test_dry_run_reports_the_plan_and_changes_nothing(api: reconcile.Api, tmp_path: Path) -> None:
    intent = intent_as(tmp_path)
    plan = reconcile.run(api, intent, dry_run=True)
    assert plan.dry_run and plan.changed
    assert ("create", "busi-group", intent.busi_group) in {
        (a.verb, a.kind, a.name) for a in plan.actions
    }
    assert intent.busi_group not in {
        g["name"] for g in _list(api.get("/busi-groups", {"all": "true"}))
    }
    applied = reconcile.run(api, intent)
    assert [str(a) for a in applied.actions] == [str(a) for a in plan.actions]


def test_channels_templates_and_notify_rule_no_longer_declared_are_removed(
    api: reconcile.Api, tmp_path: Path
) -> None:
    intent = intent_as(tmp_path)
    reconcile.run(api, intent)
    webhook_only = reconcile.Intent(
        **{
            **intent.__dict__,
            "channels": [c for c in intent.channels if c["name"].endswith("ops-webhook")],
            "templates": [t for t in intent.templates if t["name"].endswith("ops-webhook")],
            "notify_rules": [
                {
                    **intent.notify_rules[0],
                    "notify_configs": [
                        c
                        for c in intent.notify_rules[0]["notify_configs"]
                        if c["channel"].endswith("ops-webhook")
                    ],
                }
            ],
        }
    )
    result = reconcile.run(api, webhook_only)
    sms = f"gen-{intent.site}-sms-gateway"
    assert {str(a) for a in result.actions} >= {
        f"delete channel '{sms}'",
        f"delete template '{sms}'",
    }
    assert sms not in {c["name"] for c in api.get("/notify-channel-configs")}
    assert reconcile.run(api, webhook_only).actions == []


def test_template_edited_on_the_server_is_corrected_keeping_the_servers_ident(
    api: reconcile.Api, tmp_path: Path
) -> None:
    intent = intent_as(tmp_path)
    reconcile.run(api, intent)
    name = intent.templates[0]["name"]
    (before,) = [t for t in api.get("/message-templates") if t["name"] == name]
    assert before["ident"] != intent.templates[0]["ident"]  # the server made it (a UUID)
    edited = {**before, "content": {"content": "edited"}}
    api.call("PUT", f"/message-template/{before['id']}", edited)
    result = reconcile.run(api, intent)
    assert [str(a) for a in result.actions] == [f"update template '{name}' (content)"]
    (after,) = [t for t in api.get("/message-templates") if t["name"] == name]
    assert after["ident"] == before["ident"] and after["content"] == intent.templates[0]["content"]
    assert reconcile.run(api, intent).actions == []


def test_sites_whose_names_share_a_prefix_never_prune_each_others_objects(
    api: reconcile.Api, tmp_path: Path
) -> None:
    short = intent_as(tmp_path / "a", site=f"p{next(_names)}-{os.getpid() % 1000}")
    longer = intent_as(tmp_path / "b", source="cn-north-2", site=f"{short.site}-1")
    reconcile.run(api, longer)
    reconcile.run(api, short)
    nothing = reconcile.Intent(
        **{**short.__dict__, "channels": [], "templates": [], "notify_rules": []}
    )
    pruned = reconcile.run(api, nothing)
    deleted = [a.name for a in pruned.actions if a.verb == "delete"]
    assert len(deleted) == 1 + len(short.templates) + len(short.channels)
    assert all(a.kind == "alert-rule" or short.site + "-1" not in a.name for a in pruned.actions), (
        deleted
    )
    assert reconcile.run(api, longer).actions == []
    names = {t["name"] for t in api.get("/message-templates")}
    names |= {c["name"] for c in api.get("/notify-rules")}
    assert {t["name"] for t in longer.templates} | {f"gen-{longer.site}"} <= names


def test_rules_whose_datasource_matches_nothing_are_refused_before_any_change(
    api: reconcile.Api, tmp_path: Path
) -> None:
    intent = intent_as(tmp_path)
    victoria = [{"match_type": 1, "op": "in", "values": ["victoria-*"]}]
    elsewhere = [{**r, "datasource_queries": victoria} for r in intent.alert_rules]
    with pytest.raises(datasources.NoDatasource) as info:
        reconcile.run(api, with_rules(intent, elsewhere))
    message = str(info.value)
    assert "prometheus datasource name in victoria-*" in message
    assert "--allow-missing-datasource" in message
    assert "embedded-tsdb (prometheus" in message and "prometheus-site (prometheus" in message
    groups = _list(api.get("/busi-groups", {"all": "true"}))
    assert intent.busi_group not in {g["name"] for g in groups}
    allowed = reconcile.run(api, with_rules(intent, elsewhere), allow_missing_datasource=True)
    assert allowed.rejections == [] and "victoria-*" in allowed.warnings[0]
    assert server_rules(api, intent).keys() == {r["name"] for r in intent.alert_rules}


def _list(dat: Any) -> list[dict[str, Any]]:
    # n9e answers some list endpoints with {"list": [...]}, others with the bare list.
    return cast("list[dict[str, Any]]", dat.get("list") if isinstance(dat, dict) else dat)


# -- errors at the edges ---------------------------------------------------------------------------


def datasource_on(api: reconcile.Api, name: str) -> dict[str, Any]:
    """The server's full record of datasource ``name``."""
    (brief,) = [d for d in api.get("/datasource/brief") if d["name"] == name]
    answer = api.call_raw("POST", "/datasource/desc", {"id": brief["id"]})
    return cast(dict[str, Any], answer.get("data") or answer.get("dat"))


def test_the_stacks_datasource_is_created_then_left_alone_then_corrected(
    api: reconcile.Api, tmp_path: Path
) -> None:
    intent = intent_as(tmp_path)
    [wanted] = intent.datasources
    assert wanted["name"] == f"prometheus-{intent.site}"
    first = reconcile.run(api, intent)
    assert reconcile.Action("create", "datasource", wanted["name"]) in first.actions
    on_server = datasource_on(api, wanted["name"])
    assert on_server["http"]["url"] == "http://prometheus.monitoring.svc:9090"
    assert (on_server["plugin_type"], on_server["category"]) == ("prometheus", "timeseries")
    assert on_server["description"] == wanted["description"]
    assert [a for a in reconcile.run(api, intent).actions if a.kind == "datasource"] == []
    moved = {**wanted, "http": {**wanted["http"], "url": "http://prometheus.obs.svc:9090"}}
    changed = reconcile.run(api, reconcile.Intent(**{**intent.__dict__, "datasources": [moved]}))
    assert [a for a in changed.actions if a.kind == "datasource"] == [
        reconcile.Action("update", "datasource", wanted["name"], ("http.url",))
    ]
    assert datasource_on(api, wanted["name"])["http"]["url"] == "http://prometheus.obs.svc:9090"


def test_a_server_without_the_stacks_datasource_gets_it_and_its_rules_are_not_refused(
    tmp_path: Path,
) -> None:
    double = ApiDouble(client.LANGUAGE)  # only embedded-tsdb: no rule's pattern selects it
    intent = intent_as(tmp_path)
    plan = reconcile.run(double, intent, dry_run=True)
    assert plan.actions[0] == reconcile.Action("create", "datasource", f"prometheus-{intent.site}")
    assert plan.warnings == [] and double.writes == 0
    without = reconcile.Intent(**{**intent.__dict__, "datasources": []})
    with pytest.raises(datasources.NoDatasource):
        reconcile.run(double, without, dry_run=True)
    applied = reconcile.run(double, intent)
    assert applied.rejections == [] and applied.warnings == []
    assert f"prometheus-{intent.site}" in {d["name"] for d in double.get("/datasource/brief")}


def test_unreachable_server_is_a_clear_error() -> None:
    api = client.Client(
        client.Settings("http://127.0.0.1:9", timeout=2), client.Credentials(token="t")
    )
    with pytest.raises(
        client.Unreachable, match=r"cannot reach n9e at http://127.0.0.1:9: .*check --url"
    ):
        api.get("/busi-groups")


def test_server_errors_come_in_english_and_keep_the_servers_text(real_n9e: Any) -> None:
    bad = [{"name": "bad <rule>"}]
    unasked = real_n9e.request("POST", "/api/n9e/busi-group/1/alert-rules", bad, check=False)
    assert unasked["dat"] == {"bad <rule>": "名称包含非法字符"}  # n9e's default language
    asked = root_client(real_n9e.url).call_raw("POST", "/busi-group/1/alert-rules", bad)
    assert asked["dat"] == {"bad <rule>": "Name has invalid characters"}


def test_the_double_like_the_server_answers_in_chinese_unless_asked_for_english() -> None:
    bad = [{"name": "bad <rule>"}]
    for double, said in (
        (ApiDouble(), "名称包含非法字符"),
        (ApiDouble(client.LANGUAGE), "Name has invalid characters"),
    ):
        answer = double.call_raw("POST", "/busi-group/1/alert-rules", bad)
        assert answer["dat"] == {"bad <rule>": said}


class _NotN9e(BaseHTTPRequestHandler):
    """A proxy's error pages: HTML with a status, never n9e's JSON."""

    def do_GET(self) -> None:  # the name http.server calls
        status = 502 if "gateway" in self.path else 200
        body = (
            b"<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad"
            b" Gateway</h1></center>\n<hr><center>nginx</center>\n"
            + b"<p>padding</p>" * 200
            + b"</body></html>"
        )
        self.send_response(status)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.mark.parametrize("where, status", [("/gateway", "HTTP 502"), ("/portal", "HTTP 200")])
def test_a_server_that_is_not_n9e_is_one_line_with_status_and_reason(
    where: str, status: str
) -> None:
    server = HTTPServer(("127.0.0.1", 0), _NotN9e)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}{where}"
        api = client.Client(client.Settings(url, timeout=5), client.Credentials(token="t"))
        with pytest.raises(client.ApiError) as info:
            api.get("/busi-groups")
    finally:
        server.shutdown()
        server.server_close()
    message = str(info.value)
    assert "\n" not in message and "<" not in message and len(message) < 250, message
    assert status in message and "502 Bad Gateway" in message


def test_missing_credentials_and_credentials_in_the_url_are_refused() -> None:
    with pytest.raises(client.N9eError, match="no n9e credentials"):
        client.Credentials()
    with pytest.raises(client.N9eError, match="URL holds credentials") as info:
        client.Client(
            client.Settings("http://root:s3cret@127.0.0.1:9"), client.Credentials(token="t")
        )
    assert "s3cret" not in str(info.value)


def test_wrong_password_is_a_clear_error_that_never_shows_the_password(real_n9e: Any) -> None:
    api = client.Client(
        client.Settings(real_n9e.url), client.Credentials("root", "not-the-password")
    )
    with pytest.raises(client.LoginFailed, match="refused the login of user 'root'") as info:
        api.login()
    assert "not-the-password" not in str(info.value)


def test_bad_token_is_a_clear_error(real_n9e: Any) -> None:
    api = client.Client(client.Settings(real_n9e.url), client.Credentials(token="forged"))
    with pytest.raises(client.LoginFailed, match="check the user, password or token"):
        api.get("/busi-groups")


def test_cli_applies_a_site_then_finds_nothing_to_do(real_n9e: Any, tmp_path: Path) -> None:
    root = tmp_path / "project"
    shutil.copytree(REPO / "compiled" / "cn-north-2", root / "compiled" / "cn-north-2")
    env = {**os.environ, "GEN_N9E_USER": ROOT_USER, "GEN_N9E_PASSWORD": ROOT_PASSWORD}
    command = [
        sys.executable,
        "-m",
        "generator",
        "n9e",
        "apply",
        "-t",
        "cn-north-2",
        "--url",
        real_n9e.url,
        "--root",
        str(root),
    ]
    first = subprocess.run(command, capture_output=True, text=True, env=env)
    assert first.returncode == 0, first.stderr
    assert (
        "create alert-rule 'Node down'" in first.stdout
        and ROOT_PASSWORD not in first.stdout + first.stderr
    )
    second = subprocess.run([*command, "--output", "json"], capture_output=True, text=True, env=env)
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout) == {
        "site": "cn-north-2",
        "dry_run": False,
        "changed": False,
        "actions": [],
        "rejected": [],
    }


def test_cli_refuses_rules_without_a_datasource_unless_allowed(
    real_n9e: Any, tmp_path: Path
) -> None:
    site = f"d{next(_names)}-{os.getpid() % 1000}"
    directory = tmp_path / "compiled" / site / "n9e"
    directory.mkdir(parents=True)
    for path in (REPO / "compiled" / "cn-north-2" / "n9e").glob("*.json"):
        text = path.read_text().replace("cn-north-2", site).replace("prometheus-*", "victoria-*")
        (directory / path.name).write_text(text)
    env = {**os.environ, "GEN_N9E_USER": ROOT_USER, "GEN_N9E_PASSWORD": ROOT_PASSWORD}
    command = [
        sys.executable,
        "-m",
        "generator",
        "n9e",
        "apply",
        "-t",
        site,
        "--url",
        real_n9e.url,
        "--root",
        str(tmp_path),
    ]
    refused = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    assert refused.returncode == 1 and refused.stdout == ""
    assert "no datasource matches prometheus datasource name in victoria-*" in refused.stderr
    assert "embedded-tsdb (prometheus, id 1)" in refused.stderr
    allowed = subprocess.run(
        [*command, "--allow-missing-datasource"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert allowed.returncode == 0, allowed.stderr
    assert allowed.stderr.startswith("warning: compiled alert rules would never evaluate")


def test_cli_reports_a_missing_compiled_site(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "generator",
            "n9e",
            "apply",
            "-t",
            "cn-east-1",
            "--url",
            "http://127.0.0.1:9",
            "--token",
            "t",
            "--root",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1
    assert "n9e/site.json: missing; run `gen compile`" in done.stderr


# -- the pure parts --------------------------------------------------------------------------------


def test_differences_ignore_server_fields_but_see_removed_annotations() -> None:
    desired = {
        "name": "r",
        "uuid": 7,
        "annotations": {"summary": "s"},
        "append_tags": ["b=1", "a=2"],
        "rule_config": {"queries": [{"prom_ql": "up == 0", "severity": 1}]},
    }
    actual = {
        "name": "r",
        "uuid": 0,
        "id": 3,
        "annotations": {"summary": "s"},
        "append_tags": ["a=2", "b=1"],
        "rule_config": {"queries": [{"prom_ql": "up == 0", "severity": 1, "unit": ""}]},
        "severities": [1],
    }
    assert reconcile.differences(desired, actual) == []
    assert reconcile.differences(
        desired, {**actual, "annotations": {"summary": "s", "old": "x"}}
    ) == ["annotations"]
    assert reconcile.differences({**desired, "disabled": 0}, {**actual, "disabled": 1}) == [
        "disabled"
    ]


def test_intent_loads_the_compiled_files_of_a_site() -> None:
    intent = reconcile.load(REPO / "compiled" / "cn-east-1")
    assert (intent.site, intent.busi_group, intent.team) == (
        "cn-east-1",
        "paas-cn-east-1",
        "paas-ops",
    )
    assert len(intent.alert_rules) == len(
        json.loads((REPO / "compiled/cn-east-1" / layout.N9E_ALERT_RULES).read_text())
    )
