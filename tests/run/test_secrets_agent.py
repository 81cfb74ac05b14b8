"""The agent opens EncryptedSecrets at apply time: Secrets in the real API server, pruned like the
rest, another site's ciphertext refused by name, and no value in its status, Events or log.

Uses the agent's own test world (``tests.support.agent``): a control plane for the session, a
signed deploy branch and namespaces per test.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from generator.build import secret_store as store
from generator.formats import age as crypto
from generator.formats import encrypted_secret as encrypted
from generator.run.agent.loop import Agent
from tests.support.agent import Site, configmap


@pytest.fixture
def site_key(tmp_path: Path) -> tuple[Path, str]:
    """This site's identity file (as mounted from the gen-agent-age Secret) and its recipient."""
    path = tmp_path / "age" / "identity"
    path.parent.mkdir()
    return path, store.keygen(path)


def sealed(site: Site, recipient: str, **values: bytes) -> dict[str, Any]:
    return encrypted.build(
        "app-secrets",
        site.namespace,
        {"app": "app"},
        "Opaque",
        {k: crypto.encrypt(v, [recipient]).decode() for k, v in values.items()},
    )


def live_values(site: Site) -> dict[str, bytes] | None:
    secret = site.get("v1", "Secret", "app-secrets")
    return None if secret is None else {k: base64.b64decode(v) for k, v in secret["data"].items()}


def logged(site: Site, log: list[str], **changes: Any) -> Agent:
    """An agent of the site whose log lines go to ``log``."""
    agent = site.agent(**changes)
    agent.log = log.append
    return agent


def everything_the_agent_told(site: Site, log: list[str]) -> str:
    """Its log lines, status ConfigMap and Events, as one text to search."""
    events = site.admin.list(site.admin.resource("v1", "Event"), site.agent_namespace)
    return "\n".join(
        [*log, json.dumps(site.status()), json.dumps([e.get("message", "") for e in events])]
    )


def test_the_agent_applies_the_decrypted_secret_and_prunes_it_when_it_leaves(
    site: Site, site_key: tuple[Path, str]
) -> None:
    key, recipient = site_key
    site.branch.commit(
        [sealed(site, recipient, PASSWORD=b"agent-pw-1"), configmap("c", site.namespace)]
    )
    log: list[str] = []
    assert logged(site, log, age_identity=key).reconcile().errors == ()
    assert live_values(site) == {"PASSWORD": b"agent-pw-1"}
    live = site.get("v1", "Secret", "app-secrets")
    assert live is not None and live["metadata"]["labels"]["app"] == "app"
    site.branch.commit([configmap("c", site.namespace)])
    result = logged(site, log, age_identity=key).reconcile()
    assert [str(oid) for oid in result.pruned] == [f"Secret {site.namespace}/app-secrets"]
    assert live_values(site) is None
    assert "agent-pw-1" not in everything_the_agent_told(site, log)


def test_rotation_reaches_the_cluster_through_the_agent(
    site: Site, site_key: tuple[Path, str]
) -> None:
    key, recipient = site_key
    site.branch.commit([sealed(site, recipient, PASSWORD=b"before")])
    site.agent(age_identity=key).reconcile()
    site.branch.commit([sealed(site, recipient, PASSWORD=b"after")])
    result = site.agent(age_identity=key).reconcile()
    assert [str(oid) for oid in result.applied] == [f"Secret {site.namespace}/app-secrets"]
    assert live_values(site) == {"PASSWORD": b"after"}


def test_another_sites_ciphertext_is_refused_by_name_and_the_live_secret_is_kept(
    site: Site, site_key: tuple[Path, str], tmp_path: Path
) -> None:
    key, recipient = site_key
    other_site = store.keygen(tmp_path / "other.key")
    site.branch.commit([sealed(site, recipient, PASSWORD=b"ours")])
    site.agent(age_identity=key).reconcile()
    site.branch.commit([sealed(site, other_site, PASSWORD=b"theirs-value")])
    log: list[str] = []
    result = logged(site, log, age_identity=key).reconcile()
    assert result.result == "degraded" and "apply" in result.reasons
    [(what, why)] = result.errors
    assert what == f"Secret {site.namespace}/app-secrets"
    assert (
        f"EncryptedSecret {site.namespace}/app-secrets key PASSWORD "
        f"is not encrypted to the identity in {key}" in why
    )
    assert live_values(site) == {"PASSWORD": b"ours"}  # kept: neither replaced nor pruned
    told = everything_the_agent_told(site, log)
    assert (
        "key PASSWORD is not encrypted to" in told
        and "theirs-value" not in told
        and "ours" not in told
    )


def test_without_a_mounted_key_each_encrypted_secret_fails_and_the_rest_applies(
    site: Site, site_key: tuple[Path, str]
) -> None:
    _, recipient = site_key
    site.branch.commit([sealed(site, recipient, PASSWORD=b"v"), configmap("c", site.namespace)])
    result = site.agent().reconcile()
    [(what, why)] = result.errors
    assert what == f"Secret {site.namespace}/app-secrets" and "no age identity is configured" in why
    assert site.get("v1", "ConfigMap", "c") is not None and live_values(site) is None
