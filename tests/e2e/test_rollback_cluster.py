"""Rollback end to end against a real kube-apiserver: publish releases 1, 2, 3, roll back to 1,
and the real agent (which knows nothing of rollbacks: it is one more signed release) makes the
cluster hold release 1's objects again. Then ``gen agent report`` signs the agent's real status
ConfigMap and ``gen fleet --import-report`` verifies it and shows it for the site."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from generator.cli import app as gen_app
from generator.deliver import fleet, publish, releases, rollback
from generator.deliver.git.repo import open_repo
from generator.formats import agent_report
from generator.run import report as reporter
from tests.support.agent import Site, configmap, metric, site_files
from tests.support.ferry import IDENTITY, git, make_key


def _publish(root: Path, site: Site, objs: list[dict[str, Any]], name: str = "") -> int:
    """Commit ``objs`` as the site's compiled output and publish it; the release number."""
    directory = root / "compiled" / site.branch.site
    shutil.rmtree(directory, ignore_errors=True)
    for rel, data in site_files(objs).items():
        (directory / rel).parent.mkdir(parents=True, exist_ok=True)
        (directory / rel).write_bytes(data)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", f"release {name or len(objs)}")
    settings = publish.Settings(site.branch.path, site.branch.keys.release.private, IDENTITY)
    [done] = publish.publish(root, [site.branch.site], settings)
    assert done.changed and done.release is not None
    return done.release


def test_the_agent_applies_a_rollback_and_the_cluster_holds_release_1s_objects(
    site: Site, tmp_path: Path, control_plane: Any
) -> None:
    ns = site.namespace
    root = tmp_path / "source"
    root.mkdir()
    git(root, "init", "-q")
    first = [configmap("app", ns, level="info"), configmap("legacy", ns, keep="yes")]
    second = [configmap("app", ns, level="debug"), configmap("legacy", ns, keep="yes")]
    third = [configmap("app", ns, level="trace"), configmap("extra", ns, new="1")]
    agent = site.agent()
    assert _publish(root, site, first) == 1
    assert agent.reconcile().ok
    assert _publish(root, site, second) == 2
    assert _publish(root, site, third) == 3
    assert agent.reconcile().ok
    assert site.get("v1", "ConfigMap", "legacy") is None  # release 3 pruned it

    planned = rollback.plan(site.branch.path, site.branch.site, 1)
    settings = rollback.Settings(site.branch.keys.release.private, IDENTITY)
    done = rollback.publish_plan(site.branch.path, planned, settings)
    assert done.commit is not None
    result = agent.reconcile()
    assert result.ok and result.commit == done.commit, result.summary()

    app, legacy = site.get("v1", "ConfigMap", "app"), site.get("v1", "ConfigMap", "legacy")
    assert app is not None and app["data"] == {"level": "info"}
    assert legacy is not None and legacy["data"] == {"keep": "yes"}
    assert site.get("v1", "ConfigMap", "extra") is None  # release 1 never had it: pruned
    assert site.status()["lastAppliedCommit"] == done.commit
    assert (site.status()["release"], metric(agent, "gen_agent_release")) == ("4", 4.0)
    history = releases.history(open_repo(site.branch.path), publish.branch(site.branch.site))
    assert (history[0].number, history[0].rollback_to) == (4, 1)

    key = make_key(tmp_path, "report-key", "gen-agent@test")
    signers = tmp_path / "report_signers"
    signers.write_text(f'{key.principal} namespaces="gen-agent-report" {key.public}\n')
    out = tmp_path / "test.report"
    made = reporter.write(
        site.admin,
        reporter.Settings(site.agent_namespace, site.settings.status_name, key.private),
        out,
        datetime.now(UTC),
    )
    assert made.site == "test" and made.signer == "gen-agent@test"
    assert made.status["result"] == "synced" and made.status["commit"] == done.commit
    assert (made.status["release"], made.status["lastHealthyRelease"]) == ("4", "4")
    fleet.import_report(site.branch.path, out.read_bytes(), signers, str(out))
    cli = CliRunner().invoke(
        gen_app,
        [
            "agent",
            "report",
            "--out",
            str(tmp_path / "cli.report"),
            "--signing-key",
            str(key.private),
            "--namespace",
            site.agent_namespace,
            "--kubeconfig",
            str(control_plane.kubeconfig),
        ],
    )
    assert cli.exit_code == 0, cli.output
    assert "report of test signed by gen-agent@test" in cli.output
    document, _ = agent_report.split((tmp_path / "cli.report").read_bytes(), "cli.report")
    assert agent_report.parse(document, "cli.report").status["commit"] == done.commit
    [row] = fleet.fleet(site.branch.path)
    assert row.published is not None and row.published.number == 4
    assert row.reported is not None
    line = fleet.status_line(row.reported.report)
    assert line.startswith("synced, release 4, last healthy 4, ") and done.commit[:12] in line
