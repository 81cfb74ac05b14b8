#!/usr/bin/env python3
"""Smoke-test the test-server launchers and time their start-up.

    .venv/bin/python tools/smoke.py [kube] [n9e]     (default: both)

kube: start etcd + kube-apiserver, ``kubectl get ns``, server-side apply a ConfigMap as admin,
      check that a fresh least-privilege user is forbidden until a RoleBinding grants
      its group a Role, then stop.
n9e:  start n9e, log in as root, list business groups, then stop.
Exit code 0 only if every requested part passed.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.servers import ServerStartError, listening_addresses

CONFIGMAP = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: smoke
  namespace: default
data:
  hello: world
"""


def _kubectl(
    kubeconfig: Path, *args: str, stdin: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    cmd = ["kubectl", "--kubeconfig", str(kubeconfig), *args]
    proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=60)
    print(f"$ {' '.join(cmd[3:])}\n{proc.stdout}{proc.stderr}", end="")
    if check and proc.returncode != 0:
        raise SystemExit(f"kubectl failed ({proc.returncode})")
    return proc


def smoke_kube(base: Path) -> float:
    from tests.support.servers.kube import ensure_envtest_binaries, start_control_plane

    t0 = time.monotonic()
    assets = ensure_envtest_binaries()
    print(f"binaries: {assets} ({time.monotonic() - t0:.1f}s to ensure)")
    t0 = time.monotonic()
    with start_control_plane(base / "kube") as cp:
        startup = time.monotonic() - t0
        print(f"control plane {cp.version} at {cp.url} ready in {startup:.1f}s")
        print("listeners:", {n: listening_addresses(p) for n, p in cp.pids.items()})
        _kubectl(cp.kubeconfig, "get", "ns")
        _kubectl(
            cp.kubeconfig,
            "apply",
            "--server-side",
            "--field-manager=smoke",
            "-f",
            "-",
            stdin=CONFIGMAP,
        )
        out = _kubectl(
            cp.kubeconfig,
            "get",
            "configmap",
            "smoke",
            "-o",
            "jsonpath={.metadata.managedFields[0].manager}/{.data.hello}",
        ).stdout
        assert out == "smoke/world", out
        limited = cp.kubeconfig_for("smoke-agent", ["smoke:agents"])
        denied = _kubectl(limited, "get", "configmaps", "-n", "default", check=False)
        assert denied.returncode != 0 and "forbidden" in denied.stderr.lower(), denied.stderr
        # Not the aggregated ClusterRole "view": without kube-controller-manager its rules stay
        # empty. A plain Role works.
        _kubectl(cp.kubeconfig, "get", "clusterrole", "view", "-o", "jsonpath={.rules}")
        _kubectl(
            cp.kubeconfig,
            "create",
            "role",
            "cm-reader",
            "--verb=get,list",
            "--resource=configmaps",
            "-n",
            "default",
        )
        _kubectl(
            cp.kubeconfig,
            "create",
            "rolebinding",
            "smoke-read",
            "--role=cm-reader",
            "--group=smoke:agents",
            "-n",
            "default",
        )
        # The RBAC authorizer reads bindings through an informer: grants apply after a moment.
        deadline = time.monotonic() + 15
        while True:
            allowed = _kubectl(
                limited, "get", "configmap", "smoke", "-n", "default", "-o", "name", check=False
            )
            if allowed.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert allowed.stdout.strip() == "configmap/smoke", allowed.stderr
        _kubectl(cp.kubeconfig, "version", "-o", "json")
        t1 = time.monotonic()
    print(f"control plane stopped in {time.monotonic() - t1:.1f}s")
    return startup


def smoke_n9e(base: Path) -> float:
    from tests.support.servers.n9e import start_n9e

    t0 = time.monotonic()
    with start_n9e(base / "n9e") as n9e:
        startup = time.monotonic() - t0
        print(f"n9e at {n9e.url} ready in {startup:.1f}s; listeners {listening_addresses(n9e.pid)}")
        groups = n9e.request("GET", "/api/n9e/busi-groups")
        print("busi-groups:", groups)
        t1 = time.monotonic()
    print(f"n9e stopped in {time.monotonic() - t1:.1f}s")
    return startup


def main(argv: list[str]) -> int:
    parts = argv or ["kube", "n9e"]
    base = Path(tempfile.mkdtemp(prefix="gen-smoke-"))
    failed = []
    try:
        for part in parts:
            print(f"=== {part}")
            try:
                secs = {"kube": smoke_kube, "n9e": smoke_n9e}[part](base)
                print(f"=== {part}: OK (start-up {secs:.1f}s)")
            except (ServerStartError, AssertionError, SystemExit) as exc:
                print(f"=== {part}: FAILED: {exc}")
                failed.append(part)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
