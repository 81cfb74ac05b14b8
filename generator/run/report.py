"""``gen agent report``: inside the site, the agent's status ConfigMap as a small signed file
(``formats/agent_report.py``) that someone carries out by hand for ``gen fleet --import-report``.

It reads the status the agent already keeps (``run/agent/status.py``: result, commit and, once the
agent reports releases, ``release``, ``releaseName``, ``lastHealthyRelease``, ``rollback``) and
signs it with an SSH key the way deploy commits and envelopes are signed (``ssh-keygen -Y sign``),
under a namespace of its own. It changes nothing in the cluster.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from generator.core import fsutil
from generator.core.errors import GenError
from generator.deliver.git import sign
from generator.formats import agent_report
from generator.run.agent.kube import Kube


@dataclass(frozen=True)
class Settings:
    """Where the status is and how the report is signed."""

    namespace: str
    """The agent's namespace (its status ConfigMap's)."""
    status_name: str
    """The status ConfigMap's name (``<agent name>-status``)."""
    signing_key: Path
    signer: str = ""
    """The key's principal in the outside's allowed signers file ("": ``gen-agent@<site>``)."""
    site: str = ""
    """The site the report must be about ("" takes the status's own ``site``)."""


def status(kube: Kube, namespace: str, name: str) -> dict[str, str]:
    """The data of the agent's status ConfigMap; a GenError when there is none."""
    found = kube.get(kube.resource("v1", "ConfigMap"), namespace, name)
    if found is None:
        raise GenError(
            f"no ConfigMap {namespace}/{name}: is the agent running in namespace {namespace} "
            "(--namespace) with that name (--name)?"
        )
    data = found.get("data") or {}
    return {str(k): str(v) for k, v in data.items()}


def report(kube: Kube, settings: Settings, now: datetime) -> agent_report.Report:
    """The report of the current status (not yet signed)."""
    data = status(kube, settings.namespace, settings.status_name)
    site = data.get("site", "")
    if settings.site and site and settings.site != site:
        raise GenError(
            f"ConfigMap {settings.namespace}/{settings.status_name} is the status of site "
            f"{site}, not {settings.site}"
        )
    site = settings.site or site
    if not site:
        raise GenError(
            f"ConfigMap {settings.namespace}/{settings.status_name} names no site; pass --site"
        )
    return agent_report.make(site, settings.signer or f"gen-agent@{site}", now, data)


def write(kube: Kube, settings: Settings, out: Path, now: datetime) -> agent_report.Report:
    """Sign the report of the current status and write it to ``out`` (atomically)."""
    made = report(kube, settings, now)
    signature = sign.sign(made.to_json(), settings.signing_key, agent_report.NAMESPACE)
    fsutil.write_atomic(out, agent_report.seal(made, signature), durable=True)
    return made
