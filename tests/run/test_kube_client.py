"""The agent's Kubernetes client against servers that do not answer as they should."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from generator.run.agent import kube


@pytest.fixture
def blackhole() -> Iterator[int]:
    """A loopback port that never completes a TCP handshake: its accept queue is full and never
    drained, so the kernel drops new SYNs, as a firewall or an unrouted address would."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    held = []
    for _ in range(3):
        client = socket.socket()
        client.setblocking(False)
        client.connect_ex(("127.0.0.1", port))
        held.append(client)
    time.sleep(0.2)
    try:
        yield port
    finally:
        for client in held:
            client.close()
        server.close()


def kubeconfig(tmp_path: Path, port: int) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        f"clusters: [{{name: c, cluster: {{server: 'https://127.0.0.1:{port}', "
        "insecure-skip-tls-verify: true}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u}}]\n"
    )
    return path


def test_a_server_that_drops_packets_fails_an_attempt_at_the_connect_timeout(
    tmp_path: Path, blackhole: int
) -> None:
    client = kube.connect(kubeconfig(tmp_path, blackhole), timeout=60.0)
    started = time.monotonic()
    with pytest.raises(kube.Unavailable, match="the API server cannot be reached"):
        client._once("GET", "/api/v1/namespaces", [], None, "application/json")
    assert time.monotonic() - started < kube.CONNECT_TIMEOUT + 3
