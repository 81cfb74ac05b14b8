"""``compile --check`` writes nothing and lists every difference (or stops at the first with
``--fail-fast``); ``--shard I/N`` compiles a stable subset of the sites."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from typer.testing import CliRunner

from generator.build import pipeline
from generator.cli import app
from tests.support.project import REPO, tree_digest

runner = CliRunner()
SITES = ("cn-east-1", "cn-north-2")


def compile_(root: Path, **kw: object) -> pipeline.Result:
    return pipeline.run(pipeline.Options(root, **kw))  # type: ignore[arg-type]


def change_both_sites(root: Path) -> None:
    """A value of the common class: every site's namespace manifest changes."""
    path = root / "inventory/classes/common.yml"
    text = path.read_text()
    assert "namespace: project" in text
    path.write_text(text.replace("namespace: project", "namespace: project-x", 1))


def snapshot(root: Path) -> dict[str, str]:
    """Every file of the project, .gen-cache/ included."""
    return tree_digest(root)


def test_check_on_a_fresh_clone_writes_nothing_not_even_the_cache(project: Path) -> None:
    shutil.rmtree(project / ".gen-cache", ignore_errors=True)
    change_both_sites(project)
    before = snapshot(project)
    result = compile_(project, check=True)
    assert not result.up_to_date
    assert snapshot(project) == before
    assert not (project / ".gen-cache").exists()


def test_check_lists_the_differences_of_every_site_by_default(project: Path) -> None:
    change_both_sites(project)
    result = compile_(project, check=True, use_cache=False)
    assert {p[2:].split("/")[0] for p in result.plan.paths()} == set(SITES)
    assert result.unchecked == ()


def test_fail_fast_stops_at_the_first_site_that_differs(project: Path) -> None:
    change_both_sites(project)
    result = compile_(project, check=True, use_cache=False, fail_fast=True)
    assert not result.up_to_date
    assert result.compiled == ("cn-east-1",)
    assert result.unchecked == ("cn-north-2",)
    assert {p[2:].split("/")[0] for p in result.plan.paths()} == {"cn-east-1"}


def test_fail_fast_checks_every_site_when_nothing_differs(project: Path) -> None:
    result = compile_(project, check=True, use_cache=False, fail_fast=True)
    assert result.up_to_date
    assert result.compiled == SITES


def test_a_site_stays_in_its_shard_when_other_sites_come_and_go() -> None:
    names = [f"site-{i:03}" for i in range(300)]
    for total in (1, 2, 3, 7):
        shards = {n: pipeline.shard_of(n, total) for n in names}
        assert set(shards.values()) == set(range(1, total + 1))  # every shard gets some
        fewer = {n: pipeline.shard_of(n, total) for n in names[::3]}
        assert all(shards[n] == s for n, s in fewer.items())
    sizes = [sum(pipeline.shard_of(n, 4) == i for n in names) for i in range(1, 5)]
    assert min(sizes) > 40  # spread about evenly (75 each)


def test_shards_partition_the_sites_and_leave_the_others_alone(project: Path) -> None:
    shutil.rmtree(project / "compiled")
    (project / "compiled" / "old-site").mkdir(parents=True)
    (project / "compiled" / "old-site" / "index.json").write_text("{}")
    owner = pipeline.shard_of("old-site", 3)
    compiled: list[str] = []
    for i in range(1, 4):
        result = compile_(project, shard=(i, 3), use_cache=False)
        assert all(pipeline.shard_of(n, 3) == i for n in result.compiled)
        compiled += result.compiled
        # A stray entry is removed by the shard that owns it, and only by it.
        assert (project / "compiled" / "old-site").exists() == (i < owner)
    assert sorted(compiled) == list(SITES)
    assert compile_(project, check=True).up_to_date


def test_cli_shard_errors_are_usage_errors_naming_the_option(project: Path) -> None:
    for bad in ("0/4", "5/4", "x", "1/0", "2"):
        result = runner.invoke(app, ["compile", "--root", str(project), "--shard", bad])
        assert result.exit_code == 2, (bad, result.output)
        assert "'--shard'" in result.stderr and repr(bad) in result.stderr
    result = runner.invoke(app, ["compile", "--root", str(project), "--fail-fast"])
    assert result.exit_code == 2 and "--check" in result.stderr


def test_cli_an_empty_shard_is_fine(project: Path) -> None:
    empty = next(i for i in range(1, 9) if all(pipeline.shard_of(s, 8) != i for s in SITES))
    before = tree_digest(project / "compiled")
    result = runner.invoke(
        app, ["compile", "--root", str(project), "--check", "--shard", f"{empty}/8"]
    )
    assert result.exit_code == 0, result.output
    assert f"shard {empty}/8 has no sites" in result.stdout
    assert tree_digest(project / "compiled") == before


def test_cli_fail_fast_says_what_it_left_unchecked(project: Path) -> None:
    change_both_sites(project)
    result = runner.invoke(
        app, ["compile", "--root", str(project), "--check", "--fail-fast", "--no-cache"]
    )
    assert result.exit_code == 1
    assert "1 site(s) not checked" in result.stderr
    assert "cn-north-2" not in result.stderr


def run_sharded_ci_job(root: Path, index: int, total: int) -> subprocess.CompletedProcess[str]:
    """The .gen-compile-check job of ci/gitlab-ci.yml, as a runner runs one of its parallel jobs."""
    job = yaml.safe_load((REPO / "ci" / "gitlab-ci.yml").read_text())[".gen-compile-check"]
    env = {**os.environ, **job["variables"], "GEN_INSTALL": "true"}
    env.update(CI_NODE_INDEX=str(index), CI_NODE_TOTAL=str(total))
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    script = "\n".join(["set -eo pipefail", *job["before_script"], *job["script"]])
    return subprocess.run(["bash", "-c", script], cwd=root, env=env, capture_output=True, text=True)


def test_the_ci_template_fans_the_check_out_over_parallel_jobs(project: Path) -> None:
    job = yaml.safe_load((REPO / "ci" / "gitlab-ci.yml").read_text())[".gen-compile-check"]
    total = job["parallel"]
    assert total > 1
    shutil.rmtree(project / ".gen-cache", ignore_errors=True)
    assert all(run_sharded_ci_job(project, i, total).returncode == 0 for i in range(1, total + 1))
    change_both_sites(project)
    failed = {}
    for i in range(1, total + 1):
        done = run_sharded_ci_job(project, i, total)
        if done.returncode:
            failed[i] = done.stderr
    # Every site is checked by exactly one job: the jobs of the two sites fail, naming their site.
    assert set(failed) == {pipeline.shard_of(s, total) for s in SITES}
    for site in SITES:
        assert f"{site}/manifests" in failed[pipeline.shard_of(site, total)]
    assert not (project / ".gen-cache").exists()
