#!/usr/bin/env python3
"""Benchmark ``gen agent`` against ``kubectl apply --server-side`` on a synthetic 1,000-object
site.

    .venv/bin/python bench/agent.py                 # 1,000 objects, 3 rounds, text table
    .venv/bin/python bench/agent.py --objects 200 --rounds 1 --json

A real etcd + kube-apiserver is started (tests/support/servers/kube.py; binaries from
tools/build-envtest.sh or $KUBEBUILDER_ASSETS). The site is ConfigMaps, headless Services,
ServiceAccounts and Deployments spread over four namespaces, written as a compiled-site tree and
committed, SSH-signed, to a deploy branch. Each round uses fresh namespaces for each tool and
measures, in the same run and on the same server:

    first apply       empty namespaces -> every object created
    no-op             the same commit again (the agent's interval reconcile; kubectl applied again)
    one change        one ConfigMap's data changed (the agent's reconcile of the new commit)
    one key removed   that ConfigMap's key removed again (found in managedFields; agent only)

The agent's time is one whole reconcile (fetch + signature check, read, list, apply, prune, status),
with the health wait off: envtest runs no controllers, so Deployments never become available.
kubectl runs ``kubectl apply --server-side -R -f <dir>`` as a subprocess (its start-up, discovery
and OpenAPI download included, as a user pays them). Targets: first apply no slower than kubectl;
the agent's no-op at most 5% of its first apply, with no write. ``--agent-only`` skips kubectl.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from generator.core import layout, objects, yamlio  # noqa: E402
from generator.run.agent import kube  # noqa: E402
from generator.run.agent.loop import Agent  # noqa: E402
from generator.run.agent.metrics import Metrics  # noqa: E402
from generator.run.agent.settings import GitSource, PruneSettings, Settings  # noqa: E402
from tests.support.agent import Branch, Counting, configmap, deployment, service, site_files  # noqa: E402
from tests.support.ferry import Keys, make_key, write_allowed_signers  # noqa: E402
from tests.support.servers.kube import start_control_plane  # noqa: E402


def synthetic_site(count: int, prefix: str) -> list[dict[str, Any]]:
    """``count`` objects over four namespaces (the Namespaces themselves included)."""
    namespaces = [f"{prefix}-{i}" for i in range(4)]
    objs: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}} for ns in namespaces
    ]
    i = 0
    while len(objs) < count:
        ns = namespaces[i % 4]
        kind = i % 5
        if kind in (0, 1):
            objs.append(configmap(f"cm-{i}", ns, **{"app.conf": f"key={i}\n" * 8}))
        elif kind == 2:  # headless: envtest's service CIDR has only 254 addresses for both tools
            svc = service(f"svc-{i}", ns, 8000 + i % 1000)
            svc["spec"]["clusterIP"] = "None"
            objs.append(svc)
        elif kind == 3:
            objs.append(
                {
                    "apiVersion": "v1",
                    "kind": "ServiceAccount",
                    "metadata": {"name": f"sa-{i}", "namespace": ns},
                }
            )
        else:
            objs.append(deployment(f"deploy-{i}", ns))
        i += 1
    return objs


def kubectl_apply(kubeconfig: Path, directory: Path) -> float:
    started = time.perf_counter()
    proc = subprocess.run(
        [
            "kubectl",
            "--kubeconfig",
            str(kubeconfig),
            "apply",
            "--server-side",
            "--field-manager",
            "kubectl-bench",
            "-R",
            "-f",
            str(directory),
        ],
        check=False,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise SystemExit(f"kubectl failed: {proc.stderr[-2000:]}")
    return time.perf_counter() - started


def write_tree(directory: Path, objs: list[dict[str, Any]]) -> None:
    shutil.rmtree(directory, ignore_errors=True)
    for obj in objs:
        path = directory / layout.manifest_path(obj)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yamlio.dump(objects.canonical(obj)))


def agent_round(
    admin: kube.Client, base: Path, keys: Keys, count: int, number: int
) -> dict[str, Any]:
    objs = synthetic_site(count, f"agent-r{number}")
    branch = Branch(base / f"deploy-{number}.git", "bench", keys)
    branch.commit(files=site_files(objs))
    settings = Settings(
        site="bench",
        source=GitSource(str(branch.path)),
        allowed_signers=keys.allowed_signers,
        state_dir=base / f"state-{number}",
        namespace=f"agent-r{number}-0",
        name="gen-agent",
        interval=300,
        health_timeout=0.0,
        prune=PruneSettings(),
        metrics_port=-1,
    )
    out: dict[str, Any] = {}
    agent = Agent(
        settings, admin, Metrics(300)
    )  # one agent, as its loop runs: it keeps what it parsed
    name, namespace = objs[4]["metadata"]["name"], objs[4]["metadata"]["namespace"]
    changes = {"one change": {"changed": "yes"}, "one key removed": {}}
    for case in AGENT_CASES:
        if case in changes:
            objs[4] = configmap(name, namespace, **changes[case])
            branch.commit(files=site_files(objs))
        counting = Counting(admin)
        agent.kube = counting
        started = time.perf_counter()
        result = agent.reconcile()
        out[case] = {
            "seconds": time.perf_counter() - started,
            "applied": len(result.applied),
            "requests": dict(sorted(counting.calls.items())),
            "errors": len(result.errors),
        }
    agent.close()
    return out


CASES = ("first apply", "no-op", "one change")
AGENT_CASES = (*CASES, "one key removed")


def kubectl_round(kubeconfig: Path, base: Path, count: int, number: int) -> dict[str, Any]:
    objs = synthetic_site(count, f"kubectl-r{number}")
    directory = base / f"kubectl-{number}"
    write_tree(directory, objs)
    out = {
        "first apply": {"seconds": kubectl_apply(kubeconfig, directory)},
        "no-op": {"seconds": kubectl_apply(kubeconfig, directory)},
    }
    objs[4] = configmap(
        objs[4]["metadata"]["name"], objs[4]["metadata"]["namespace"], changed="yes"
    )
    write_tree(directory, objs)
    out["one change"] = {"seconds": kubectl_apply(kubeconfig, directory)}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--objects", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--agent-only", action="store_true", help="skip the kubectl comparison")
    args = parser.parse_args()
    if not args.agent_only and shutil.which("kubectl") is None:
        print("kubectl is needed for the comparison", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="gen-bench-agent-") as tmp:
        base = Path(tmp)
        keys_dir = base / "keys"
        keys_dir.mkdir()
        release = make_key(keys_dir, "release", "release@example.com")
        keys = Keys(release, release, write_allowed_signers(keys_dir / "allowed_signers", release))
        with start_control_plane(base / "envtest") as cp:
            admin = kube.connect(cp.kubeconfig)
            rounds = []
            for number in range(args.rounds):
                done = {"agent": agent_round(admin, base, keys, args.objects, number)}
                if not args.agent_only:
                    done["kubectl"] = kubectl_round(cp.kubeconfig, base, args.objects, number)
                rounds.append(done)
            report = summarize(rounds, args.objects, cp.version)
    print(json.dumps(report, indent=2) if args.json else table(report))
    return 0


def summarize(rounds: list[dict[str, Any]], count: int, version: str) -> dict[str, Any]:
    tools = {"agent": AGENT_CASES, **({"kubectl": CASES} if "kubectl" in rounds[0] else {})}
    median = {
        tool: {case: statistics.median(r[tool][case]["seconds"] for r in rounds) for case in cases}
        for tool, cases in tools.items()
    }
    noop_writes = max(_writes(r["agent"]["no-op"]["requests"]) for r in rounds)
    targets = {
        "no-op <= 5% of first apply": median["agent"]["no-op"]
        <= median["agent"]["first apply"] * 0.05,
        "no-op writes nothing": noop_writes == 0,
    }
    if "kubectl" in median:
        targets["first apply <= kubectl"] = (
            median["agent"]["first apply"] <= median["kubectl"]["first apply"]
        )
    return {
        "objects": count,
        "rounds": len(rounds),
        "server": version,
        "cpus": os.cpu_count(),
        "median": median,
        "agent_requests": {case: rounds[-1]["agent"][case]["requests"] for case in AGENT_CASES},
        "agent_applied": {case: rounds[-1]["agent"][case]["applied"] for case in AGENT_CASES},
        "targets": targets,
        "rounds_raw": rounds,
    }


def _writes(requests: dict[str, int]) -> int:
    return sum(n for what, n in requests.items() if what in ("apply", "delete", "create"))


def table(report: dict[str, Any]) -> str:
    m = report["median"]
    lines = [
        f"{report['objects']} objects, median of {report['rounds']} round(s), "
        f"kube-apiserver {report['server']}, "
        f"{report['cpus']} CPUs",
        "",
        "| case | gen agent | kubectl apply --server-side | agent requests |",
        "| --- | ---: | ---: | --- |",
    ]
    for case in AGENT_CASES:
        reqs = ", ".join(f"{k} {v}" for k, v in report["agent_requests"][case].items())
        theirs = m.get("kubectl", {}).get(case)
        other = "-" if theirs is None else f"{theirs:.2f} s"
        lines.append(f"| {case} | {m['agent'][case]:.2f} s | {other} | {reqs} |")
    lines += [
        "",
        *(f"{name}: {'met' if ok else 'NOT met'}" for name, ok in report["targets"].items()),
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
