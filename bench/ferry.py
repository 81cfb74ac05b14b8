#!/usr/bin/env python3
"""Benchmark the ferry: envelope size and pack/import time, full and incremental.

    .venv/bin/python bench/ferry.py                         # 1,000 objects, 500 commits of history
    .venv/bin/python bench/ferry.py --objects 200 --commits 50 --keep
    .venv/bin/python bench/ferry.py --json > ferry.json

A synthetic site of N Kubernetes objects (one YAML file each, ~1 KB, plus images.txt and a
consistent index.json) is published M times with ``gen publish`` (each publish changes one object,
so the deploy branch has M signed commits). Then, each as a separate ``gen`` subprocess so the
interpreter start-up is included, exactly as an operator or a CronJob pays it:

    pack full            first envelope of the site (the whole history)
    import full          into an empty bare repository: every file hash, the manifest signature
                         and the SSH signature of every one of the M commits are verified
    publish one change   one object edited, published (one signed commit)
    pack incremental     the envelope of that one commit
    import incremental   into the repository that imported the full one

Targets (on this machine): the incremental envelope under 10 KB, its import under 2 s.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from generator.core import layout  # noqa: E402
from generator.deliver import publish  # noqa: E402
from generator.deliver.git.plumbing import Identity  # noqa: E402

SITE = "bench-site"
PRINCIPAL = "release@example.com"
TARGETS = {"incremental envelope bytes": 10 * 1024, "import incremental s": 2.0}


def object_yaml(i: int, revision: int) -> str:
    """A ConfigMap-sized object whose data varies with its index (so packs compress
    realistically)."""
    digest = hashlib.sha256(f"{i}-{revision}".encode()).hexdigest()
    lines = [f'  key-{k}: "{digest[k : k + 40]}-{(i * 31 + k) % 997}"' for k in range(14)]
    return (
        f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: object-{i:04d}\n  namespace: bench\n"
        f'  labels:\n    app.kubernetes.io/managed-by: gen\n    revision: "{revision}"\ndata:\n'
        + "\n".join(lines)
        + "\n"
    )


def write_site(root: Path, objects: int) -> Path:
    site = root / "compiled" / SITE
    for i in range(objects):
        path = site / "manifests" / "bench" / f"configmap-object-{i:04d}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(object_yaml(i, 0))
    (site / "images.txt").write_text("registry.local/bench/app:1.0\n")
    write_index(site)
    return site


def write_index(site: Path) -> None:
    """The site's index.json, built by the owner of the compiled-site layout."""
    files = {
        p.relative_to(site).as_posix(): p.read_bytes()
        for p in sorted(site.rglob("*"))
        if p.is_file() and p.name != layout.INDEX
    }
    index = layout.Index.build(SITE, "1.30", files, {})
    (site / layout.INDEX).write_bytes(index.dumps())


def change_one(site: Path, objects: int, revision: int) -> None:
    i = revision % objects
    (site / "manifests" / "bench" / f"configmap-object-{i:04d}.yaml").write_text(
        object_yaml(i, revision)
    )
    write_index(site)


CPU: dict[str, float] = {}
"""CPU seconds (user + system, gen and every git/ssh-keygen it ran) per step: steadier than wall
time on a shared machine."""


def gen(env: dict[str, str], step: str, *args: str) -> float:
    """Run gen as a subprocess; its wall time (its CPU time goes to ``CPU[step]``)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run(
        [str(REPO / ".venv" / "bin" / "gen"), *args], env=env, capture_output=True, text=True
    )
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU[step] = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    if proc.returncode != 0:
        sys.exit(f"gen {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")
    return elapsed


def envelope_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.iterdir())


def build_history(work: Path, key: Path, objects: int, commits: int) -> tuple[Path, Path, float]:
    root, deploy = work / "source", work / "deploy.git"
    site = write_site(root, objects)
    settings = publish.Settings(deploy, key, Identity("Release Bot", PRINCIPAL), allow_dirty=True)
    started = time.perf_counter()
    publish.publish(root, [SITE], settings)
    for revision in range(1, commits):
        change_one(site, objects, revision)
        publish.publish(root, [SITE], settings)
    return root, deploy, time.perf_counter() - started


def run(objects: int, commits: int, work: Path) -> dict[str, Any]:
    key = work / "release"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", PRINCIPAL, "-f", str(key)], check=True
    )
    allowed = work / "allowed_signers"
    allowed.write_text(
        f'{PRINCIPAL} namespaces="git,gen-ferry" '
        f"{' '.join(key.with_suffix('.pub').read_text().split()[:2])}\n"
    )
    root, deploy, history_s = build_history(work, key, objects, commits)
    env = {
        **os.environ,
        "GEN_DEPLOY_REPO": str(deploy),
        "GEN_SIGNING_KEY": str(key),
        "GEN_FERRY_SENDER": PRINCIPAL,
        "GEN_ALLOWED_SIGNERS": str(allowed),
    }
    out, drop, inside = work / "outbox", work / "gatekeeper", work / "inside.git"
    drop.mkdir()
    figures: dict[str, Any] = {
        "objects": objects,
        "commits": commits,
        "build history s": round(history_s, 1),
    }
    figures["pack full s"] = gen(env, "pack full s", "ferry", "pack", "-t", SITE, "--out", str(out))
    full = out / f"{SITE}-000001"
    figures["full envelope bytes"] = envelope_size(full)
    shutil.move(full, drop / full.name)
    figures["import full s"] = gen(
        env, "import full s", "ferry", "import", str(drop), "--repo", str(inside), "--site", SITE
    )
    change_one(root / "compiled" / SITE, objects, commits)
    figures["publish one change s"] = gen(
        env,
        "publish one change s",
        "publish",
        "--root",
        str(root),
        "--allow-dirty",
        "--author",
        f"Release Bot <{PRINCIPAL}>",
    )
    figures["pack incremental s"] = gen(
        env, "pack incremental s", "ferry", "pack", "-t", SITE, "--out", str(out)
    )
    incremental = out / f"{SITE}-000002"
    figures["incremental envelope bytes"] = envelope_size(incremental)
    figures["incremental bundle bytes"] = (incremental / "bundle").stat().st_size
    shutil.move(incremental, drop / incremental.name)
    figures["import incremental s"] = gen(
        env,
        "import incremental s",
        "ferry",
        "import",
        str(drop),
        "--repo",
        str(inside),
        "--site",
        SITE,
    )
    figures.update({f"{step.removesuffix(' s')} cpu s": cpu for step, cpu in CPU.items()})
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in figures.items()}


def report(figures: dict[str, Any]) -> str:
    lines = [
        f"ferry benchmark: {figures['objects']} objects, {figures['commits']} commits "
        f"({platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}, "
        f"{datetime.date.today()})"
    ]
    for key, value in figures.items():
        target = TARGETS.get(key)
        verdict = (
            ""
            if target is None
            else f"   target < {target}: {'ok' if value < target else 'MISSED'}"
        )
        lines.append(f"  {key:<28} {value:>12}{verdict}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--objects", type=int, default=1000)
    parser.add_argument("--commits", type=int, default=500)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument(
        "--keep", action="store_true", help="keep the work directory and print its path"
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="gen-bench-ferry-"))
    try:
        figures = run(args.objects, args.commits, work)
    finally:
        if args.keep:
            print(f"work directory: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(figures, indent=1) if args.json else report(figures))


if __name__ == "__main__":
    main()
