"""Prometheus metrics of the agent and the small HTTP server for ``/metrics`` and ``/healthz``.

The only module importing ``prometheus_client``. Metrics live in a registry of their own (one per
agent: no module globals), named ``gen_agent_*``:

    gen_agent_reconcile_duration_seconds        histogram, by result
    gen_agent_reconciles_total                  counter, by result (synced, degraded, failed,
                                                refused)
    gen_agent_last_success_timestamp_seconds    gauge: end of the last reconcile that synced
    gen_agent_last_reconcile_timestamp_seconds  gauge: end of the last reconcile, whatever its
                                                result
    gen_agent_sync_ok                           gauge: 1 if the last reconcile synced, else 0
    gen_agent_applied_commit_info               gauge = 1, labels commit and branch: the last
                                                commit applied completely (no object failed)
    gen_agent_attempted_commit_info             gauge = 1, labels commit and branch: the commit
                                                the last reconcile tried to apply
    gen_agent_objects                           gauge: members of the set
    gen_agent_objects_applied_total             counter: objects written (not the unchanged ones)
    gen_agent_objects_pruned_total              counter
    gen_agent_failures_total                    counter, by reason (source, signature, manifests,
                                                api, apply, prune, prune-guard, health, n9e, status,
                                                internal, rollback)
    gen_agent_signature_refusals_total          counter: tips and envelopes refused for their
                                                signatures
    gen_agent_interval_seconds                  gauge: the configured interval (stale alerts use it)
    gen_agent_release                           gauge: number of the release applied completely
                                                (the one the cluster runs)
    gen_agent_last_healthy_release              gauge: number of the last release that became
                                                healthy
    gen_agent_rollback_active                   gauge: 1 while an automatic rollback holds the
                                                cluster at the last healthy release, else 0
    gen_agent_rollbacks_total                   counter: automatic rollbacks started
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

REASONS = (
    "source",
    "signature",
    "manifests",
    "api",
    "apply",
    "prune",
    "prune-guard",
    "health",
    "n9e",
    "status",
    "internal",
    "rollback",
)


class Metrics:
    """The agent's metrics in their own registry."""

    def __init__(self, interval: float) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.duration = Histogram(
            "gen_agent_reconcile_duration_seconds",
            "Time of one reconcile.",
            ["result"],
            registry=r,
            buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
        )
        self.reconciles = Counter(
            "gen_agent_reconciles", "Reconciles by result.", ["result"], registry=r
        )
        self.last_success = Gauge(
            "gen_agent_last_success_timestamp_seconds",
            "Unix time the last synced reconcile ended.",
            registry=r,
        )
        self.last_reconcile = Gauge(
            "gen_agent_last_reconcile_timestamp_seconds",
            "Unix time the last reconcile ended.",
            registry=r,
        )
        self.sync_ok = Gauge(
            "gen_agent_sync_ok", "1 if the last reconcile synced, else 0.", registry=r
        )
        self.commit = Gauge(
            "gen_agent_applied_commit_info",
            "The last commit applied completely.",
            ["commit", "branch"],
            registry=r,
        )
        self.attempted = Gauge(
            "gen_agent_attempted_commit_info",
            "The commit the last reconcile tried to apply.",
            ["commit", "branch"],
            registry=r,
        )
        self.objects = Gauge("gen_agent_objects", "Members of the agent's ApplySet.", registry=r)
        self.applied = Counter(
            "gen_agent_objects_applied", "Objects written by server-side apply.", registry=r
        )
        self.pruned = Counter("gen_agent_objects_pruned", "Objects deleted by pruning.", registry=r)
        self.failures = Counter("gen_agent_failures", "Failures by reason.", ["reason"], registry=r)
        self.refusals = Counter(
            "gen_agent_signature_refusals",
            "Commits or envelopes refused for their signature.",
            registry=r,
        )
        self.release = Gauge(
            "gen_agent_release",
            "Number of the release applied completely (the one the cluster runs).",
            registry=r,
        )
        self.last_healthy = Gauge(
            "gen_agent_last_healthy_release",
            "Number of the last release that became healthy.",
            registry=r,
        )
        self.rollback_active = Gauge(
            "gen_agent_rollback_active",
            "1 while an automatic rollback holds the cluster at the last healthy release.",
            registry=r,
        )
        self.rollbacks = Counter("gen_agent_rollbacks", "Automatic rollbacks started.", registry=r)
        Gauge(
            "gen_agent_interval_seconds", "Configured seconds between reconciles.", registry=r
        ).set(interval)
        for reason in REASONS:
            self.failures.labels(
                reason
            )  # present from the start, so rate() works on the first failure

    def set_commit(self, commit: str, branch: str) -> None:
        """Show ``commit`` as the one applied completely (the previous label set is removed)."""
        self.commit.clear()
        self.commit.labels(commit, branch).set(1)

    def set_attempted(self, commit: str, branch: str) -> None:
        """Show ``commit`` as the one being applied (the previous label set is removed)."""
        self.attempted.clear()
        self.attempted.labels(commit, branch).set(1)

    def text(self) -> bytes:
        """The exposition format of every metric."""
        return generate_latest(self.registry)


def serve(
    metrics: Metrics, address: str, port: int, alive: Callable[[], bool]
) -> ThreadingHTTPServer:
    """Serve ``/metrics`` and ``/healthz`` (200 while ``alive()``, else 503) on a daemon thread."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] == "/metrics":
                self._send(200, metrics.text(), CONTENT_TYPE_LATEST)
            elif self.path.split("?")[0] in ("/healthz", "/livez", "/readyz"):
                ok = alive()
                self._send(
                    200 if ok else 503, b"ok\n" if ok else b"reconcile loop stuck\n", "text/plain"
                )
            else:
                self._send(404, b"not found\n", "text/plain")

        def _send(self, code: int, body: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer((address, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="gen-agent-metrics", daemon=True).start()
    return server
