"""Releases at the site, against a real kube-apiserver and real SSH-signed deploy commits whose
messages carry the ``Release`` trailers: the release the agent runs and the last healthy one in
status, Events, metrics and the log, and the opt-in automatic rollback.

envtest has no kubelet and no controllers: a thread plays the Deployment controller and reports
a rollout complete only for images that are not ``broken`` (pods that never become ready).
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from typer.testing import CliRunner

from generator.cli import app
from generator.run.agent import releases
from generator.run.agent.loop import Agent
from tests.support.agent import Poller, Site, configmap, deployment, metric

HEALTHY = "registry.local/app:1"
BROKEN = "registry.local/app:broken"


def message(number: int, name: str = "", rollback_to: int | None = None) -> str:
    lines = [f"Release: {number}"]
    lines += [f"Release-Name: {name}"] if name else []
    lines += [f"Rollback-To: {rollback_to}"] if rollback_to else []
    return "deploy test\n\n" + "\n".join(lines) + "\n"


class Rollouts(Poller):
    """Plays the Deployment controller of the site's namespace: a Deployment whose image is not
    ``BROKEN`` has its rollout reported complete; a broken one is never observed."""

    def __init__(self, site: Site) -> None:
        super().__init__()
        self.site = site
        self.res = site.admin.resource("apps/v1", "Deployment")

    def tick(self) -> None:
        for live in self.site.admin.list(self.res, self.site.namespace):
            image = live["spec"]["template"]["spec"]["containers"][0]["image"]
            generation = live["metadata"]["generation"]
            if image == BROKEN or live.get("status", {}).get("observedGeneration") == generation:
                continue
            want = live["spec"].get("replicas", 1)
            live["status"] = {
                "observedGeneration": generation,
                "replicas": want,
                "updatedReplicas": want,
                "readyReplicas": want,
                "availableReplicas": want,
            }
            try:
                self.site.admin.update_status(self.res, live)
            except Exception:  # a newer generation was written meanwhile: next look
                pass


def events(site: Site) -> list[dict[str, Any]]:
    return site.admin.list(site.admin.resource("v1", "Event"), site.agent_namespace)


def image(site: Site, name: str) -> str:
    live = site.get("apps/v1", "Deployment", name)
    assert live is not None, name
    return str(live["spec"]["template"]["spec"]["containers"][0]["image"])


def logging_agent(site: Site, **changes: Any) -> tuple[Agent, list[str]]:
    lines: list[str] = []
    agent = site.agent(**changes)
    agent.log = lines.append
    return agent, lines


def claim(name: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }


def statefulset(name: str, namespace: str) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "serviceName": name,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "db", "image": "registry.local/db:1"}]},
            },
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "data"},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "1Gi"}},
                    },
                }
            ],
        },
    }


# -- the release the agent runs --------------------------------------------------------------------


def test_the_release_shows_in_status_events_metrics_and_the_log(site: Site) -> None:
    first = site.branch.commit([configmap("a", site.namespace)], message=message(1, "first"))
    agent, log = logging_agent(site)
    assert agent.reconcile().ok
    status = site.status()
    assert (status["release"], status["releaseName"]) == ("1", "first")
    assert (status["lastHealthyRelease"], status["lastHealthyCommit"]) == ("1", first)
    assert status["rollback"] == ""
    assert metric(agent, "gen_agent_release") == 1.0
    assert metric(agent, "gen_agent_last_healthy_release") == 1.0
    assert metric(agent, "gen_agent_rollback_active") == 0.0
    assert f"running release 1 (first), commit {first[:12]}; last healthy: release 1 (first)" in log
    applied = [e["message"] for e in events(site) if e["reason"] == "ReleaseApplied"]
    assert applied == [f"release 1 (first) applied: commit {first[:12]}"]

    second = site.branch.commit([configmap("a", site.namespace, v="2")], message=message(2))
    assert agent.reconcile().ok
    assert (site.status()["release"], site.status()["releaseName"]) == ("2", "")
    assert metric(agent, "gen_agent_release") == 2.0
    assert any(line.startswith("running release 2, commit") for line in log)
    applied = [e["message"] for e in events(site) if e["reason"] == "ReleaseApplied"]
    assert sorted(applied) == sorted(
        [
            f"release 1 (first) applied: commit {first[:12]}",
            f"release 2 applied: commit {second[:12]}",
        ]
    )
    log.clear()
    assert agent.reconcile().ok  # the same release again: no event, no log line about it
    assert len([e for e in events(site) if e["reason"] == "ReleaseApplied"]) == 2
    assert not any(line.startswith("running release") for line in log)


def test_commits_published_before_releases_are_numbered_by_their_position(site: Site) -> None:
    site.branch.commit([configmap("a", site.namespace)])
    site.branch.commit([configmap("a", site.namespace, v="2")])
    third = site.branch.commit([configmap("a", site.namespace, v="3")])
    agent = site.agent()
    result = agent.reconcile()
    assert result.release == releases.Running(3, third)
    assert site.status()["release"] == "3"


def test_a_rollback_release_made_by_gen_rollback_says_what_it_restores(site: Site) -> None:
    site.branch.commit([configmap("a", site.namespace)], message=message(4, rollback_to=1))
    result = site.agent().reconcile()
    assert result.release is not None and result.release.label == "release 4 (restores 1)"
    assert any(e["message"].startswith("release 4 (restores 1) applied") for e in events(site))


def test_a_malformed_release_trailer_is_noted_and_the_commit_numbered_by_position(
    site: Site,
) -> None:
    site.branch.commit([configmap("a", site.namespace)], message="deploy test\n\nRelease: seven\n")
    result = site.agent().reconcile()
    assert result.ok and result.release is not None and result.release.number == 1
    assert any("'seven' is not a release number" in note for note in result.notes)


# -- the last healthy release ----------------------------------------------------------------------


def test_the_last_healthy_release_is_remembered_across_restarts(site: Site) -> None:
    with Rollouts(site):
        healthy = site.branch.commit(
            [deployment("web", site.namespace, image=HEALTHY)], message=message(1)
        )
        assert site.agent(health_timeout=30.0).reconcile().ok
        site.branch.commit([deployment("web", site.namespace, image=BROKEN)], message=message(2))
        result = site.agent().reconcile()  # a new agent: a restarted pod
    assert result.reasons == ("health",)
    assert result.last_healthy == releases.Running(1, healthy)
    status = site.status()
    assert (status["release"], status["lastHealthyRelease"]) == ("2", "1")
    assert status["rollback"] == "" and "not yet observed" in status["unhealthy"]

    saved = site.settings.state_dir / releases.STATE
    assert json.loads(saved.read_text())["last_healthy"]["commit"] == healthy
    saved.unlink()  # state volume lost: the status ConfigMap still knows
    agent = site.agent()
    assert agent.reconcile().last_healthy == releases.Running(1, healthy)
    assert metric(agent, "gen_agent_last_healthy_release") == 1.0


# -- automatic rollback ----------------------------------------------------------------------------


def test_with_automatic_rollback_off_an_unhealthy_release_stays_and_is_reported(
    site: Site,
) -> None:
    with Rollouts(site):
        site.branch.commit([deployment("web", site.namespace, image=HEALTHY)], message=message(1))
        assert site.agent(health_timeout=30.0).reconcile().ok
        site.branch.commit([deployment("web", site.namespace, image=BROKEN)], message=message(2))
        agent = site.agent(health_timeout=1.0)
        result = agent.reconcile()
        assert result.result == "degraded" and result.reasons == ("health",)
        assert not result.rolled_back and agent.reconcile().reasons == ("health",)
    assert image(site, "web") == BROKEN
    status = site.status()
    assert (status["release"], status["lastHealthyRelease"], status["rollback"]) == ("2", "1", "")
    assert metric(agent, "gen_agent_rollbacks_total") == 0.0
    assert metric(agent, "gen_agent_release") == 2.0
    assert "Unhealthy" in {e["reason"] for e in events(site)}
    assert "RolledBack" not in {e["reason"] for e in events(site)}


def test_a_release_that_never_becomes_healthy_is_rolled_back_and_held_until_a_newer_one(
    site: Site,
) -> None:
    ns = site.namespace
    with Rollouts(site):
        healthy = site.branch.commit(
            [configmap("settings", ns, v="1"), deployment("web", ns, image=HEALTHY)],
            message=message(1, "good"),
        )
        assert site.agent(health_timeout=30.0).reconcile().ok

        # release 2: web's pods never become ready; it also brings objects that hold data
        failed = site.branch.commit(
            [
                configmap("settings", ns, v="2"),
                deployment("web", ns, image=BROKEN),
                deployment("extra", ns, image=BROKEN),
                claim("data", ns),
                statefulset("db", ns),
            ],
            message=message(2, "bad"),
        )
        # release 2 waits the whole timeout; the rollback round ends as soon as the controller
        # thread reports web's rollout of image 1 (3 s: margin for a loaded machine)
        agent, log = logging_agent(site, auto_rollback=True, health_timeout=3.0)
        result = agent.reconcile()

        assert result.rolled_back and result.reasons[0] == "rollback"
        assert result.result == "degraded" and result.reasons == ("rollback",), result
        assert result.commit == healthy and result.release == releases.Running(1, healthy, "good")
        assert image(site, "web") == HEALTHY
        settings = site.get("v1", "ConfigMap", "settings")
        assert settings is not None and settings["data"] == {"v": "1"}
        assert site.get("apps/v1", "Deployment", "extra") is None  # pruned: holds no data
        # what could lose data is kept as release 2 made it, and listed as retained
        assert site.get("v1", "PersistentVolumeClaim", "data") is not None
        assert site.get("apps/v1", "StatefulSet", "db") is not None
        retained = dict(result.retained)
        assert "not allowed" in retained[f"PersistentVolumeClaim {ns}/data"]
        assert "automatic rollback" in retained[f"StatefulSet.apps {ns}/db"]

        status = site.status()
        assert (status["release"], status["releaseName"]) == ("1", "good")
        assert (status["lastHealthyRelease"], status["lastHealthyCommit"]) == ("1", healthy)
        assert status["lastAppliedCommit"] == healthy
        assert status["rollback"].startswith(
            f"automatic rollback: release 2 (bad) (commit {failed[:12]}) did not become healthy "
            "within 3s ("
        )
        assert "returned to the last healthy release 1 (good)" in status["rollback"]
        assert "holding there until a release newer than 2 arrives" in status["rollback"]
        warnings = [e for e in events(site) if e["reason"] == "RolledBack"]
        assert len(warnings) == 1 and warnings[0]["type"] == "Warning"
        assert warnings[0]["message"].startswith("automatic rollback: release 2 (bad)")
        assert metric(agent, "gen_agent_rollbacks_total") == 1.0
        assert metric(agent, "gen_agent_rollback_active") == 1.0
        assert metric(agent, "gen_agent_release") == 1.0
        assert metric(agent, "gen_agent_sync_ok") == 0.0
        assert any(
            line.startswith("AUTOMATIC ROLLBACK: automatic rollback: release 2") for line in log
        )
        assert any(line.startswith("running release 1 (good)") for line in log)

        # the failed tip is still the branch's tip: the agent does not move forward ...
        again = agent.reconcile()
        assert not again.rolled_back and again.commit == healthy
        assert again.reasons == ("rollback",) and image(site, "web") == HEALTHY
        assert metric(agent, "gen_agent_rollbacks_total") == 1.0
        # ... not after a restart either
        restarted = site.agent(auto_rollback=True, health_timeout=3.0).reconcile()
        assert restarted.commit == healthy and image(site, "web") == HEALTHY
        assert restarted.reasons == ("rollback",)
        assert len([e for e in events(site) if e["reason"] == "RolledBack"]) == 1
        # ... nor after one that lost its state volume: the status ConfigMap keeps the hold too
        assert json.loads(site.status()[releases.HOLD_KEY])["failed"]["commit"] == failed
        (site.settings.state_dir / releases.STATE).unlink()
        lost = site.agent(auto_rollback=True, health_timeout=3.0).reconcile()
        assert lost.commit == healthy and image(site, "web") == HEALTHY
        assert lost.reasons == ("rollback",) and lost.rollback == result.rollback
        assert len([e for e in events(site) if e["reason"] == "RolledBack"]) == 1

        # a newer release arrives: the hold ends and the agent moves forward again
        fixed = site.branch.commit(
            [configmap("settings", ns, v="3"), deployment("web", ns, image=HEALTHY)],
            message=message(3, "fixed"),
        )
        agent.settings = replace(agent.settings, health_timeout=30.0)
        result = agent.reconcile()
    assert result.ok and result.commit == fixed and not result.rollback, result
    assert any(
        "release 3 (fixed) arrived: the automatic rollback from release 2 (bad) ends" in line
        for line in log
    )
    status = site.status()
    assert (status["release"], status["lastHealthyRelease"], status["rollback"]) == ("3", "3", "")
    assert status[releases.HOLD_KEY] == ""
    assert metric(agent, "gen_agent_rollback_active") == 0.0
    assert metric(agent, "gen_agent_release") == 3.0
    # release 3 no longer has them: the claim stays (prune never deletes claims), the rest goes
    assert site.get("v1", "PersistentVolumeClaim", "data") is not None
    assert site.get("apps/v1", "StatefulSet", "db") is None


def test_an_unhealthy_object_the_release_did_not_change_is_not_rolled_back(site: Site) -> None:
    ns = site.namespace
    site.branch.commit([configmap("a", ns)], message=message(1))
    assert site.agent().reconcile().ok
    with Rollouts(site):
        site.branch.commit(
            [configmap("a", ns), deployment("web", ns, image=HEALTHY)], message=message(2)
        )
        assert site.agent(health_timeout=30.0).reconcile().ok
    # the rollout of release 2 is healthy; release 3 changes only a ConfigMap, then web breaks
    site.branch.commit(
        [configmap("a", ns, v="3"), deployment("web", ns, image=HEALTHY)], message=message(3)
    )
    web = site.get("apps/v1", "Deployment", "web")
    assert web is not None
    web["status"] = {"observedGeneration": web["metadata"]["generation"], "replicas": 1}
    site.admin.update_status(site.admin.resource("apps/v1", "Deployment"), web)
    result = site.agent(auto_rollback=True, health_timeout=0.5).reconcile()
    assert result.reasons == ("health",) and not result.rolled_back
    assert any(
        "every unhealthy object is the same in the last healthy release 2" in n
        for n in result.notes
    )
    assert site.status()["release"] == "3" and site.status()["rollback"] == ""


def test_gen_agent_run_once_with_auto_rollback_reports_the_rollback_as_json(
    site: Site, control_plane: Any
) -> None:
    with Rollouts(site):
        site.branch.commit([deployment("web", site.namespace, image=HEALTHY)], message=message(1))
        assert site.agent(health_timeout=30.0).reconcile().ok
        site.branch.commit([deployment("web", site.namespace, image=BROKEN)], message=message(2))
        s = site.settings
        args = [
            "agent", "run", "--once", "-o", "json", "--site", s.site,
            "--git-url", str(site.branch.path), "--allowed-signers", str(s.allowed_signers),
            "--state-dir", str(s.state_dir), "--namespace", s.namespace,
            "--kubeconfig", str(control_plane.kubeconfig), "--metrics-port", "-1",
            "--health-timeout", "3s",
        ]  # fmt: skip
        result = CliRunner().invoke(app, args, env={"GEN_AGENT_AUTO_ROLLBACK": "true"})
    assert result.exit_code == 1, result.output
    out = json.loads(result.stdout)
    assert out["release"]["number"] == 1 and out["last_healthy_release"]["number"] == 1
    assert out["rollback"].startswith("automatic rollback: release 2 ")
    assert out["reasons"] == ["rollback"] and out["rolled_back"] is True
    assert image(site, "web") == HEALTHY


def test_turning_automatic_rollback_off_ends_the_hold_and_applies_the_tip(site: Site) -> None:
    with Rollouts(site):
        site.branch.commit([deployment("web", site.namespace, image=HEALTHY)], message=message(1))
        assert site.agent(health_timeout=30.0).reconcile().ok
        failed = site.branch.commit(
            [deployment("web", site.namespace, image=BROKEN)], message=message(2)
        )
        assert site.agent(auto_rollback=True, health_timeout=3.0).reconcile().rolled_back
        agent, log = logging_agent(site, health_timeout=1.0)  # the site opted out again
        result = agent.reconcile()
    assert result.commit == failed and result.reasons == ("health",) and not result.rollback
    assert image(site, "web") == BROKEN
    assert any(
        "automatic rollback is off: the hold at release 1 ends, release 2 is applied again" in line
        for line in log
    )
    assert site.status()["rollback"] == "" and site.status()["release"] == "2"
