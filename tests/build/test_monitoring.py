"""Monitoring as code, compile side: inventory -> n9e alert rules, channels, notify rules,
Prometheus rules."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from generator.build import pipeline
from generator.build import schemas as validate
from generator.build.monitoring import builtin, files
from generator.core import errors, layout
from generator.formats import n9e as model
from tests.support.project import REPO

SITES = ("cn-east-1", "cn-north-2")


def compiled(site: str, name: str, root: Path = REPO) -> Any:
    path = root / "compiled" / site / "n9e" / name
    return (
        yaml.safe_load(path.read_text()) if name.endswith(".yaml") else json.loads(path.read_text())
    )


def by_identity(alert_rules: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["annotations"][model.IDENTITY_ANNOTATION]: r for r in alert_rules}


def site_files(project: Path, site: str, change: Any = None) -> dict[str, bytes]:
    """Compile one site's n9e files in memory,
    after ``change(params)`` edits its defaulted parameters."""
    ctx = pipeline.Context.create(project)
    target = ctx.inv.target(site)
    params = validate.with_defaults(ctx.schemas, target.parameters)
    if change:
        change(params)
    return files.for_site(site, params, ctx.renderer.site(site, params), target.location)


def rules_of(out: dict[str, bytes]) -> dict[str, dict[str, Any]]:
    return by_identity(json.loads(out[layout.N9E_ALERT_RULES]))


def compile_problems(project: Path) -> str:
    with pytest.raises(errors.ProblemReport) as info:
        pipeline.run(pipeline.Options(project, use_cache=False))
    return str(info.value)


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


@pytest.mark.parametrize("site", SITES)
def test_reference_sites_compile_rules_that_meet_n9e_rule_contract(site: str) -> None:
    alert_rules = compiled(site, "alert-rules.json")
    assert files.verify(alert_rules) == []
    assert len({r["name"] for r in alert_rules}) == len(alert_rules)
    assert len({r["uuid"] for r in alert_rules}) == len(alert_rules)
    for rule in alert_rules:
        tags = dict(t.split("=", 1) for t in rule["append_tags"])
        assert tags["site"] == site and tags["managed-by"] == "gen"
        assert tags["level"] in model.LEVELS
        assert rule["prom_ql"] == "" and rule["notify_version"] == 1
        assert rule["datasource_queries"] == [
            {"match_type": 1, "op": "in", "values": ["prometheus-*"]}
        ]
        assert rule["enable_stimes"] == ["00:00"] and rule["enable_etimes"] == ["23:59"]


def test_site_is_monitored_at_system_service_external_and_business_level() -> None:
    ids = set(by_identity(compiled("cn-east-1", "alert-rules.json")))
    assert {f"system/site/{b.id}" for b in builtin.SYSTEM} <= ids
    for service in ("gatekeeper", "abc-service"):
        assert {
            f"service/{service}/{rule}"
            for rule in (
                "replicas-unavailable",
                "pods-not-ready",
                "restart-loop",
                "cpu-near-limit",
                "memory-near-limit",
            )
        } <= ids
    assert "service/gatekeeper/volume-filling" in ids
    assert "service/abc-service/volume-filling" not in ids  # no persistent volume, no rule
    assert "external/redis-cluster/target-down" in ids
    assert {
        "business/gatekeeper/transfer-backlog",
        "business/gatekeeper/transfer-errors",
        "business/abc-service/error-rate-high",
        "business/abc-service/latency-high",
    } <= ids


def test_service_rules_select_the_workloads_pods_and_claims() -> None:
    rule = by_identity(compiled("cn-east-1", "alert-rules.json"))
    volume = rule["service/gatekeeper/volume-filling"]["rule_config"]["queries"][0]["prom_ql"]
    assert (
        'persistentvolumeclaim=~"vol-data-gatekeeper-[0-9]+"' in volume
        and 'namespace="project"' in volume
    )
    ready = rule["service/abc-service/replicas-unavailable"]["rule_config"]["queries"][0]
    assert 'statefulset="abc-service"' in ready["prom_ql"] and ready["severity"] == 1
    down = rule["external/redis-cluster/target-down"]["rule_config"]["queries"][0]["prom_ql"]
    assert 'instance=~"10\\\\.86\\\\.67\\\\.11:6379"' in down


def test_site_threshold_overrides_the_default_and_service_setting_wins_for_its_rules() -> None:
    east, north = (by_identity(compiled(s, "alert-rules.json")) for s in SITES)
    disk = "system/site/node-disk-space-low"
    assert east[disk]["rule_config"]["queries"][0]["prom_ql"].endswith("> 85")
    assert north[disk]["rule_config"]["queries"][0]["prom_ql"].endswith("> 80")
    assert north["system/site/node-load-high"]["prom_for_duration"] == 1800
    assert east["service/gatekeeper/restart-loop"]["rule_config"]["queries"][0]["prom_ql"].endswith(
        "> 5"
    )
    assert east["service/abc-service/restart-loop"]["rule_config"]["queries"][0][
        "prom_ql"
    ].endswith("> 3")


def test_builtin_rule_can_be_switched_off_per_service_and_retuned_per_site(project: Path) -> None:
    def change(params: dict[str, Any]) -> None:
        params["services"]["abc-service"]["monitoring"]["builtin"] = {
            "cpu-near-limit": {"enabled": False}
        }
        params["site"]["monitoring"]["builtin"] = {
            "cpu-near-limit": {"threshold": 75.5, "severity": "critical", "for": "1h"}
        }

    out = rules_of(site_files(project, "cn-east-1", change))
    assert "service/abc-service/cpu-near-limit" not in out
    gatekeeper = out["service/gatekeeper/cpu-near-limit"]
    assert gatekeeper["rule_config"]["queries"][0] == {
        "prom_ql": gatekeeper["rule_config"]["queries"][0]["prom_ql"],
        "severity": 1,
    }
    assert gatekeeper["rule_config"]["queries"][0]["prom_ql"].endswith("> 75.5")
    assert gatekeeper["prom_for_duration"] == 3600


def test_renaming_a_rule_keeps_its_identity_and_uuid(project: Path) -> None:
    before = rules_of(site_files(project, "cn-east-1"))

    def rename(params: dict[str, Any]) -> None:
        params["services"]["gatekeeper"]["monitoring"]["rules"]["transfer-backlog"]["name"] = (
            "gatekeeper: queue long"
        )

    after = rules_of(site_files(project, "cn-east-1", rename))
    key = "business/gatekeeper/transfer-backlog"
    assert after[key]["name"] == "gatekeeper: queue long" != before[key]["name"]
    assert after[key]["uuid"] == before[key]["uuid"] == model.stable_uuid("cn-east-1", key)


def test_uuid_differs_per_site_and_fits_javascript_numbers() -> None:
    east, north = (by_identity(compiled(s, "alert-rules.json")) for s in SITES)
    assert east["system/site/node-down"]["uuid"] != north["system/site/node-down"]["uuid"]
    assert all(0 < r["uuid"] < 2**53 for r in east.values())


def test_business_rule_carries_summary_runbook_tags_and_severity() -> None:
    rule = by_identity(compiled("cn-east-1", "alert-rules.json"))[
        "business/abc-service/error-rate-high"
    ]
    assert rule["name"] == "abc-service: 5xx above 5%"
    assert (
        rule["annotations"]["runbook_url"]
        == rule["runbook_url"]
        == "https://wiki.example.com/runbooks/abc-service/errors"
    )
    assert rule["annotations"]["summary"] == rule["note"]
    assert {"service=abc-service", "level=business", "team=abc", "platform=paas"} <= set(
        rule["append_tags"]
    )
    assert rule["prom_for_duration"] == 300 and rule["rule_config"]["queries"][0]["severity"] == 1
    assert rule["time_zone"] == "Asia/Shanghai" and rule["prom_eval_interval"] == 30


def test_receivers_route_severities_to_channels_and_sms_gets_phone_numbers() -> None:
    (notify_rule,) = compiled("cn-east-1", "notify-rules.json")
    configs = {c["channel"]: c for c in notify_rule["notify_configs"]}
    assert configs["gen-cn-east-1-sms-gateway"]["severities"] == [1]
    assert configs["gen-cn-east-1-sms-gateway"]["params"] == {"phones": "13800000001,13800000002"}
    assert configs["gen-cn-east-1-ops-webhook"]["severities"] == [1, 2, 3]
    channels = {c["name"]: c for c in compiled("cn-east-1", "notify-channels.json")}
    sms = channels["gen-cn-east-1-sms-gateway"]
    assert (
        sms["request_config"]["http_request_config"]["url"] == "http://10.86.3.20:9090/api/sms/send"
    )
    assert "$params.phones" in sms["request_config"]["http_request_config"]["request"]["body"]
    templates = {t["name"]: t for t in compiled("cn-east-1", "message-templates.json")}
    assert templates["gen-cn-east-1-sms-gateway"]["notify_channel_ident"] == sms["ident"]


def test_prometheus_rule_file_holds_the_same_rules() -> None:
    alert_rules = by_identity(compiled("cn-north-2", "alert-rules.json"))
    groups = compiled("cn-north-2", "prometheus-rules.yaml")["groups"]
    assert [g["name"] for g in groups] == [f"cn-north-2-{level}" for level in model.LEVELS]
    prom = {r["annotations"]["gen_rule"]: r for g in groups for r in g["rules"]}
    assert prom.keys() == alert_rules.keys()
    for identity, rule in prom.items():
        n9e = alert_rules[identity]
        assert rule["alert"] == n9e["name"]
        assert rule["expr"] == n9e["rule_config"]["queries"][0]["prom_ql"]
        assert model.parse_duration(rule["for"], "for") == n9e["prom_for_duration"]
        assert {1: "critical", 2: "warning", 3: "info"}[
            n9e["rule_config"]["queries"][0]["severity"]
        ] == rule["labels"]["severity"]


def test_site_without_monitoring_compiles_no_n9e_files(project: Path) -> None:
    out = site_files(project, "cn-east-1", lambda p: p["site"].pop("monitoring"))
    assert out == {}
    out = site_files(project, "cn-east-1", lambda p: p["site"]["monitoring"].update(enabled=False))
    assert out == {}


def test_receiver_naming_an_unknown_channel_is_a_located_problem(project: Path) -> None:
    edit(
        project / "inventory/classes/common.yml", "warning: [ops-webhook]", "warning: [ops-webhok]"
    )
    message = compile_problems(project)
    assert "inventory/classes/common.yml:38:19  $.site.monitoring.receivers.warning[0]" in message
    assert "$.site.monitoring.receivers.warning[0]  channel 'ops-webhok' is not declared" in message


def test_tag_that_gen_sets_itself_is_a_located_problem(project: Path) -> None:
    edit(
        project / "inventory/classes/services/abc-service.yml",
        "              team: abc\n          latency",
        "              site: elsewhere\n          latency",
    )
    message = compile_problems(project)
    assert (
        "$.services.abc-service.monitoring.rules.error-rate-high.tags.site  "
        "tag 'site' is set by gen" in message
    )
    assert "inventory/classes/services/abc-service.yml:" in message


def test_schema_rejects_a_name_n9e_would_refuse_and_an_unknown_builtin(project: Path) -> None:
    edit(
        project / "inventory/classes/services/gatekeeper.yml",
        'name: "gatekeeper: transfer backlog"',
        "name: 'gatekeeper <backlog>'",
    )
    edit(
        project / "inventory/classes/services/gatekeeper.yml",
        "restart-loop: {threshold: 5}",
        "restart-loops: {threshold: 5}",
    )
    message = compile_problems(project)
    assert (
        "$.services.gatekeeper.monitoring.rules.transfer-backlog.name  "
        "'gatekeeper <backlog>' does not match" in message
    )
    assert "$.services.gatekeeper.monitoring.builtin" in message and "restart-loops" in message


def test_system_rule_set_on_a_service_is_a_located_problem(project: Path) -> None:
    edit(
        project / "inventory/classes/services/gatekeeper.yml",
        "restart-loop: {threshold: 5}",
        "node-down: {enabled: false}",
    )
    message = compile_problems(project)
    assert (
        "$.services.gatekeeper.monitoring.builtin.node-down  'node-down' is a system rule"
        in message
    )


def test_two_rules_with_one_name_are_a_located_problem(project: Path) -> None:
    edit(
        project / "inventory/classes/services/gatekeeper.yml",
        'name: "gatekeeper: transfer backlog"',
        'name: "gatekeeper: restart loop"',
    )
    message = compile_problems(project)
    assert "two rules are named 'gatekeeper: restart loop'" in message


def test_contract_catches_what_n9e_verify_rejects() -> None:
    rule = dict(compiled("cn-east-1", "alert-rules.json")[0])
    bad = {
        **rule,
        "name": "a </script>",
        "append_tags": [*rule["append_tags"], "site=other"],
        "enable_etimes": ["23:59", "24:61"],
    }
    problems = files.verify([bad])
    assert any("a </script>" in p and "does not match" in p for p in problems)
    assert any("duplicate key 'site'" in p for p in problems)
    assert any("differ in length" in p for p in problems)
    assert any("'24:61' does not match" in p for p in problems)


def test_durations_parse_and_format_both_ways() -> None:
    texts = ("30s", "5m", "1h30m", "0s", "2h")
    assert [model.parse_duration(t, "for") for t in texts] == [30, 300, 5400, 0, 7200]
    assert [model.format_duration(s) for s in (30, 300, 5400, 0)] == ["30s", "5m", "1h30m", "0s"]
    bare = "^site.monitoring.eval_interval: '0' is not a duration: a unit"
    with pytest.raises(errors.GenError, match=bare):
        model.parse_duration("0", "site.monitoring.eval_interval")
