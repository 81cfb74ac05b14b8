"""A site's merged, defaulted parameters and compiled workloads -> its alert rules and channels
(pure).

Built-in rules come from ``builtin``: system rules once per site, service rules once per compiled
workload (StatefulSet, Deployment, DaemonSet), external rules once per external resource. A
setting in ``services.<name>.monitoring.builtin`` beats ``site.monitoring.builtin``, which beats
the built-in default. Business rules are the services' own ``monitoring.rules``.

Problems the schema cannot see (a receiver naming an unknown channel, a tag gen sets itself, two
rules with one name) are returned as ``(key path, message)`` pairs for the caller to locate.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from generator.build.monitoring import builtin
from generator.core import objects
from generator.formats.n9e import LEVELS, SEVERITIES, Channel, Rule, parse_duration

Path = tuple[str | int, ...]
Finding = tuple[Path, str]

RESERVED_TAGS = ("site", "service", "level", "managed-by")
"""Tag keys gen sets on every rule; inventory tags may not use them."""

WORKLOAD_KINDS = ("StatefulSet", "Deployment", "DaemonSet")


class RenderedLike(Protocol):
    """What the compiler hands over per rendered object (``render.Rendered`` fits)."""

    @property
    def obj(self) -> dict[str, Any]: ...

    @property
    def unit(self) -> str: ...


@dataclass(frozen=True)
class Workload:
    """A compiled workload of a service, reduced to what its built-in rules need."""

    service: str
    kind: str
    namespace: str
    name: str
    cpu_limit: bool
    memory_limit: bool
    claims: tuple[str, ...]


STACK = "monitoring-stack"
"""The site component of the monitoring stack (components/monitoring-stack)."""


def workloads(rendered: Iterable[RenderedLike], namespace: str) -> list[Workload]:
    """The services' workloads among the rendered objects, in (service, kind, name) order; the
    monitoring stack's (a site component) count as those of a service ``monitoring-stack``, so the
    stack that runs the rules is watched by them too."""
    found = []
    for item in rendered:
        obj = item.obj
        if obj.get("kind") not in WORKLOAD_KINDS:
            continue
        labels = (obj.get("metadata") or {}).get("labels") or {}
        if item.unit == "site" and labels.get("app.kubernetes.io/part-of") == STACK:
            unit = f"service {STACK}"
        elif item.unit.startswith("service "):
            unit = item.unit
        else:
            continue
        spec = obj.get("spec") or {}
        pods = objects.pod_specs(obj)
        containers = [c for pod in pods for c in objects.containers(pod, init=False)]
        limits = [((c.get("resources") or {}).get("limits") or {}) for c in containers]
        claims = tuple(
            sorted(t["metadata"]["name"] for t in spec.get("volumeClaimTemplates") or [])
        )
        found.append(
            Workload(
                unit.removeprefix("service "),
                obj["kind"],
                obj["metadata"].get("namespace") or namespace,
                obj["metadata"]["name"],
                any("cpu" in lim for lim in limits),
                any("memory" in lim for lim in limits),
                claims,
            )
        )
    return sorted(found, key=lambda w: (w.service, w.kind, w.name))


def site_rules(site_name: str, params: dict[str, Any], loads: list[Workload]) -> list[Rule]:
    """Every rule of the site: system, service, external, business; by level, then identity."""
    monitoring = params["site"]["monitoring"]
    extra = dict(monitoring.get("tags") or {})
    out = [
        *_system(monitoring),
        *_services(monitoring, params["services"], loads),
        *_external(monitoring, params["site"].get("external") or {}),
        *_business(params["services"]),
    ]
    tagged = [_with_tags(rule, site_name, extra) for rule in out]
    return sorted(tagged, key=lambda r: (LEVELS.index(r.level), r.identity))


def channels(monitoring: dict[str, Any]) -> list[Channel]:
    """The site's channels with the severities its receivers route to each, by name."""
    routed: dict[str, set[int]] = {}
    for severity, names in (monitoring.get("receivers") or {}).items():
        for name in names:
            routed.setdefault(name, set()).add(SEVERITIES[severity])
    return [
        _channel(key, spec, tuple(sorted(routed.get(key, ()))))
        for key, spec in sorted((monitoring.get("channels") or {}).items())
    ]


def check(params: dict[str, Any], rules: list[Rule]) -> list[Finding]:
    """Cross-checks of the monitoring settings the schema cannot express."""
    monitoring = params["site"]["monitoring"]
    found = list(_check_receivers(monitoring))
    found += _check_tags(("site", "monitoring", "tags"), monitoring.get("tags") or {})
    for name, svc in params["services"].items():
        mon = svc.get("monitoring") or {}
        for rule_id, rule in (mon.get("rules") or {}).items():
            found += _check_tags(
                ("services", name, "monitoring", "rules", rule_id, "tags"), rule.get("tags") or {}
            )
        for rule_id in mon.get("builtin") or {}:
            found += _check_service_override(name, rule_id)
    found += _check_overrides(("site", "monitoring", "builtin"), monitoring.get("builtin") or {})
    for name, svc in params["services"].items():
        found += _check_overrides(
            ("services", name, "monitoring", "builtin"),
            (svc.get("monitoring") or {}).get("builtin") or {},
        )
    found += _check_names(rules)
    return found


# -- built-in rules --------------------------------------------------------------------------------


def _selectors(monitoring: dict[str, Any]) -> dict[str, str]:
    sel = monitoring.get("selectors") or {}
    return {
        "node": sel["node"],
        "ksm": sel["kube_state_metrics"],
        "cadvisor": sel["cadvisor"],
        "kubelet": sel["kubelet"],
        "probe": sel["probe"],
    }


def _settings(spec: builtin.Builtin, *layers: dict[str, Any]) -> dict[str, Any]:
    """Defaults of ``spec`` overridden by each layer's ``builtin.<id>`` in turn."""
    out: dict[str, Any] = {
        "enabled": True,
        "threshold": spec.threshold,
        "for": spec.for_,
        "severity": spec.severity,
    }
    for layer in layers:
        out.update((layer.get("builtin") or {}).get(spec.id) or {})
    return out


def _system(monitoring: dict[str, Any]) -> Iterator[Rule]:
    sel = _selectors(monitoring)
    for spec in builtin.SYSTEM:
        settings = _settings(spec, monitoring)
        if settings["enabled"]:
            yield _builtin_rule(
                spec,
                settings,
                f"system/site/{spec.id}",
                spec.title[0].upper() + spec.title[1:],
                "",
                sel,
                "",
            )


def _services(
    monitoring: dict[str, Any], services: dict[str, Any], loads: list[Workload]
) -> Iterator[Rule]:
    sel = _selectors(monitoring)
    for load in loads:
        svc_mon = (services.get(load.service) or {}).get("monitoring") or {}
        subject = load.service if load.name == load.service else f"{load.service}/{load.name}"
        values = {
            **sel,
            "workload": _workload_matchers(load),
            "pods": _pod_matchers(load),
            "claims": _claim_matchers(load),
        }
        for spec in builtin.SERVICE:
            settings = _settings(spec, monitoring, svc_mon)
            if settings["enabled"] and (not spec.needs or getattr(load, spec.needs)):
                values["replicas"] = builtin.REPLICAS[load.kind].format(**values)
                yield _builtin_rule(
                    spec,
                    settings,
                    f"service/{subject}/{spec.id}",
                    f"{subject}: {spec.title}",
                    subject,
                    values,
                    load.service,
                )


def _external(monitoring: dict[str, Any], external: dict[str, Any]) -> Iterator[Rule]:
    sel = _selectors(monitoring)
    for name, resource in sorted(external.items()):
        endpoints = [
            f"{address}:{port['port']}"
            for address in resource["addresses"]
            for port in resource["ports"]
        ]
        values = {**sel, "instances": f'instance=~"{_regex_alternatives(endpoints)}"'}
        for spec in builtin.EXTERNAL:
            settings = _settings(spec, monitoring)
            if settings["enabled"]:
                yield _builtin_rule(
                    spec,
                    settings,
                    f"external/{name}/{spec.id}",
                    f"{name}: {spec.title}",
                    name,
                    values,
                    "",
                )


def _builtin_rule(
    spec: builtin.Builtin,
    settings: dict[str, Any],
    identity: str,
    name: str,
    subject: str,
    values: dict[str, str],
    service: str,
) -> Rule:
    threshold = _number(settings["threshold"]) if settings["threshold"] is not None else ""
    fill = {**values, "threshold": threshold, "subject": subject}
    return Rule(
        identity=identity,
        name=name,
        level=spec.level,
        expr=spec.expr.format(**fill),
        severity=settings["severity"],
        for_seconds=parse_duration(settings["for"], f"monitoring.builtin.{spec.id}.for"),
        summary=spec.summary.format(**fill),
        service=service,
    )


def _workload_matchers(load: Workload) -> str:
    key = {"StatefulSet": "statefulset", "Deployment": "deployment", "DaemonSet": "daemonset"}[
        load.kind
    ]
    return f'namespace="{load.namespace}", {key}="{load.name}"'


def _pod_matchers(load: Workload) -> str:
    pattern = builtin.POD_NAMES[load.kind].format(name=_regex_escape(load.name))
    return f'namespace="{load.namespace}", pod=~"{_promql_string(pattern)}"'


def _claim_matchers(load: Workload) -> str:
    names = [f"{_regex_escape(claim)}-{_regex_escape(load.name)}-[0-9]+" for claim in load.claims]
    return (
        f'namespace="{load.namespace}", persistentvolumeclaim=~"{_promql_string("|".join(names))}"'
    )


def _regex_alternatives(values: list[str]) -> str:
    return _promql_string("|".join(_regex_escape(v) for v in values))


def _regex_escape(text: str) -> str:
    """``text`` as a literal in an RE2 regular expression (only metacharacters escaped)."""
    return re.sub(r"([.^$*+?()\[\]{}|\\])", r"\\\1", text)


def _promql_string(text: str) -> str:
    """``text`` as the inside of a double-quoted PromQL string (backslashes and quotes escaped)."""
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


# -- business rules --------------------------------------------------------------------------------


def _business(services: dict[str, Any]) -> Iterator[Rule]:
    for service, svc in sorted(services.items()):
        if not svc.get("enabled", True):
            continue
        for rule_id, spec in sorted(((svc.get("monitoring") or {}).get("rules") or {}).items()):
            if spec.get("enabled", True):
                yield Rule(
                    identity=f"business/{service}/{rule_id}",
                    name=spec.get("name") or f"{service}: {rule_id}",
                    level="business",
                    expr=spec["expr"].strip(),
                    severity=spec["severity"],
                    for_seconds=parse_duration(
                        spec["for"], f"services.{service}.monitoring.rules.{rule_id}.for"
                    ),
                    summary=spec["summary"],
                    description=spec.get("description", ""),
                    runbook=spec.get("runbook", ""),
                    service=service,
                    tags=dict(spec.get("tags") or {}),
                )


def _with_tags(rule: Rule, site_name: str, extra: dict[str, str]) -> Rule:
    tags = {**extra, **rule.tags, "site": site_name, "level": rule.level}
    if rule.service:
        tags["service"] = rule.service
    return Rule(**{**rule.__dict__, "tags": dict(sorted(tags.items()))})


# -- channels --------------------------------------------------------------------------------------

SMS_BODY = '{"phones": {{ jsonMarshal $params.phones }}, "content": {{ jsonMarshal $tpl.content }}}'
"""Default body of an SMS gateway request: the comma-separated phone numbers and the message."""
WEBHOOK_BODY = "{{ jsonMarshal $events }}"
"""Default body of a webhook: the alert events as n9e sends them to its own callbacks."""
DEFAULT_MESSAGE = (
    "{{if $event.IsRecovered}}[RECOVERED]{{else}}[S{{$event.Severity}}]{{end}} "
    "{{$event.RuleName}} {{$event.TagsMap.site}} {{$event.TargetIdent}} "
    "value={{$event.TriggerValue}}"
)
"""Default one-line message ($tpl.content): short enough for a text message."""


def _channel(key: str, spec: dict[str, Any], severities: tuple[int, ...]) -> Channel:
    default_body = SMS_BODY if spec["type"] == "sms" else WEBHOOK_BODY
    return Channel(
        key=key,
        type=spec["type"],
        url=spec["url"],
        method=spec["method"],
        headers=dict(sorted(spec["headers"].items())),
        timeout_ms=_timeout_ms(key, spec),
        retries=spec["retries"],
        phones=tuple(spec.get("phones") or ()),
        body=spec.get("body") or default_body,
        message=spec.get("message") or DEFAULT_MESSAGE,
        severities=severities,
    )


def _timeout_ms(key: str, spec: dict[str, Any]) -> int:
    return parse_duration(spec["timeout"], f"site.monitoring.channels.{key}.timeout") * 1000


# -- checks ----------------------------------------------------------------------------------------


def _check_receivers(monitoring: dict[str, Any]) -> Iterator[Finding]:
    known = set(monitoring.get("channels") or {})
    for severity, names in (monitoring.get("receivers") or {}).items():
        for i, name in enumerate(names):
            if name not in known:
                yield (
                    ("site", "monitoring", "receivers", severity, i),
                    f"channel {name!r} is not declared in site.monitoring.channels "
                    f"(channels: {', '.join(sorted(known)) or 'none'})",
                )


def _check_tags(path: Path, tags: dict[str, str]) -> Iterator[Finding]:
    for key in tags:
        if key in RESERVED_TAGS:
            yield (
                (*path, key),
                f"tag {key!r} is set by gen on every rule; choose another key "
                f"(reserved: {', '.join(RESERVED_TAGS)})",
            )


def _check_service_override(service: str, rule_id: str) -> Iterator[Finding]:
    spec = builtin.ALL[rule_id]
    if spec.level != "service":
        yield (
            ("services", service, "monitoring", "builtin", rule_id),
            f"{rule_id!r} is a {spec.level} rule, not a service rule; "
            "set it in site.monitoring.builtin",
        )


def _check_overrides(path: Path, overrides: dict[str, Any]) -> Iterator[Finding]:
    for rule_id, override in overrides.items():
        if "threshold" in override and builtin.ALL[rule_id].threshold is None:
            yield (
                (*path, rule_id, "threshold"),
                f"{rule_id!r} has no threshold (it fires when the target is down)",
            )


def _check_names(rules: list[Rule]) -> Iterator[Finding]:
    seen: dict[str, Rule] = {}
    for rule in rules:
        other = seen.setdefault(rule.name, rule)
        if other is not rule:
            path: Path = (
                (
                    "services",
                    rule.service,
                    "monitoring",
                    "rules",
                    rule.identity.rsplit("/", 1)[1],
                    "name",
                )
                if rule.level == "business"
                else ("site", "monitoring")
            )
            yield (
                path,
                f"two rules are named {rule.name!r} ({other.identity} and {rule.identity}); "
                "n9e needs unique names in a business group",
            )
