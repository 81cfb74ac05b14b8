"""Test-suite set-up: shared fixtures, and markers for the tests that need a real server.

Markers (added here from the fixtures a test uses, so they cannot be forgotten):
- ``kube``: needs the real etcd + kube-apiserver (``control_plane``);
- ``n9e``: needs a real Nightingale (``real_n9e``, or the "real" case of an API fixture).
``pytest -m "not kube and not n9e"`` runs everything else.
"""

from __future__ import annotations

import os

import pytest

pytest_plugins = [
    "tests.support.project",
    "tests.support.ferry",
    "tests.support.agent",
    "tests.support.secrets",
    "tests.support.n9e",
    "tests.support.browser",
]

SERVER_MARKERS = {"kube": "control_plane", "n9e": "real_n9e"}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "kube: needs a real etcd + kube-apiserver (tools/build-envtest.sh)"
    )
    config.addinivalue_line("markers", "n9e: needs a real Nightingale server (tools/build-n9e.sh)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        for marker, fixture in SERVER_MARKERS.items():
            if fixture in used:
                item.add_marker(getattr(pytest.mark, marker))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """With GEN_NO_SKIP=1 (CI), a skipped test fails: every test must run somewhere."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get("GEN_NO_SKIP") == "1" and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.longrepr = f"skipped, but GEN_NO_SKIP=1 forbids skips: {reason}"
