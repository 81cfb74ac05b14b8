"""The compile pipeline: golden output, determinism, incremental and atomic writes, --check."""

from __future__ import annotations

import difflib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from generator.build import pipeline, write
from generator.core import errors
from tests.support.project import REPO, tree_digest


def compile_(root: Path, **kw: object) -> pipeline.Result:
    return pipeline.run(pipeline.Options(root, **kw))  # type: ignore[arg-type]


def test_reference_platform_matches_committed_golden_tree(project: Path) -> None:
    golden = tree_digest(REPO / "compiled")
    for site in ("cn-east-1", "cn-north-2"):
        (project / "compiled" / site).rename(project / f"old-{site}")
    compile_(project, use_cache=False)
    produced = tree_digest(project / "compiled")
    if produced != golden:
        diffs: list[str] = []
        for rel in sorted(set(golden) | set(produced)):
            if golden.get(rel) == produced.get(rel):
                continue
            old = (REPO / "compiled" / rel).read_text().splitlines(True) if rel in golden else []
            new = (
                (project / "compiled" / rel).read_text().splitlines(True) if rel in produced else []
            )
            diffs += difflib.unified_diff(old, new, f"golden/{rel}", f"produced/{rel}")
        pytest.fail("compiled tree differs from the golden tree:\n" + "".join(diffs))


def test_article_gatekeeper_is_compiled_as_in_the_article(project: Path) -> None:
    text = (
        project / "compiled/cn-east-1/manifests/project/statefulset-gatekeeper.yaml"
    ).read_text()
    for expected in (
        "serviceName: gatekeeper",
        "image: dockerhub.kubekey.local/project/gatekeeper:v362",
        "imagePullPolicy: IfNotPresent",
        "topologyKey: kubernetes.io/hostname",
        'cpu: "2"',
        "memory: 4Gi",
        "mountPath: /home/user/data1",
        "path: /data0",
        "storage: 10Gi",
        "containerPort: 8000",
        "containerPort: 8080",
    ):
        assert expected in text
    hosts = [
        (project / f"compiled/cn-east-1/manifests/project/ingress-gatekeeper-{p}.yaml").read_text()
        for p in (8000, 8080)
    ]
    assert "host: gatekeeper.project.10.86.67.11.nip.io" in hosts[0] and "number: 8000" in hosts[0]
    assert "host: gatekeeper.project.10.86.68.66.nip.io" in hosts[1] and "number: 8080" in hosts[1]
    endpoints = (
        project / "compiled/cn-east-1/manifests/project/endpoints-redis-cluster.yaml"
    ).read_text()
    assert 'ip: "10.86.67.11"' in endpoints and "port: 6379" in endpoints


def test_output_is_identical_across_processes_and_hash_seeds(project: Path, tmp_path: Path) -> None:
    digests = []
    for seed in ("1", "2"):
        copy = tmp_path / f"seed{seed}"
        subprocess.run(["cp", "-r", str(project), str(copy)], check=True)
        subprocess.run(["rm", "-rf", str(copy / "compiled")], check=True)
        env = {**os.environ, "PYTHONHASHSEED": seed}
        subprocess.run(
            [sys.executable, "-m", "generator", "compile", "--root", str(copy), "-q"],
            check=True,
            env=env,
        )
        digests.append(tree_digest(copy / "compiled"))
    assert digests[0] == digests[1]


def test_unchanged_files_are_not_rewritten(project: Path) -> None:
    compile_(project)
    before = {p: p.stat() for p in (project / "compiled").rglob("*.yaml")}
    target = project / "inventory/targets/cn-north-2.yml"
    text = target.read_text()
    assert "replicas: 3\n      resources" in text
    target.write_text(text.replace("replicas: 3\n      resources", "replicas: 4\n      resources"))
    result = compile_(project)
    assert result.compiled == ("cn-north-2",) and result.skipped == ("cn-east-1",)
    changed = sorted(
        p.relative_to(project / "compiled").as_posix()
        for p, st in before.items()
        if p.stat().st_ino != st.st_ino or p.stat().st_mtime_ns != st.st_mtime_ns
    )
    assert changed == ["cn-north-2/manifests/project/statefulset-gatekeeper.yaml"]


def test_files_no_longer_produced_are_removed(project: Path) -> None:
    target = project / "inventory/targets/cn-east-1.yml"
    target.write_text(target.read_text() + "    abc-service:\n      enabled: false\n")
    (project / "inventory/targets/cn-north-2.yml").unlink()
    result = compile_(project)
    assert not (project / "compiled/cn-north-2").exists()
    assert not list((project / "compiled/cn-east-1").rglob("*abc-service*"))
    assert "- cn-north-2/" in result.plan.paths()


def test_partial_compile_leaves_other_sites_alone(project: Path) -> None:
    (project / "compiled/stray.txt").write_text("x")
    compile_(project, targets=("cn-east-1",))
    assert (project / "compiled/stray.txt").exists()
    compile_(project)
    assert not (project / "compiled/stray.txt").exists()


def test_error_in_one_site_leaves_whole_compiled_tree_untouched(project: Path) -> None:
    before = tree_digest(project / "compiled")
    for target in ("cn-east-1", "cn-north-2"):
        path = project / f"inventory/targets/{target}.yml"
        path.write_text(
            path.read_text().replace(
                "abc-service:\n      replicas: 3", "abc-service:\n      replicas: 9"
            )
        )
    bad = project / "inventory/targets/cn-north-2.yml"
    bad.write_text(bad.read_text().replace("replicas: 9", "replicas: nine"))
    with pytest.raises(errors.ProblemReport) as info:
        compile_(project)
    assert "inventory/targets/cn-north-2.yml:" in str(info.value)
    assert "nothing was written" in str(info.value)
    assert tree_digest(project / "compiled") == before


def test_interrupted_swap_keeps_old_site_and_next_run_recovers(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = tree_digest(project / "compiled")
    path = project / "inventory/targets/cn-east-1.yml"
    path.write_text(path.read_text().replace("1.25.16", "1.26.5"))

    def crash(a: Path, b: Path) -> bool:
        raise OSError(5, "Input/output error", str(b))

    monkeypatch.setattr(write, "_exchange", crash)
    with pytest.raises(errors.GenError, match="cannot write"):
        compile_(project)
    assert tree_digest(project / "compiled/cn-east-1") == {
        k.removeprefix("cn-east-1/"): v for k, v in before.items() if k.startswith("cn-east-1/")
    }
    monkeypatch.undo()
    compile_(project)
    assert not [p for p in (project / "compiled").iterdir() if p.name.startswith(".")]
    assert (
        '"kubernetes_version": "1.26.5"' in (project / "compiled/cn-east-1/index.json").read_text()
    )


def test_check_reports_stale_files_and_writes_nothing(project: Path) -> None:
    assert compile_(project, check=True).up_to_date
    path = project / "inventory/classes/services/gatekeeper.yml"
    path.write_text(
        path.read_text().replace("gatekeeper_version: v362", "gatekeeper_version: v363")
    )
    before = tree_digest(project / "compiled")
    result = compile_(project, check=True)
    assert not result.up_to_date
    assert "~ cn-east-1/manifests/project/statefulset-gatekeeper.yaml" in result.plan.paths()
    assert not any("cn-north-2/manifests" in p for p in result.plan.paths())  # pins its own version
    assert tree_digest(project / "compiled") == before


def test_hand_edited_compiled_file_is_restored_despite_cache(project: Path) -> None:
    compile_(project)
    edited = project / "compiled/cn-east-1/manifests/project/service-gatekeeper.yaml"
    original = edited.read_bytes()
    edited.write_bytes(original.replace(b"NodePort", b"ClusterIP"))
    assert not compile_(project, check=True).up_to_date
    compile_(project)
    assert edited.read_bytes() == original


def test_cache_notices_a_new_class_file_at_a_probed_path(project: Path) -> None:
    compile_(project)
    assert compile_(project).compiled == ()
    extra = project / "inventory/classes/sites/kubekey.yaml"
    extra.write_text("parameters: {}\n")
    with pytest.raises(errors.GenError, match="ambiguous"):
        compile_(project)


def test_cache_notices_component_change(project: Path) -> None:
    compile_(project)
    template = project / "components/stateful-service/service.yml.j2"
    template.write_text(
        template.read_text().replace(
            "labels: {{ labels | tojson }}",
            "labels: {{ labels | tojson }}\n  annotations: {tier: web}",
        )
    )
    result = compile_(project)
    assert result.compiled == ("cn-east-1", "cn-north-2")
    assert (
        "tier: web"
        in (project / "compiled/cn-east-1/manifests/project/service-gatekeeper.yaml").read_text()
    )


def test_parallel_and_serial_compiles_agree(project: Path, tmp_path: Path) -> None:
    targets = project / "inventory/targets"
    base = (targets / "cn-north-2.yml").read_text()
    for i in range(pipeline.PARALLEL_THRESHOLD):
        (targets / f"extra-{i:02d}.yml").write_text(
            base.replace("harbor.cn-north-2", f"harbor{i}.cn-north-2")
        )
        if (project / "secrets/cn-north-2").is_dir():
            shutil.copytree(project / "secrets/cn-north-2", project / f"secrets/extra-{i:02d}")
    compile_(project, use_cache=False, jobs=2)
    parallel = tree_digest(project / "compiled")
    subprocess.run(["rm", "-rf", str(project / "compiled")], check=True)
    compile_(project, use_cache=False, jobs=1)
    assert tree_digest(project / "compiled") == parallel
    assert len([k for k in parallel if k.endswith("index.json")]) == pipeline.PARALLEL_THRESHOLD + 2


def test_old_kubernetes_version_is_checked_against_oldest_schema_with_warning(
    project: Path,
) -> None:
    path = project / "inventory/targets/cn-east-1.yml"
    path.write_text(
        path.read_text()
        .replace('"1.25.16"', '"1.21.5"')
        .replace("endpoints_api: both", "endpoints_api: auto")
    )
    result = compile_(project)
    assert any("cn-east-1" in w and "1.21" in w for w in result.warnings)
    assert (
        project / "compiled/cn-east-1/manifests/project/endpointslice-redis-cluster-external.yaml"
    ).exists()


def test_a_malformed_version_in_kube_at_least_fails_at_the_template_line(project: Path) -> None:
    template = project / "components/external/external.yml.j2"
    text = template.read_text()
    template.write_text(text.replace('kube_at_least("1.21")', 'kube_at_least("1.x")'))
    path = project / "inventory/targets/cn-east-1.yml"
    path.write_text(path.read_text().replace("endpoints_api: both", "endpoints_api: auto"))
    located = (
        r"components/external/external.yml.j2:4\b.*"
        r"kube_at_least\(\): unsupported Kubernetes version '1.x'"
    )
    with pytest.raises(errors.GenError, match=located):
        compile_(project, use_cache=False)
