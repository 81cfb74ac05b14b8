"""Wire a real agent together: Kubernetes client, metrics (served over HTTP), the loop."""

from __future__ import annotations

from collections.abc import Callable

from generator.run.agent import kube, metrics
from generator.run.agent.loop import Agent
from generator.run.agent.settings import Settings


def agent(settings: Settings, log: Callable[[str], None], serve: bool = True) -> Agent:
    """An agent connected to the cluster;
    with ``serve`` its ``/metrics`` and ``/healthz`` are up."""
    client = kube.connect(settings.kubeconfig, settings.context, settings.request_timeout)
    registry = metrics.Metrics(settings.interval)
    built = Agent(settings, client, registry, log)
    if serve and settings.metrics_port >= 0:
        metrics.serve(registry, settings.metrics_address, settings.metrics_port, built.alive)
    return built
