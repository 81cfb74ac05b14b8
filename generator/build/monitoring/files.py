"""A site's rules and channels -> the files of ``compiled/<site>/n9e/`` (pure, deterministic).

``for_site`` is the one call the compiler makes. It returns nothing for a site without
``site.monitoring`` (or with ``enabled: false``), and raises a located ``ProblemReport`` for
settings the schema cannot check. Files:

- ``alert-rules.json``: the rules as n9e v8/v9's import API and web UI take them
  (``notify_rule_ids`` empty: ``gen n9e apply`` fills in the site's ids);
- ``notify-channels.json``, ``message-templates.json``, ``notify-rules.json``: n9e objects, the
  notify rules naming their channel and template (``channel``/``template``) instead of site ids;
- ``prometheus-rules.yaml``: the same rules as a Prometheus rule file;
- ``site.json``: the site's business group, team and datasource pattern, for ``gen n9e apply``,
  and the datasource its monitoring stack provides (``datasources``), which apply provisions.

JSON is canonical (sorted keys, two-space indent, trailing newline); every alert rule is checked
against ``alert-rule.schema.json`` plus the cross-field checks of n9e's ``AlertRule.Verify()``.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterable, Iterator
from importlib import resources
from typing import TYPE_CHECKING, Any

from generator.build.monitoring import rules
from generator.core import errors, layout, yamlio
from generator.core.errors import Problem
from generator.core.jsonpath import format_path
from generator.core.location import Location
from generator.formats import n9e as model
from generator.formats.n9e import SEVERITIES, Channel, Rule

if TYPE_CHECKING:  # imported by the first site with monitoring: others never need it
    import jsonschema

Locate = Callable[[tuple[str | int, ...]], Location | None]

PROMETHEUS_SEVERITY = {"critical": "critical", "warning": "warning", "info": "info"}


def for_site(
    site_name: str, params: dict[str, Any], rendered: Iterable[rules.RenderedLike], locate: Locate
) -> dict[str, bytes]:
    """The n9e files of one site (empty without monitoring); settings problems raise a located
    report."""
    monitoring = params["site"].get("monitoring")
    if not monitoring or not monitoring.get("enabled", True):
        return {}
    loads = rules.workloads(rendered, params["site"]["namespace"])
    site_rules = rules.site_rules(site_name, params, loads)
    findings = rules.check(params, site_rules)
    if findings:
        raise errors.ProblemReport(
            [Problem(locate(path), format_path(path), message) for path, message in findings]
        )
    provided = stack_datasources(site_name, params["site"])
    for datasource in provided:
        if not _glob(monitoring["datasource"]).fullmatch(datasource["name"]):
            path = ("site", "monitoring-stack", "datasource")
            raise errors.ProblemReport(
                [
                    Problem(
                        locate(path) or locate(("site", "monitoring", "datasource")),
                        format_path(path),
                        f"the monitoring stack's datasource {datasource['name']!r} does not match "
                        f"site.monitoring.datasource {monitoring['datasource']!r}: the compiled "
                        "rules would never query it; set datasource.name here, or change the "
                        "pattern",
                    )
                ]
            )
    return render(site_name, monitoring, site_rules, rules.channels(monitoring), locate, provided)


STACK = "monitoring-stack"
"""The site component that runs the site's Prometheus (components/monitoring-stack)."""


def stack_datasources(site_name: str, site: dict[str, Any]) -> list[dict[str, Any]]:
    """The n9e datasource of the site's monitoring stack (none when the site does not run it):
    its Prometheus, as n9e's ``/datasource/upsert`` takes it."""
    stack = site.get(STACK) or {}
    if STACK not in (site.get("components") or []) or not stack.get("enabled", True):
        return []
    name = (stack.get("datasource") or {}).get("name") or f"prometheus-{site_name}"
    return [
        {
            "name": name,
            "description": model.managed_note(site_name),
            "plugin_id": 1,
            "plugin_type": "prometheus",
            "plugin_type_name": "Prometheus Like",
            "category": "timeseries",
            "cluster_name": "default",
            "settings": {"prometheus.tsdb_type": "Prometheus"},
            "http": {
                "url": f"http://prometheus.{stack.get('namespace', 'monitoring')}.svc:9090",
                "timeout": 10000,
                "dial_timeout": 3000,
                "max_idle_conns_per_host": 100,
            },
            "auth": {},
            "is_default": False,
        }
    ]


def _glob(pattern: str) -> re.Pattern[str]:
    """n9e's datasource name pattern (tidwall/match): ``*`` any run, ``?`` one character."""
    return re.compile(
        "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern),
        re.DOTALL,
    )


def render(
    site_name: str,
    monitoring: dict[str, Any],
    site_rules: list[Rule],
    channels: list[Channel],
    locate: Locate,
    datasources: list[dict[str, Any]] | None = None,
) -> dict[str, bytes]:
    """The files for already computed rules and channels; the alert rules are verified first."""
    alert_rules = [alert_rule(site_name, monitoring, rule) for rule in site_rules]
    problems = verify(alert_rules)
    if problems:
        where = locate(("site", "monitoring"))
        raise errors.ProblemReport(
            [Problem(where, "$.site.monitoring", f"compiled n9e rule: {p}") for p in problems]
        )
    return {
        layout.N9E_ALERT_RULES: _json(alert_rules),
        layout.N9E_CHANNELS: _json([channel_object(site_name, ch) for ch in channels]),
        layout.N9E_TEMPLATES: _json([template_object(site_name, ch) for ch in channels]),
        layout.N9E_NOTIFY_RULES: _json(notify_rule_objects(site_name, channels)),
        layout.N9E_PROMETHEUS_RULES: yamlio.dump(
            prometheus_rules(site_name, monitoring, site_rules)
        ).encode(),
        layout.N9E_SITE: _json(site_object(site_name, monitoring, datasources)),
    }


# -- alert rules -----------------------------------------------------------------------------------


def alert_rule(site_name: str, monitoring: dict[str, Any], rule: Rule) -> dict[str, Any]:
    """One rule in n9e's shape: Prometheus v1 rule_config, effective windows written out, new
    notify."""
    interval = model.parse_duration(monitoring["eval_interval"], "site.monitoring.eval_interval")
    repeat = model.parse_duration(monitoring["repeat_every"], "site.monitoring.repeat_every")
    windows = monitoring["windows"]
    annotations = {"summary": rule.summary, model.IDENTITY_ANNOTATION: rule.identity}
    if rule.description:
        annotations["description"] = rule.description
    if rule.runbook:
        annotations["runbook_url"] = rule.runbook
    return {
        "name": rule.name,
        "note": rule.description or rule.summary,
        "prod": "metric",
        "cate": "prometheus",
        "datasource_queries": [{"match_type": 1, "op": "in", "values": [monitoring["datasource"]]}],
        "disabled": 0,
        "prom_ql": "",
        "rule_config": {
            "version": "v1",
            "inhibit": False,
            "event_relabel_config": [],
            "queries": [{"prom_ql": rule.expr, "severity": SEVERITIES[rule.severity]}],
        },
        "prom_eval_interval": interval,
        "cron_pattern": f"@every {interval}s",
        "prom_for_duration": rule.for_seconds,
        "delay": 0,
        "enable_in_bg": 0,
        "enable_stimes": [w["start"] for w in windows],
        "enable_etimes": [w["end"] for w in windows],
        "enable_days_of_weeks": [[str(d) for d in sorted(w["days"])] for w in windows],
        "time_zone": monitoring["time_zone"],
        "notify_version": 1,
        "notify_rule_ids": [],
        "notify_recovered": 1 if monitoring["notify_recovered"] else 0,
        "notify_repeat_step": repeat // 60,
        "notify_max_number": monitoring["max_notifications"],
        "recover_duration": 0,
        "append_tags": sorted([f"{k}={v}" for k, v in rule.tags.items()] + [model.MANAGED_TAG]),
        "annotations": annotations,
        "runbook_url": rule.runbook,
        "uuid": model.stable_uuid(site_name, rule.identity),
    }


def verify(alert_rules: list[dict[str, Any]]) -> list[str]:
    """Every way ``alert_rules`` break n9e's rule contract, as ``<rule name>: <problem>`` lines."""
    out = [
        f"{_rule_name(alert_rules, e)}: {e.message} at {format_path(e.absolute_path)}"
        for e in _validator().iter_errors(alert_rules)
    ]
    for rule in alert_rules:
        out += [f"{rule.get('name')}: {message}" for message in _cross_field(rule)]
    return out


@functools.cache
def _validator() -> jsonschema.protocols.Validator:
    import jsonschema

    text = (
        resources.files("generator.build.monitoring")
        .joinpath("alert-rule.schema.json")
        .read_text(encoding="utf-8")
    )
    return jsonschema.Draft202012Validator(json.loads(text))


def _rule_name(alert_rules: list[dict[str, Any]], error: jsonschema.ValidationError) -> str:
    path = list(error.absolute_path)
    if path and isinstance(path[0], int) and path[0] < len(alert_rules):
        return str(alert_rules[path[0]].get("name"))
    return "alert-rules.json"


def _cross_field(rule: dict[str, Any]) -> Iterator[str]:
    keys = [tag.split("=", 1)[0] for tag in rule.get("append_tags", [])]
    for key in sorted({k for k in keys if keys.count(k) > 1}):
        yield f"append_tags has duplicate key {key!r}"
    lengths = {
        len(rule.get(k, [])) for k in ("enable_stimes", "enable_etimes", "enable_days_of_weeks")
    }
    if len(lengths) > 1:
        yield "enable_stimes, enable_etimes and enable_days_of_weeks differ in length"


# -- notification ----------------------------------------------------------------------------------


def object_name(site_name: str, key: str) -> str:
    """Name and ident of a site's channel or template in n9e (both are global there)."""
    return f"gen-{site_name}-{key}"


def notify_rule_name(site_name: str) -> str:
    """Name of the site's notify rule in n9e."""
    return f"gen-{site_name}"


def channel_object(site_name: str, channel: Channel) -> dict[str, Any]:
    """An n9e v8+ notify channel: an HTTP request whose body is a Go template."""
    params = (
        [{"key": "phones", "cname": "Phone numbers", "type": "string"}]
        if channel.type == "sms"
        else []
    )
    return {
        "name": object_name(site_name, channel.key),
        "ident": object_name(site_name, channel.key),
        "description": model.managed_note(site_name),
        "enable": True,
        "request_type": "http",
        "param_config": {"custom": {"params": params}},
        "request_config": {
            "http_request_config": {
                "url": channel.url,
                "method": channel.method,
                "headers": channel.headers,
                "proxy": "",
                "timeout": channel.timeout_ms,
                "concurrency": 5,
                "retry_times": channel.retries,
                "retry_interval": 100,
                "request": {"parameters": {}, "form": "", "body": channel.body},
            }
        },
        "weight": 0,
    }


def template_object(site_name: str, channel: Channel) -> dict[str, Any]:
    """The message template of a channel (``$tpl.content`` in its body)."""
    return {
        "name": object_name(site_name, channel.key),
        "ident": object_name(site_name, channel.key),
        "notify_channel_ident": object_name(site_name, channel.key),
        "content": {"content": channel.message},
        "private": 0,
    }


def notify_rule_objects(site_name: str, channels: list[Channel]) -> list[dict[str, Any]]:
    """The site's notify rule: one config per routed channel, filtered by the receivers'
    severities."""
    configs = [_notify_config(site_name, ch) for ch in channels if ch.severities]
    if not configs:
        return []
    return [
        {
            "name": notify_rule_name(site_name),
            "description": model.managed_note(site_name),
            "enable": True,
            "notify_configs": configs,
        }
    ]


def _notify_config(site_name: str, channel: Channel) -> dict[str, Any]:
    params = {"phones": ",".join(channel.phones)} if channel.type == "sms" else {}
    return {
        "channel": object_name(site_name, channel.key),
        "template": object_name(site_name, channel.key),
        "params": params,
        "severities": list(channel.severities),
        "time_ranges": [],
        "label_keys": [],
    }


def site_object(
    site_name: str, monitoring: dict[str, Any], datasources: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """What ``apply`` needs beyond the objects: where the rules go and who owns them, and the
    datasources the site's monitoring stack provides (the key only when it has one)."""
    provided = {"datasources": datasources} if datasources else {}
    return {
        "site": site_name,
        "busi_group": monitoring["busi_group"],
        "team": monitoring.get("team") or monitoring["busi_group"],
        "datasource": monitoring["datasource"],
        **provided,
    }


# -- Prometheus ------------------------------------------------------------------------------------


def prometheus_rules(
    site_name: str, monitoring: dict[str, Any], site_rules: list[Rule]
) -> dict[str, Any]:
    """The same rules as a Prometheus rule file: one group per level."""
    seconds = model.parse_duration(monitoring["eval_interval"], "site.monitoring.eval_interval")
    interval = model.format_duration(seconds)
    groups = []
    for level in model.LEVELS:
        members = [_prometheus_rule(r) for r in site_rules if r.level == level]
        if members:
            groups.append({"name": f"{site_name}-{level}", "interval": interval, "rules": members})
    return {"groups": groups}


def _prometheus_rule(rule: Rule) -> dict[str, Any]:
    labels = {
        "severity": PROMETHEUS_SEVERITY[rule.severity],
        **{re.sub(r"[^a-zA-Z0-9_]", "_", k): v for k, v in rule.tags.items()},
    }
    annotations = {"summary": rule.summary, model.IDENTITY_ANNOTATION: rule.identity}
    if rule.description:
        annotations["description"] = rule.description
    if rule.runbook:
        annotations["runbook_url"] = rule.runbook
    return {
        "alert": rule.name,
        "expr": rule.expr,
        "for": model.format_duration(rule.for_seconds),
        "labels": dict(sorted(labels.items())),
        "annotations": dict(sorted(annotations.items())),
    }


def _json(value: Any) -> bytes:
    return (json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()
