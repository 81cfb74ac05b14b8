"""Test-suite set-up: shared fixtures, and markers for the tests that need a real server.

Markers (added here from the fixtures a test uses, so they cannot be forgotten):
- ``kube``: needs the real etcd + kube-apiserver (``control_plane``);
- ``n9e``: needs a real Nightingale (``real_n9e``, or the "real" case of an API fixture).
``pytest -m "not kube and not n9e"`` runs everything else.
"""

from __future__ import annotations

import pytest

pytest_plugins = [
    "tests.support.project",
    "tests.support.ferry",
    "tests.support.agent",
    "tests.support.secrets",
]

SERVER_MARKERS = {"kube": "control_plane", "n9e": "real_n9e"}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "kube: needs a real etcd + kube-apiserver (tools/build-envtest.sh)")
    config.addinivalue_line("markers", "n9e: needs a real Nightingale server (tools/build-n9e.sh)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        for marker, fixture in SERVER_MARKERS.items():
            if fixture in used:
                item.add_marker(getattr(pytest.mark, marker))
