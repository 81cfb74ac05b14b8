"""No test traffic leaves the machine: the session runs in a network namespace with only loopback.

``tools/offline`` (used by ``make test`` and CI) runs pytest under ``unshare -n`` and sets
GEN_OFFLINE=1; every server the tests start inherits that namespace. Outside it this test skips,
and GEN_NO_SKIP=1 (CI) turns the skip into a failure.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    os.environ.get("GEN_OFFLINE") != "1",
    reason="not run through tools/offline (GEN_OFFLINE=1 unset)",
)


def _routes(path: str, device_column: int) -> list[str]:
    """Interfaces named by the kernel's routing table (``/proc/net/route`` or ``ipv6_route``)."""
    table = Path(path)
    if not table.exists():
        return []
    rows = [line.split() for line in table.read_text().splitlines()]
    return [row[device_column] for row in rows if len(row) > device_column and row[0] != "Iface"]


def test_the_session_has_no_route_beyond_loopback() -> None:
    devices = set(_routes("/proc/net/route", 0)) | set(_routes("/proc/net/ipv6_route", 9))
    assert devices <= {"lo"}, (
        f"routes through {sorted(devices - {'lo'})}: the tests could reach out"
    )
    interfaces = {name for _, name in socket.if_nameindex()}  # this namespace's (not /sys's)
    assert interfaces == {"lo"}, f"interfaces besides lo: {sorted(interfaces - {'lo'})}"


def test_an_address_beyond_loopback_is_unreachable() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe, pytest.raises(OSError):
        probe.connect(("192.0.2.1", 53))  # ENETUNREACH; TEST-NET-1 is never a real host anyway
