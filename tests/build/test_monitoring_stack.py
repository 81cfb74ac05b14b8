"""components/monitoring-stack: what each reference site runs, its values and defaults, the
scrape jobs the built-in rules select, the metrics they query, and located errors."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import generate_latest

from generator.build import pipeline
from generator.build.monitoring import builtin
from generator.core import errors, layout, yamlio
from generator.core.objects import containers, pod_specs
from generator.run.agent.metrics import Metrics
from tests.support.project import REPO, tree_digest
from tests.support.review import edit

SITES = ("cn-east-1", "cn-north-2")
COMMON = "inventory/classes/common.yml"
EAST_TARGET = "inventory/targets/cn-east-1.yml"

# What each exporter the stack deploys produces, for the metrics the built-in rules query
# (node-exporter v1.8 collectors cpu, meminfo, filesystem, loadavg; kube-state-metrics v2.13;
# the kubelet's /metrics and /metrics/cadvisor; blackbox-exporter's probe result).
PRODUCED = {
    "node-exporter": {
        "node_cpu_seconds_total",
        "node_memory_MemAvailable_bytes",
        "node_memory_MemTotal_bytes",
        "node_filesystem_avail_bytes",
        "node_filesystem_size_bytes",
        "node_filesystem_files_free",
        "node_filesystem_files",
        "node_load15",
        "up",
    },
    "kube-state-metrics": {
        "kube_statefulset_replicas",
        "kube_statefulset_status_replicas_ready",
        "kube_deployment_spec_replicas",
        "kube_deployment_status_replicas_available",
        "kube_daemonset_status_desired_number_scheduled",
        "kube_daemonset_status_number_available",
        "kube_pod_status_ready",
        "kube_pod_container_status_restarts_total",
        "kube_pod_container_resource_limits",
    },
    "kubelet /metrics/cadvisor": {
        "container_cpu_usage_seconds_total",
        "container_memory_working_set_bytes",
    },
    "kubelet /metrics": {
        "kubelet_volume_stats_available_bytes",
        "kubelet_volume_stats_capacity_bytes",
    },
    "blackbox": {"probe_success"},
}
KSM_RESOURCE = {
    "kube_statefulset_": "statefulsets",
    "kube_deployment_": "deployments",
    "kube_daemonset_": "daemonsets",
    "kube_pod_": "pods",
}
_MATCHER = re.compile(r'(\w+)="([^"]*)"')
_METRIC = re.compile(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{")


def objects(root: Path, site: str) -> list[dict[str, Any]]:
    manifests = root / "compiled" / site / layout.MANIFESTS
    out = []
    for path in sorted(manifests.rglob("*.yaml")):
        out += yamlio.load_rendered(path.read_text(), path.name)
    return out


def stack(root: Path, site: str) -> dict[tuple[str, str], dict[str, Any]]:
    """The site's monitoring-stack objects by (kind, name)."""
    return {
        (o["kind"], o["metadata"]["name"]): o
        for o in objects(root, site)
        if o["metadata"].get("labels", {}).get("app.kubernetes.io/part-of") == "monitoring-stack"
    }


def container(obj: dict[str, Any]) -> dict[str, Any]:
    [pod] = list(pod_specs(obj))
    first: dict[str, Any] = next(iter(containers(pod)))
    return first


def env_of(obj: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(obj).get("env", [])}


def scrape_config(root: Path, site: str) -> dict[str, Any]:
    cm = stack(root, site)[("ConfigMap", "prometheus-config")]
    loaded: dict[str, Any] = yaml.safe_load(cm["data"]["prometheus.yml"])
    return loaded


def series_labels(job: dict[str, Any]) -> dict[str, str]:
    """The job and metrics_path labels a scrape job gives its series (static relabels only)."""
    labels = {"job": job["job_name"]}
    for relabel in job.get("relabel_configs", []):
        if relabel.get("target_label") == "job" and "source_labels" not in relabel:
            labels["job"] = relabel["replacement"]
        if relabel.get("source_labels") == ["__metrics_path__"]:
            labels["metrics_path"] = job.get("metrics_path", "/metrics")
    return labels


def site_json(root: Path, site: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((root / "compiled" / site / layout.N9E_SITE).read_text())
    return loaded


def problems_of(root: Path) -> str:
    with pytest.raises(errors.ProblemReport) as caught:
        pipeline.run(pipeline.Options(root, use_cache=False))
    return str(caught.value)


# -- the reference sites ---------------------------------------------------------------------------


def test_cn_east_1_runs_n9e_with_mysql_and_redis_prometheus_and_the_exporters() -> None:
    found = stack(REPO, "cn-east-1")
    assert {k for k in found if k[0] in ("StatefulSet", "Deployment", "DaemonSet")} == {
        ("StatefulSet", "n9e"),
        ("StatefulSet", "n9e-mysql"),
        ("StatefulSet", "n9e-redis"),
        ("StatefulSet", "prometheus"),
        ("DaemonSet", "node-exporter"),
        ("Deployment", "kube-state-metrics"),
        ("Deployment", "blackbox-exporter"),
    }
    assert {o["metadata"].get("namespace") for o in found.values()} <= {"monitoring", None}
    namespace = found[("Namespace", "monitoring")]["metadata"]["labels"]
    assert namespace["pod-security.kubernetes.io/enforce"] == "privileged"  # node-exporter
    service = found[("Service", "n9e")]["spec"]
    assert service["type"] == "NodePort" and service["ports"][0]["nodePort"] == 31700


def test_the_n9e_config_holds_no_password_and_the_pods_read_them_from_one_secret() -> None:
    found = stack(REPO, "cn-east-1")
    config = found[("ConfigMap", "n9e-config")]["data"]["config.toml"]
    assert 'DBType = "mysql"' in config and "DSN =" not in config
    assert 'Address = "n9e-redis.monitoring.svc:6379"' in config and "Password" not in config
    assert "[EmbeddedTSDB]\nEnable = false" in config
    assert 'Url = "http://prometheus.monitoring.svc:9090/api/v1/write"' in config
    n9e = env_of(found[("StatefulSet", "n9e")])
    ref = {"secretKeyRef": {"name": "n9e-secrets", "key": "DB_PASSWORD"}}
    assert n9e["DB_PASSWORD"] == ref
    assert n9e["CONFIGTYPE_DB_DSN"].startswith(
        "n9e:$(DB_PASSWORD)@tcp(n9e-mysql.monitoring.svc:3306)/n9e_v6?"
    )
    assert n9e["CONFIGTYPE_REDIS_PASSWORD"] == {
        "secretKeyRef": {"name": "n9e-secrets", "key": "REDIS_PASSWORD"}
    }
    assert env_of(found[("StatefulSet", "n9e-mysql")])["MYSQL_PASSWORD"] == ref
    secret = found[("EncryptedSecret", "n9e-secrets")]
    assert sorted(secret["spec"]["encryptedData"]) == ["DB_PASSWORD", "REDIS_PASSWORD"]


def test_cn_north_2s_values_reach_its_stack() -> None:
    found = stack(REPO, "cn-north-2")
    assert ("StatefulSet", "n9e-postgres") in found and ("StatefulSet", "n9e-mysql") not in found
    assert found[("StatefulSet", "n9e")]["spec"]["replicas"] == 2
    dsn = env_of(found[("StatefulSet", "n9e")])["CONFIGTYPE_DB_DSN"]
    assert dsn == (
        "host=n9e-postgres.monitoring.svc port=5432 user=n9e dbname=n9e_v6 "
        "password=$(DB_PASSWORD) sslmode=disable"
    )
    prometheus = found[("StatefulSet", "prometheus")]
    args = container(prometheus)["args"]
    assert "--storage.tsdb.retention.time=30d" in args
    assert "--storage.tsdb.retention.size=180GB" in args
    [claim] = prometheus["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["storageClassName"] == "local-path"  # site.storage_class
    assert claim["spec"]["resources"]["requests"]["storage"] == "200Gi"
    assert container(prometheus)["resources"]["limits"] == {"cpu": "4", "memory": "16Gi"}


@pytest.mark.parametrize("site", SITES)
def test_the_stacks_images_are_in_the_kubekey_manifest(site: str) -> None:
    listed = set(
        yamlio.load_rendered(
            (REPO / "compiled" / site / layout.KUBEKEY_MANIFEST).read_text(), "manifest"
        )[0]["spec"]["images"]
    )
    images = {
        c["image"]
        for o in stack(REPO, site).values()
        for pod in pod_specs(o)
        for c in containers(pod)
    }
    assert len(images) == 7 and images <= listed  # n9e, its database, Redis, 4 more


@pytest.mark.parametrize("site", SITES)
def test_site_json_provisions_the_datasource_the_rules_select(site: str) -> None:
    found = site_json(REPO, site)
    [datasource] = found["datasources"]
    assert datasource["name"] == f"prometheus-{site}"
    assert datasource["http"]["url"] == "http://prometheus.monitoring.svc:9090"
    assert re.fullmatch(found["datasource"].replace("*", ".*"), datasource["name"])


# -- what the rules query is what the stack scrapes ------------------------------------------------


@pytest.mark.parametrize("site", SITES)
def test_every_built_in_rule_selects_a_job_the_stacks_prometheus_scrapes(site: str) -> None:
    jobs = [series_labels(job) for job in scrape_config(REPO, site)["scrape_configs"]]
    rules = json.loads((REPO / "compiled" / site / layout.N9E_ALERT_RULES).read_text())
    checked = 0
    for rule in rules:
        level = next(t.split("=", 1)[1] for t in rule["append_tags"] if t.startswith("level="))
        if level == "business":
            continue
        expr = rule["rule_config"]["queries"][0]["prom_ql"]
        for selector in re.findall(r"\{([^}]*)\}", expr):
            wanted = {k: v for k, v in _MATCHER.findall(selector) if k in ("job", "metrics_path")}
            if wanted:
                checked += 1
                assert any(wanted.items() <= job.items() for job in jobs), (rule["name"], wanted)
    assert checked > 20


def test_the_built_in_rules_query_metrics_their_exporter_produces() -> None:
    """Every metric of every built-in rule template (whether or not a reference site compiles
    it), by the selector that picks its exporter."""
    exporter = {
        "node": "node-exporter",
        "ksm": "kube-state-metrics",
        "cadvisor": "kubelet /metrics/cadvisor",
        "kubelet": "kubelet /metrics",
        "probe": "blackbox",
    }
    templates = [b.expr for b in builtin.ALL.values()] + list(builtin.REPLICAS.values())
    seen = set()
    for template in templates:
        for metric, selector in re.findall(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{+(\w+)\}", template):
            assert metric in PRODUCED[exporter[selector]], (template, metric)
            seen.add(metric)
    assert seen == set().union(*PRODUCED.values())


def test_kube_state_metrics_watches_every_resource_the_rules_read_and_nothing_else() -> None:
    found = stack(REPO, "cn-east-1")
    args = container(found[("Deployment", "kube-state-metrics")])["args"]
    [resources] = [a.split("=", 1)[1].split(",") for a in args if a.startswith("--resources=")]
    needed = {
        resource
        for metric in PRODUCED["kube-state-metrics"]
        for prefix, resource in KSM_RESOURCE.items()
        if metric.startswith(prefix)
    }
    assert needed <= set(resources)
    rules = found[("ClusterRole", "monitoring.kube-state-metrics")]["rules"]
    granted = {r for rule in rules for r in rule["resources"]}
    assert set(resources) == granted and "secrets" not in granted


def test_the_agents_metrics_are_scraped_with_the_namespace_its_rules_select() -> None:
    config = scrape_config(REPO, "cn-east-1")
    [annotated] = [j for j in config["scrape_configs"] if j["job_name"] == "annotated-services"]
    relabels = {
        tuple(r.get("source_labels", [])): r.get("target_label")
        for r in annotated["relabel_configs"]
    }
    assert relabels[("__meta_kubernetes_namespace",)] == "namespace"
    service = next(
        o
        for o in objects(REPO, "cn-east-1")
        if o["kind"] == "Service" and o["metadata"]["name"] == "gen-agent"
    )
    assert service["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    exposed = generate_latest(Metrics(300).registry).decode()
    rules = json.loads((REPO / "compiled" / "cn-east-1" / layout.N9E_ALERT_RULES).read_text())
    queried = {
        metric
        for rule in rules
        for metric in _METRIC.findall(rule["rule_config"]["queries"][0]["prom_ql"])
        if metric.startswith("gen_agent_")
    }
    assert "gen_agent_rollback_active" in queried and len(queried) == 6
    for metric in queried:
        assert re.search(rf"^{metric}(\{{| )", exposed, re.M), metric
    assert all(
        'namespace="gen-agent"' in rule["rule_config"]["queries"][0]["prom_ql"]
        for rule in rules
        if "gen_agent_" in rule["rule_config"]["queries"][0]["prom_ql"]
    )


def test_every_external_address_is_probed() -> None:
    config = scrape_config(REPO, "cn-east-1")
    [blackbox] = [j for j in config["scrape_configs"] if j["job_name"] == "blackbox"]
    assert blackbox["static_configs"][0]["targets"] == ["10.86.67.11:6379"]
    assert blackbox["params"] == {"module": ["tcp_connect"]}


# -- choices a site makes --------------------------------------------------------------------------


def test_sqlite_and_miniredis_need_no_database_redis_or_secret(project: Path) -> None:
    edit(
        project / EAST_TARGET,
        "    monitoring-stack:\n",
        "    monitoring-stack:\n      database: {type: sqlite}\n      redis: {type: miniredis}\n",
    )
    edit(
        project / EAST_TARGET,
        "        node_port: 31700\n",
        "        node_port: 31700\n        storage: {size: 5Gi}\n",
    )
    pipeline.run(pipeline.Options(project, use_cache=False))
    found = stack(project, "cn-east-1")
    assert not {k for k in found if k[1] in ("n9e-mysql", "n9e-redis", "n9e-secrets")}
    config = found[("ConfigMap", "n9e-config")]["data"]["config.toml"]
    assert 'DBType = "sqlite"\nDSN = "/app/data/n9e.db"' in config
    assert 'RedisType = "miniredis"' in config
    n9e = found[("StatefulSet", "n9e")]
    assert "DB_PASSWORD" not in env_of(n9e)
    [claim] = n9e["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "5Gi"


def test_a_site_that_disables_the_stack_gets_none_of_it_and_no_datasource(project: Path) -> None:
    edit(
        project / EAST_TARGET,
        "    monitoring-stack:\n",
        "    monitoring-stack:\n      enabled: false\n",
    )
    pipeline.run(pipeline.Options(project, use_cache=False))
    assert stack(project, "cn-east-1") == {}
    assert "datasources" not in site_json(project, "cn-east-1")
    assert stack(project, "cn-north-2")  # the other site keeps its own


def test_defaults_fill_what_a_site_leaves_out(project: Path) -> None:
    edit(
        project / EAST_TARGET,
        "      prometheus:\n        retention: 15d\n        storage: {size: 50Gi}\n",
        "",
    )
    pipeline.run(pipeline.Options(project, use_cache=False))
    prometheus = stack(project, "cn-east-1")[("StatefulSet", "prometheus")]
    assert container(prometheus)["image"] == "dockerhub.kubekey.local/prom/prometheus:v2.55.1"
    assert "--storage.tsdb.retention.time=15d" in container(prometheus)["args"]
    assert prometheus["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"] == {
        "storage": "50Gi"
    }


# -- located errors --------------------------------------------------------------------------------


def test_an_in_cluster_database_without_password_is_located(project: Path) -> None:
    edit(
        project / COMMON, "        password: ?{age:monitoring/db-password}\n", "        user: n9e\n"
    )
    before = tree_digest(project / "compiled")
    message = problems_of(project)
    assert "$.site.monitoring-stack.database" in message and "password" in message
    assert tree_digest(project / "compiled") == before


def test_a_plain_text_database_password_is_refused_without_being_echoed(project: Path) -> None:
    edit(
        project / COMMON,
        "password: ?{age:monitoring/db-password}",
        "password: Sup3rSecretDbPass",
    )
    message = problems_of(project)
    line = next(
        i
        for i, text in enumerate((project / COMMON).read_text().splitlines(), 1)
        if "Sup3rSecretDbPass" in text
    )
    assert f"{COMMON}:{line}:" in message
    assert "$.site.monitoring-stack.database.password  must be a secret reference" in message
    assert "Sup3rSecretDbPass" not in message


def test_several_n9e_replicas_on_sqlite_are_refused(project: Path) -> None:
    edit(
        project / EAST_TARGET,
        "    monitoring-stack:\n",
        "    monitoring-stack:\n      database: {type: sqlite}\n",
    )
    edit(
        project / EAST_TARGET,
        "        node_port: 31700\n",
        "        node_port: 31700\n        replicas: 2\n",
    )
    message = problems_of(project)
    assert f"{EAST_TARGET}:" in message and "$.site.monitoring-stack.database.type" in message
    assert (
        "'sqlite' is not one of ['mysql', 'postgres']: several n9e replicas (n9e.replicas >= 2) "
        "share one database: set database.type to mysql or postgres, or n9e.replicas to 1"
    ) in message


def test_a_datasource_name_the_rules_would_not_select_is_located(project: Path) -> None:
    edit(
        project / EAST_TARGET,
        "    monitoring-stack:\n",
        "    monitoring-stack:\n      datasource: {name: prom-east}\n",
    )
    message = problems_of(project)
    assert f"{EAST_TARGET}:" in message
    assert "$.site.monitoring-stack.datasource" in message
    assert "'prom-east' does not match site.monitoring.datasource 'prometheus-*'" in message


def test_an_unknown_key_in_the_stack_is_located(project: Path) -> None:
    edit(
        project / EAST_TARGET,
        "        retention: 15d\n",
        "        retention: 15d\n        retension_size: 40GB\n",
    )
    message = problems_of(project)
    assert f"{EAST_TARGET}:" in message and "$.site.monitoring-stack.prometheus" in message
    assert "retension_size" in message


def test_the_agent_may_escalate_and_bind_exactly_the_sites_own_cluster_roles() -> None:
    found = {
        (o["kind"], o["metadata"]["name"]): o
        for o in objects(REPO, "cn-east-1")
        if o["kind"] == "ClusterRole"
    }
    agent = found.pop(("ClusterRole", "gen-agent.gen-agent"))
    [rule] = [r for r in agent["rules"] if "escalate" in r["verbs"]]
    assert rule == {
        "apiGroups": ["rbac.authorization.k8s.io"],
        "resources": ["clusterroles"],
        "resourceNames": sorted(name for _, name in found),
        "verbs": ["bind", "escalate"],
    }
    assert rule["resourceNames"] == ["monitoring.kube-state-metrics", "monitoring.prometheus"]


def test_the_stack_that_runs_the_rules_is_watched_by_them() -> None:
    rules = {
        r["name"]: r
        for r in json.loads((REPO / "compiled" / "cn-east-1" / layout.N9E_ALERT_RULES).read_text())
    }
    watched = {name.split(":")[0] for name in rules if name.startswith("monitoring-stack/")}
    assert watched == {
        f"monitoring-stack/{name}"
        for name in (
            "n9e",
            "n9e-mysql",
            "n9e-redis",
            "prometheus",
            "node-exporter",
            "kube-state-metrics",
            "blackbox-exporter",
        )
    }
    down = rules["monitoring-stack/node-exporter: replicas unavailable"]
    assert down["rule_config"]["queries"][0]["prom_ql"] == (
        'kube_daemonset_status_desired_number_scheduled{job="kube-state-metrics", '
        'namespace="monitoring", daemonset="node-exporter"} - '
        'kube_daemonset_status_number_available{job="kube-state-metrics", '
        'namespace="monitoring", daemonset="node-exporter"} > 0'
    )
    assert "service=monitoring-stack" in down["append_tags"]
    assert "monitoring-stack/prometheus: volume filling" in rules
