"""Cross-checks a component type asks for by name (``"x-gen-checks"`` in its schema.json).

A JSON Schema cannot say "this ingress port is one of the service's ports"; these checks can. They
run on every service (enabled or not) of a component that names them, once its parameters have
the shape its schema describes, before defaults are filled in: a check reads a parameter the
schema does not require with ``.get``. Each yields located problems.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from generator.core.errors import Problem

At = Callable[..., Callable[[str], Problem]]
"""``at(*path)(message)``: a problem located at ``path`` under the service."""


@dataclass(frozen=True)
class Service:
    """One service as a check sees it: its parameters, the site's, and where to point."""

    name: str
    params: dict[str, Any]
    site: dict[str, Any]
    at: At


Check = Callable[[Service], Iterator[Problem]]


def unique_ports(svc: Service) -> Iterator[Problem]:
    """Port numbers, and the port names that are set, are unique within the service."""
    ports = svc.params.get("ports", [])
    yield from _unique([p["port"] for p in ports], lambda i: svc.at("ports", i, "port"), "port")
    yield from _unique(
        [p.get("name") for p in ports if p.get("name")],
        lambda i: svc.at("ports", i, "name"),
        "port name",
    )


def unique_mounts(svc: Service) -> Iterator[Problem]:
    """volumes, host_paths and config (mounted as ``config``) share one list of volume names."""
    params = svc.params
    mounts = [v["name"] for v in params.get("volumes", [])]
    mounts += [h["name"] for h in params.get("host_paths", [])]
    if "config" in params:
        mounts.append("config")
    yield from _unique(
        mounts, lambda i: svc.at(), "volume name (volumes, host_paths and config share one list)"
    )


def ingress(svc: Service) -> Iterator[Problem]:
    """Each ingress routes to one of the service's ports, on one of the site's ingress IPs, under
    a name no other ingress of the service has."""
    port_numbers = [p["port"] for p in svc.params.get("ports", [])]
    ips = svc.site["ingress"].get("ips", [])
    entries = svc.params.get("ingress", [])
    for i, entry in enumerate(entries):
        if entry["port"] not in port_numbers:
            yield svc.at("ingress", i, "port")(
                f"port {entry['port']} is not one of the service's ports {port_numbers}"
            )
        if "ip" in entry and entry["ip"] not in ips:
            yield svc.at("ingress", i, "ip")(
                f"{entry['ip']} is not one of the site's ingress ips {ips}"
            )
    names = [e.get("name") or f"{svc.name}-{e['port']}" for e in entries]
    yield from _unique(
        names, lambda i: svc.at("ingress", i), "ingress name (set name: on one of them)"
    )


CHECKS: dict[str, Check] = {
    "unique-ports": unique_ports,
    "unique-mounts": unique_mounts,
    "ingress": ingress,
}
"""Every check a component schema may name, by the name it uses."""


def _unique(
    values: list[Any], where: Callable[[int], Callable[[str], Problem]], what: str
) -> Iterator[Problem]:
    seen: set[Any] = set()
    for i, value in enumerate(values):
        if value in seen:
            yield where(i)(f"duplicate {what} {value!r}")
        seen.add(value)
