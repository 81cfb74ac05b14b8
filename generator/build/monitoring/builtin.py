"""The built-in rule sets: what a site gets monitored for out of the box.

Each entry is data: an id (the key users override it by), its level, a title, a PromQL template
and defaults. Templates are ``str.format`` strings over the site's selectors (``{node}``, ``{ksm}``,
``{cadvisor}``, ``{kubelet}``, ``{probe}``), the subject's matchers (``{workload}``, ``{pods}``,
``{claims}``, ``{instances}``) and ``{threshold}``. Metrics: node-exporter (system),
kube-state-metrics, cAdvisor and the kubelet (service), blackbox-exporter probes (external).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Builtin:
    """One built-in rule: defaults that site and service settings override."""

    id: str
    level: str
    title: str
    expr: str
    summary: str
    severity: str
    for_: str
    threshold: float | None = None
    needs: str = ""
    """What the subject must have for the rule to apply: ``cpu_limit``, ``memory_limit``,
    ``claims``."""


_FS = 'fstype!~"tmpfs|overlay|squashfs|nsfs|ramfs"'

SYSTEM = (
    Builtin(
        "node-down",
        "system",
        "node down",
        "up{{{node}}} == 0",
        "Node exporter {{{{ $labels.instance }}}} is down",
        "critical",
        "2m",
    ),
    Builtin(
        "node-cpu-high",
        "system",
        "node CPU high",
        "100 * (1 - avg by (instance) "
        '(rate(node_cpu_seconds_total{{{node}, mode="idle"}}[5m]))) > {threshold}',
        "CPU of {{{{ $labels.instance }}}} above {threshold}%",
        "warning",
        "10m",
        90,
    ),
    Builtin(
        "node-memory-high",
        "system",
        "node memory high",
        "100 * (1 - node_memory_MemAvailable_bytes{{{node}}} / "
        "node_memory_MemTotal_bytes{{{node}}}) > {threshold}",
        "Memory of {{{{ $labels.instance }}}} above {threshold}%",
        "warning",
        "5m",
        90,
    ),
    Builtin(
        "node-disk-space-low",
        "system",
        "node disk space low",
        f"100 * (1 - node_filesystem_avail_bytes{{{{{{node}}, {_FS}}}}} / "
        f"node_filesystem_size_bytes{{{{{{node}}, {_FS}}}}}) > {{threshold}}",
        "Filesystem {{{{ $labels.mountpoint }}}} of {{{{ $labels.instance }}}} "
        "above {threshold}% full",
        "warning",
        "5m",
        85,
    ),
    Builtin(
        "node-disk-inodes-low",
        "system",
        "node inodes low",
        f"100 * (1 - node_filesystem_files_free{{{{{{node}}, {_FS}}}}} / "
        f"node_filesystem_files{{{{{{node}}, {_FS}}}}}) > {{threshold}}",
        "Inodes of {{{{ $labels.mountpoint }}}} on {{{{ $labels.instance }}}} "
        "above {threshold}% used",
        "warning",
        "5m",
        85,
    ),
    Builtin(
        "node-load-high",
        "system",
        "node load high",
        "max by (instance) (node_load15{{{node}}}) / "
        'count by (instance) (node_cpu_seconds_total{{{node}, mode="idle"}}) > {threshold}',
        "15-minute load of {{{{ $labels.instance }}}} above {threshold} per CPU",
        "warning",
        "15m",
        2,
    ),
)

SERVICE = (
    Builtin(
        "replicas-unavailable",
        "service",
        "replicas unavailable",
        "{replicas} > {threshold}",
        "{subject}: {{{{ $value }}}} replica(s) unavailable",
        "critical",
        "5m",
        0,
    ),
    Builtin(
        "pods-not-ready",
        "service",
        "pods not ready",
        "sum by (namespace, pod) "
        '(kube_pod_status_ready{{{ksm}, {pods}, condition="false"}}) > {threshold}',
        "{subject}: pod {{{{ $labels.pod }}}} not ready",
        "warning",
        "10m",
        0,
    ),
    Builtin(
        "restart-loop",
        "service",
        "restart loop",
        "increase(kube_pod_container_status_restarts_total{{{ksm}, {pods}}}[15m]) > {threshold}",
        "{subject}: container {{{{ $labels.container }}}} of {{{{ $labels.pod }}}} "
        "restarted more than {threshold} times in 15 minutes",
        "warning",
        "0s",
        3,
    ),
    Builtin(
        "cpu-near-limit",
        "service",
        "CPU near limit",
        "100 * sum by (namespace, pod, container) "
        '(rate(container_cpu_usage_seconds_total{{{cadvisor}, {pods}, container!=""}}[5m])) / '
        "sum by (namespace, pod, container) "
        '(kube_pod_container_resource_limits{{{ksm}, {pods}, resource="cpu"}}) > {threshold}',
        "{subject}: container {{{{ $labels.container }}}} of {{{{ $labels.pod }}}} uses more than "
        "{threshold}% of its CPU limit",
        "warning",
        "15m",
        90,
        "cpu_limit",
    ),
    Builtin(
        "memory-near-limit",
        "service",
        "memory near limit",
        "100 * sum by (namespace, pod, container) "
        '(container_memory_working_set_bytes{{{cadvisor}, {pods}, container!=""}}) / '
        "sum by (namespace, pod, container) "
        '(kube_pod_container_resource_limits{{{ksm}, {pods}, resource="memory"}}) > {threshold}',
        "{subject}: container {{{{ $labels.container }}}} of {{{{ $labels.pod }}}} uses more than "
        "{threshold}% of its memory limit",
        "warning",
        "5m",
        90,
        "memory_limit",
    ),
    Builtin(
        "volume-filling",
        "service",
        "volume filling",
        "100 * (1 - kubelet_volume_stats_available_bytes{{{kubelet}, {claims}}} / "
        "kubelet_volume_stats_capacity_bytes{{{kubelet}, {claims}}}) > {threshold}",
        "{subject}: volume {{{{ $labels.persistentvolumeclaim }}}} above {threshold}% full",
        "warning",
        "5m",
        85,
        "claims",
    ),
)

EXTERNAL = (
    Builtin(
        "target-down",
        "external",
        "target down",
        "probe_success{{{probe}, {instances}}} == 0",
        "{subject}: {{{{ $labels.instance }}}} does not answer",
        "critical",
        "2m",
    ),
)

ALL = {b.id: b for b in (*SYSTEM, *SERVICE, *EXTERNAL)}
"""Every built-in rule by id (the ids the schema's ``builtin:`` overrides accept)."""

REPLICAS = {
    "StatefulSet": (
        "kube_statefulset_replicas{{{ksm}, {workload}}} - "
        "kube_statefulset_status_replicas_ready{{{ksm}, {workload}}}"
    ),
    "Deployment": (
        "kube_deployment_spec_replicas{{{ksm}, {workload}}} - "
        "kube_deployment_status_replicas_available{{{ksm}, {workload}}}"
    ),
    "DaemonSet": (
        "kube_daemonset_status_desired_number_scheduled{{{ksm}, {workload}}} - "
        "kube_daemonset_status_number_available{{{ksm}, {workload}}}"
    ),
}
"""Unavailable replicas of each workload kind (kube-state-metrics)."""

POD_NAMES = {
    "StatefulSet": "{name}-[0-9]+",
    "Deployment": "{name}-[a-z0-9]+-[a-z0-9]+",
    "DaemonSet": "{name}-[a-z0-9]+",
}
"""Regular expressions of the pod names each workload kind creates."""
