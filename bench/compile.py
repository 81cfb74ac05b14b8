#!/usr/bin/env python3
"""Benchmark ``gen compile`` on a synthetic inventory of N sites x M services.

Run with the project's venv (it writes YAML with PyYAML, a dependency of gen):

    .venv/bin/python bench/compile.py          # 200 sites x 20 services (~15,700 objects)
    .venv/bin/python bench/compile.py --sites 20 --services 5 --keep
    .venv/bin/python bench/compile.py --json > bench.json
    # also cProfile a single-process cold compile:
    .venv/bin/python bench/compile.py --profile /tmp/prof.out

A project is generated in a temporary directory (or ``--workdir``): this repository's
``components/`` and ``schemas/`` are copied, and an inventory shaped like the reference one is
written (shared stateful-service classes, a few site classes, one target per site with per-site
overrides). Each case is a separate ``gen compile --root DIR`` subprocess, so interpreter start-up
is included, exactly as a user or CI pays it. Before the cases, one unreported warm-up compile fills
the OS page cache and Python's bytecode cache.

    cold, empty validator cache   first compile on a machine: no compiled/, no .gen-cache/,
                                  empty $GEN_CACHE_DIR
    cold                          no compiled/, no .gen-cache/, validator code cache warm
    no-op                         recompile with nothing changed
    one site changed              recompile after changing one value in one target file
    baseline                      cold with --no-cache --jobs 1 (single process): ratios are
                                  against it

Reported per case: wall time (median of ``--repeat`` runs), CPU time (user + sys of gen and its
workers, from ``os.wait4``: the figure to trust when the machine is busy), the 1-minute load average
before the run, peak memory, the number of files under compiled/ and gen's own summary line.

The code measured is a copy of ``generator/`` taken when the bench starts (``--no-snapshot`` runs
the live tree): other people editing generator/ meanwhile would otherwise change the code between
cases and, through the tool fingerprint, invalidate the compile cache. gen runs with bytecode
caching on (into ``<workdir>/pycache``) even where PYTHONDONTWRITEBYTECODE is set (``--keep-env``
keeps it).

Checks (exit status 1 if one fails): the no-op recompiles no site and rewrites no file; after the
one-value edit only that site's index.json changes and only its files are touched; the
single-process baseline produces byte-identical output (same index.json hashes) to the incremental
runs.

Peak memory is measured three ways (no psutil needed, Linux only for the /proc sampling):
  * ``max_rss``: ``ru_maxrss`` from ``os.wait4`` on the gen process: the largest resident set of
    any single process of the tree (gen itself or one of its workers), exact;
  * ``tree_rss``: the largest sum of RSS over gen and all its descendants, sampled from /proc every
    ``--sample-ms`` ms (descendants re-listed every 4th sample; the sampler costs ~3% of one core).
    It counts copy-on-write pages shared by forked workers once per process, so it overstates real
    use;
  * ``tree_pss``: the same with PSS (shared pages divided among the processes sharing them): the
    best estimate of the memory the compile really occupies.
The 512 MiB target is checked against ``tree_rss``, the most pessimistic of the three.

Targets (issue #17, 200 x 20 on a quiet 2-core machine): cold <= 8 s wall and <= 12 CPU-s;
``--check`` on a fresh clone (compiled/ committed, no .gen-cache/) <= 6 s; no-op <= 0.5 s; one
site changed <= 0.7 s; peak tree RSS <= 512 MiB.

Correctness checks besides the timings: the fresh-clone ``--check`` passes and writes nothing (no
file of compiled/ touched, no .gen-cache/ created); and render reuse (templates rendered once per
distinct set of values read, ``generator/build/tracking.py``) changes no byte: a cold compile with
``GEN_RENDER_REUSE=0`` (every template rendered for every site) gives the same tree, compared file
by file (``--no-reference`` skips that extra compile).
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
KUBE_VERSIONS = ("1.25.16", "1.29.9", "1.33.4")
MIB = 1024 * 1024

# Targets on a 2-core machine for 200 x 20 (seconds, bytes).
TARGETS = {"cold": 8.0, "check, fresh clone": 6.0, "no-op": 0.5, "one site changed": 0.7}
CPU_TARGETS = {"cold": 12.0}
RSS_TARGET = 512 * MIB

SERVICE_NAMES = (
    "gateway",
    "auth",
    "billing",
    "orders",
    "inventory",
    "search",
    "notify",
    "report",
    "audit",
    "media",
    "catalog",
    "pricing",
    "ledger",
    "profile",
    "session",
    "scheduler",
    "metrics",
    "export",
    "importer",
    "workflow",
)


# ------------------------------------------------------------------------------------------------
# The synthetic project
# ------------------------------------------------------------------------------------------------


def _yaml_dump(data: Any, header: str) -> str:
    import yaml

    class Dumper(yaml.SafeDumper):
        pass

    def str_repr(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
        # literal blocks for config files; versions quoted as in the reference inventory
        style = "|" if "\n" in value else '"' if re.fullmatch(r"[0-9][0-9.]*", value) else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    Dumper.add_representer(str, str_repr)
    text = yaml.dump(
        data,
        Dumper=Dumper,
        sort_keys=False,
        default_flow_style=False,
        width=120,
        allow_unicode=True,
    )
    return "".join(f"# {line}\n" for line in header.splitlines()) + text


def service_names(count: int) -> list[str]:
    base = len(SERVICE_NAMES)
    return [
        SERVICE_NAMES[i % base] + (f"-{i // base + 1}" if i >= base else "") for i in range(count)
    ]


def _var(name: str) -> str:
    return name.replace("-", "_") + "_version"


def service_class(i: int, name: str, names: list[str]) -> dict[str, Any]:
    """A stateful-service like inventory/classes/services/*.yml, varied by index."""
    base_port = 8000 + 10 * i
    ports: list[dict[str, Any]] = []
    for k in range(1 + i % 3):
        port: dict[str, Any] = {"port": base_port + k}
        if k == 0 or i % 2:
            port["name"] = f"http-{base_port + k}"
        if k == 1 and i % 7 == 3:
            port["protocol"] = "UDP"
            port["name"] = f"udp-{base_port + k}"
        ports.append(port)
    svc: dict[str, Any] = {
        "component": "stateful-service",
        "image": f"project/{name}",
        "tag": "${" + _var(name) + "}",
        "replicas": 1 + i % 2,
    }
    if i % 5 == 0:
        svc["service_type"] = "NodePort"
        for k, port in enumerate(ports):
            port["node_port"] = 30000 + 3 * i + k
    svc["ports"] = ports
    svc["resources"] = {
        "requests": {"cpu": f"{100 * (1 + i % 5)}m", "memory": f"{128 * (1 + i % 4)}Mi"},
        "limits": {"cpu": str(1 + i % 3), "memory": f"{1 + i % 4}Gi"},
    }
    env = {
        "SERVICE_NAME": name,
        "NAMESPACE": "${site:namespace}",
        "REDIS_ADDR": "redis-cluster.${site:namespace}.svc:6379",
        "LOG_LEVEL": ("info", "debug", "warn")[i % 3],
    }
    if i:
        env["UPSTREAM_URL"] = (
            f"http://{names[i - 1]}." + "${site:namespace}.svc:" + str(8000 + 10 * (i - 1))
        )
    svc["env"] = env
    if i % 5 != 4:
        files = {
            "app.yaml": f'listen: ":{base_port}"\nredis: redis-cluster:6379\n'
            f"log_level: {env['LOG_LEVEL']}\n"
            f"workers: {2 + i % 6}\n"
        }
        if i % 3 == 0:
            files["logging.properties"] = "handlers=console\nlevel=INFO\nformat=json\n"
        svc["config"] = {"mount_path": f"/etc/{name}", "files": files}
    volumes = [
        {
            "name": f"vol-data{v}",
            "mount_path": f"/var/lib/{name}/data{v}",
            "size": f"{10 * (1 + (i + v) % 5)}Gi",
        }
        for v in range(i % 3)
    ]
    if volumes:
        svc["volumes"] = volumes
    if i % 4 == 0:
        svc["host_paths"] = [{"name": "host-data0", "path": "/data0", "mount_path": "/data0"}]
    ingress: list[dict[str, Any]] = []
    for k in range((1, 1, 2, 0, 1)[i % 5]):
        entry: dict[str, Any] = {"port": ports[k % len(ports)]["port"]}
        if k == 1:
            entry["name"] = f"{name}-admin"
            entry["path"] = "/admin"
            entry["path_type"] = "Prefix"
        ingress.append(entry)
    if ingress:
        svc["ingress"] = ingress
    svc["anti_affinity"] = ("preferred", "required", "none")[i % 3]
    probes: dict[str, Any] = {"readiness": {"tcp_port": base_port, "period_seconds": 10}}
    if i % 2:
        probes["readiness"] = {"http_path": "/healthz", "http_port": base_port}
        probes["liveness"] = {"tcp_port": base_port, "initial_delay_seconds": 15}
    svc["probes"] = probes
    svc["depends_on"] = ["redis-cluster"] + ([names[i - 1]] if i else [])
    if i % 6 == 1:
        svc["labels"] = {"tier": "backend"}
    return {"parameters": {_var(name): f"v1.{i}.0", "services": {name: svc}}}


SITE_CLASSES = {
    "common": (
        "Defaults every site starts from (as inventory/classes/common.yml).",
        {
            "parameters": {
                "site": {
                    "name": "${_reclass_:name:short}",
                    "namespace": "project",
                    "components": ["namespace", "external"],
                },
                "services": {},
            }
        },
    ),
    "sites/kubekey": (
        "Clusters installed with KubeKey carry their own Harbor at dockerhub.kubekey.local.",
        {
            "parameters": {
                "site": {"registry": "dockerhub.kubekey.local", "ingress": {"class": "nginx"}}
            }
        },
    ),
    "sites/harbor": (
        "Sites with a Harbor of their own, named after the site.",
        {
            "parameters": {
                "site": {
                    "registry": "harbor.${site:name}.internal:5000/paas",
                    "storage_class": "local-path",
                    "ingress": {"class": "nginx"},
                }
            }
        },
    ),
    "sites/hardened": (
        "Sites under stricter rules: pull secret, compliance label.",
        {
            "parameters": {
                "site": {
                    "image_pull_secrets": ["registry-cred"],
                    "labels": {"compliance": "mlps-3"},
                }
            }
        },
    ),
}


def site_name(j: int) -> str:
    return f"site-{j:03d}"


def target(j: int, names: list[str]) -> dict[str, Any]:
    """One site's target: a site class, the service classes, per-site overrides."""
    name = site_name(j)
    classes = ["common", "sites.harbor" if j % 3 == 2 else "sites.kubekey"]
    if j % 4 == 0:
        classes.append("sites.hardened")
    classes += [f"services.{n}" for n in names]
    a, b = 10 + j // 250, j % 250
    ips = [f"10.{a}.{b}.11", f"10.{a}.{b}.12"]
    site: dict[str, Any] = {
        "description": f"Private cloud number {j}",
        "kubernetes_version": KUBE_VERSIONS[j % len(KUBE_VERSIONS)],
    }
    if j % 5 == 1:
        site["registry"] = f"registry.{name}.local:5000/project"
    site["ingress"] = {"ips": ips}
    if j % 6 == 5:
        site["ingress"]["domain"] = f"paas.{name}.example.com"
    site["nodes"] = [
        {
            "name": f"{name}-node-{n}",
            "address": f"10.{a}.{b}.{100 + n}",
            "roles": ["etcd", "control-plane"] if n < 3 else ["worker"],
        }
        for n in range(3 + j % 4)
    ]
    redis: dict[str, Any] = {
        "addresses": [f"10.{a}.{b}.{200 + n}" for n in range(1 + j % 3)],
        "ports": [{"name": "redis", "port": 6379}],
    }
    if j % 4 == 1:
        redis["endpoints_api"] = "both"
    site["external"] = {"redis-cluster": redis}
    params: dict[str, Any] = {}
    if len(names) > 1 and j % 2:
        params[_var(names[1])] = f"v2.0.{j}"
    params["site"] = site
    services: dict[str, Any] = {names[0]: {"replicas": 1 + j % 3}}  # the value case (3) changes
    if j % 3 == 0:
        services[names[0]]["~ingress"] = [
            {"port": 8000, "ip": ips[0]},
            {"port": 8000, "ip": ips[1], "name": f"{names[0]}-second"},
        ]
    params["services"] = services
    return {"classes": classes, "parameters": params}


def generate(root: Path, sites: int, services: int) -> None:
    """Write the synthetic project under ``root`` (which must not exist)."""
    root.mkdir(parents=True)
    shutil.copytree(REPO / "components", root / "components")
    shutil.copytree(REPO / "schemas", root / "schemas")
    classes = root / "inventory" / "classes"
    (classes / "services").mkdir(parents=True)
    (classes / "sites").mkdir()
    for rel, (header, data) in SITE_CLASSES.items():
        (classes / f"{rel}.yml").write_text(_yaml_dump(data, header))
    names = service_names(services)
    for i, name in enumerate(names):
        (classes / "services" / f"{name}.yml").write_text(
            _yaml_dump(
                service_class(i, name, names), f"Synthetic service {name} (bench/compile.py)."
            )
        )
    targets = root / "inventory" / "targets"
    targets.mkdir()
    for j in range(sites):
        (targets / f"{site_name(j)}.yml").write_text(
            _yaml_dump(target(j, names), f"Synthetic site {site_name(j)} (bench/compile.py).")
        )


def change_one_value(root: Path, site: str) -> str:
    """Bump the one ``replicas:`` override in a site's target; returns a description of the edit."""
    path = root / "inventory" / "targets" / f"{site}.yml"
    text = path.read_text()
    m = re.search(r"^(\s+replicas: )(\d+)$", text, re.M)
    if not m:
        raise SystemExit(f"bench: no replicas: override in {path}")
    new = int(m[2]) + 1
    path.write_text(text[: m.start(2)] + str(new) + text[m.end(2) :])
    return f"inventory/targets/{site}.yml: replicas {m[2]} -> {new}"


# ------------------------------------------------------------------------------------------------
# Measuring
# ------------------------------------------------------------------------------------------------


def _proc_children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    return children


def _rss_pss(pid: int) -> tuple[int, int]:
    """(RSS, PSS) in bytes from smaps_rollup, or (RSS, RSS) from statm; (0, 0) if the process is
    gone."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
            rss = pss = 0
            for line in f:
                if line.startswith(b"Rss:"):
                    rss = int(line.split()[1]) * 1024
                elif line.startswith(b"Pss:"):
                    pss = int(line.split()[1]) * 1024
            return rss, pss
    except OSError:
        pass
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            rss = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            return rss, rss
    except OSError:
        return 0, 0


class TreeSampler(threading.Thread):
    """Samples the summed RSS and PSS of a process and its descendants until stopped."""

    def __init__(self, pid: int, interval: float) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.peak_rss = self.peak_pss = self.max_procs = self.samples = 0
        self.stop = threading.Event()

    RESCAN_EVERY = 4
    """Scanning /proc for descendants costs ~5 ms of CPU; the known processes' memory ~0.3 ms."""

    def run(self) -> None:
        pids: list[int] = []
        while not self.stop.is_set():
            if self.samples % self.RESCAN_EVERY == 0:
                children = _proc_children()
                pids, todo = [], [self.pid]
                while todo:
                    pid = todo.pop()
                    pids.append(pid)
                    todo += children.get(pid, [])
            rss = pss = 0
            for pid in pids:
                r, p = _rss_pss(pid)
                rss, pss = rss + r, pss + p
            self.peak_rss, self.peak_pss = max(self.peak_rss, rss), max(self.peak_pss, pss)
            self.max_procs = max(self.max_procs, len(pids))
            self.samples += 1
            self.stop.wait(self.interval)


@dataclass
class Run:
    wall: float
    cpu: float
    load: float
    max_rss: int
    tree_rss: int
    tree_pss: int
    procs: int
    stdout: str
    stderr: str


def run_gen(
    cmd: list[str], env: dict[str, str], sample_ms: float, ok: tuple[int, ...] = (0,)
) -> Run:
    """Run one gen command; wall time, ru_maxrss via wait4, sampled tree RSS/PSS."""
    load = os.getloadavg()[0]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
        sampler = (
            TreeSampler(proc.pid, sample_ms / 1000)
            if sample_ms > 0 and os.path.isdir("/proc")
            else None
        )
        if sampler:
            sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        if sampler:
            sampler.stop.set()
            sampler.join()
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if proc.returncode not in ok:
        raise SystemExit(f"bench: {' '.join(cmd)} exited {proc.returncode}\n{stdout}{stderr}")
    max_rss = usage.ru_maxrss * 1024  # kB on Linux
    return Run(
        wall,
        usage.ru_utime + usage.ru_stime,
        load,
        max_rss,
        sampler.peak_rss if sampler else 0,
        sampler.peak_pss if sampler else 0,
        sampler.max_procs if sampler else 0,
        stdout,
        stderr,
    )


def count_files(compiled: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(compiled))


def index_hashes(compiled: Path) -> dict[str, str]:
    """sha256 of every site's index.json (which holds the sha256 of every other file of the
    site)."""
    out = {}
    for entry in sorted(os.scandir(compiled), key=lambda e: e.name) if compiled.is_dir() else ():
        index = Path(entry.path) / "index.json"
        if entry.is_dir() and index.is_file():
            out[entry.name] = hashlib.sha256(index.read_bytes()).hexdigest()
    return out


def tree_hashes(directory: Path) -> dict[str, str]:
    """sha256 of every file under ``directory``, by relative path (a byte-for-byte comparison)."""
    out = {}
    for base, _, files in os.walk(directory):
        for name in files:
            path = os.path.join(base, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, directory)] = hashlib.sha256(f.read()).hexdigest()
    return out


def index_entries(compiled: Path, site: str) -> dict[str, str]:
    data = json.loads((compiled / site / "index.json").read_text())
    return {f["path"]: f["sha256"] for f in data["files"]}


def file_stamps(compiled: Path) -> dict[str, tuple[int, int, int]]:
    """(inode, size, mtime_ns) of every file: shows which files a run rewrote."""
    out = {}
    for base, _, files in os.walk(compiled):
        for name in files:
            path = os.path.join(base, name)
            st = os.stat(path)
            out[os.path.relpath(path, compiled)] = (st.st_ino, st.st_size, st.st_mtime_ns)
    return out


_SUMMARY = re.compile(r"compiled (\d+) site\(s\), (\d+) unchanged, (\d+) file\(s\) changed")


@dataclass
class Case:
    name: str
    what: str
    command: str
    validator_cache: str
    walls: list[float] = field(default_factory=list)
    wall: float = 0.0
    cpu: float = 0.0
    load_before: float = 0.0
    max_rss: int = 0
    tree_rss: int = 0
    tree_pss: int = 0
    procs: int = 0
    files: int = 0
    sites_compiled: int | None = None
    sites_unchanged: int | None = None
    files_changed: int | None = None
    target: float | None = None
    cpu_target: float | None = None
    vs_baseline: float | None = None

    @property
    def ok(self) -> bool | None:
        if self.target is None:
            return None
        return self.wall <= self.target and (self.cpu_target is None or self.cpu <= self.cpu_target)


class Bench:
    def __init__(self, args: argparse.Namespace, project: Path, gen_cache: Path) -> None:
        self.args, self.project, self.gen_cache = args, project, gen_cache
        self.compiled = project / "compiled"
        self.trash = project.parent / "trash"
        self.env = {**os.environ, "GEN_CACHE_DIR": str(gen_cache)}
        if args.snapshot:
            # gen's code as it was when the bench started: others editing generator/ meanwhile
            # would change the tool fingerprint (invalidating the compile cache) and the code
            # measured from case to case.
            self.env["PYTHONPATH"] = os.pathsep.join(
                filter(None, [str(args.snapshot), os.environ.get("PYTHONPATH")])
            )
        if not args.keep_env:
            # Python as users run it: bytecode cached (this sandbox sets PYTHONDONTWRITEBYTECODE=1),
            # but in a prefix under the work directory so nothing is written into the repository or
            # the venv.
            self.env.pop("PYTHONDONTWRITEBYTECODE", None)
            self.env["PYTHONPYCACHEPREFIX"] = str(gen_cache.parent / "pycache")
        self.cases: list[Case] = []

    def reset_output(self) -> None:
        """No compiled/ and no .gen-cache/: moved aside into the work directory's trash, deleted
        only after the last measurement (``main``). Deleting them here would put the previous
        tree's ~16,500 files among the "recently deleted" inodes that ext4 without a journal (this
        machine's disk) steps over one by one when it allocates an inode: the cold compile right
        after an ``rm -rf`` paid 8-17 s of kernel time for it (bench/README.md)."""
        self.trash.mkdir(exist_ok=True)
        for path in (self.compiled, self.project / ".gen-cache"):
            if path.exists():
                path.rename(self.trash / f"{len(list(self.trash.iterdir()))}-{path.name}")

    def reset_validator_cache(self) -> None:
        shutil.rmtree(self.gen_cache, ignore_errors=True)
        self.gen_cache.mkdir(parents=True)

    def measure(
        self,
        name: str,
        what: str,
        extra: list[str],
        *,
        before: Any = None,
        repeat: int = 1,
        validator_cache: str = "warm",
        target: float | None = None,
        cpu_target: float | None = None,
        env: dict[str, str] | None = None,
    ) -> Case:
        cmd = [self.args.gen, "compile", "--root", str(self.project), *extra]
        case = Case(
            name,
            what,
            " ".join(["gen", "compile", "--root", "DIR", *extra]),
            validator_cache,
            target=target,
            cpu_target=cpu_target,
        )
        runs = []
        for _ in range(repeat):
            if before:
                before()
            runs.append(run_gen(cmd, {**self.env, **(env or {})}, self.args.sample_ms))
            self.log(
                f"  {name}: {runs[-1].wall:.2f}s wall, {runs[-1].cpu:.2f}s CPU, "
                f"load {runs[-1].load:.1f}  "
                f"{runs[-1].stdout.strip()}"
            )
        case.walls = [r.wall for r in runs]
        case.wall = statistics.median(case.walls)
        case.cpu = statistics.median(r.cpu for r in runs)
        case.load_before = max(r.load for r in runs)
        case.max_rss = max(r.max_rss for r in runs)
        case.tree_rss = max(r.tree_rss for r in runs)
        case.tree_pss = max(r.tree_pss for r in runs)
        case.procs = max(r.procs for r in runs)
        case.files = count_files(self.compiled)
        m = _SUMMARY.search(runs[-1].stdout + runs[-1].stderr)
        if m:
            case.sites_compiled, case.sites_unchanged, case.files_changed = map(int, m.groups())
        self.cases.append(case)
        return case

    def log(self, text: str) -> None:
        if not self.args.json:
            print(text, file=sys.stderr, flush=True)


def run_bench(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    project, gen_cache = workdir / "project", workdir / "gen-cache"
    for path in (project, gen_cache, workdir / "code", workdir / "pycache", workdir / "trash"):
        if path.exists():
            if not (workdir / ".gen-bench").exists():
                raise SystemExit(
                    f"bench: {path} exists and {workdir} was not made by bench/compile.py; "
                    "pick an empty --workdir"
                )
            shutil.rmtree(path)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / ".gen-bench").write_text("made by bench/compile.py; safe to delete\n")
    code = snapshot(workdir / "code") if args.snapshot else None
    args.snapshot = code
    bench = Bench(args, project, gen_cache)

    started = time.perf_counter()
    generate(project, args.sites, args.services)
    generated = time.perf_counter() - started
    inputs = sum(len(f) for _, _, f in os.walk(project / "inventory"))
    bench.log(
        f"generated {args.sites} sites x {args.services} services in {project} "
        f"({inputs} inventory files, "
        f"{generated:.2f}s)"
    )
    repeat = args.repeat

    # Warm-up (not reported): fills the bytecode cache and the OS page cache, as on a machine that
    # has run gen before; the cold cases below start from an empty compiled/, .gen-cache/ and
    # (the first) an empty $GEN_CACHE_DIR.
    warm_up = ["-t", site_name(0)] if args.scaling else []  # --scaling: one site is enough
    warm = run_gen([args.gen, "compile", "--root", str(project), *warm_up], bench.env, 0)
    bench.log(f"  warm-up compile (not reported): {warm.wall:.2f}s")
    floor = run_gen([args.gen, "--version"], bench.env, 0)
    bench.log(f"  start-up floor (gen --version): {floor.wall:.2f}s")

    def cold_empty() -> None:
        bench.reset_output()
        bench.reset_validator_cache()

    # The targets are for 200 x 20; other shapes are measured without them.
    targets = TARGETS if (args.sites, args.services) == (200, 20) else {}
    cpu_targets = CPU_TARGETS if targets else {}

    # (1) cold, first run on a machine, then cold with the validator cache warm.
    if not args.scaling:
        bench.measure(
            "cold, empty validator cache",
            "no compiled/, no .gen-cache/, empty $GEN_CACHE_DIR",
            [],
            before=cold_empty,
            repeat=repeat,
            validator_cache="empty",
        )
    bench.measure(
        "cold",
        "no compiled/, no .gen-cache/",
        [],
        before=bench.reset_output,
        repeat=repeat,
        target=targets.get("cold"),
        cpu_target=cpu_targets.get("cold"),
    )
    after_cold = index_hashes(bench.compiled)
    checks: dict[str, Any] = {}
    if args.scaling:
        return _scaling_result(args, bench, after_cold, checks, code, inputs, generated, floor)

    # (1b) the merge-request gate: --check on a fresh clone (compiled/ committed, no .gen-cache/).
    def fresh_clone() -> None:
        shutil.rmtree(project / ".gen-cache", ignore_errors=True)

    stamps = file_stamps(bench.compiled)
    bench.measure(
        "check, fresh clone",
        "gen compile --check, compiled/ up to date, no .gen-cache/",
        ["--check"],
        before=fresh_clone,
        repeat=repeat,
        target=targets.get("check, fresh clone"),
    )
    checks["check on a fresh clone: up to date, nothing written"] = (
        file_stamps(bench.compiled) == stamps and not (project / ".gen-cache").exists()
    )
    # The no-op and one-site cases below start from a compile's cache, as a developer's would.
    run_gen([args.gen, "compile", "--root", str(project)], bench.env, 0)

    # (2) no-op: nothing changed.
    stamps = file_stamps(bench.compiled)
    noop = bench.measure(
        "no-op", "recompile, nothing changed", [], repeat=repeat, target=targets.get("no-op")
    )
    checks["no-op: no site recompiled"] = (
        noop.sites_compiled == 0
        if noop.sites_compiled is not None
        else "unknown: gen's summary line not found"
    )
    checks["no-op: no file rewritten"] = file_stamps(bench.compiled) == stamps

    # (3) one value in one site's target.
    site = site_name(args.sites // 2)
    before_hashes, before_entries, stamps = (
        index_hashes(bench.compiled),
        index_entries(bench.compiled, site),
        file_stamps(bench.compiled),
    )
    edits: list[str] = []

    def edit() -> None:
        edits.append(change_one_value(project, site))

    bench.measure(
        "one site changed",
        f"recompile after changing one value in {site}'s target",
        [],
        before=edit,
        repeat=repeat,
        target=targets.get("one site changed"),
    )
    after_hashes, after_entries, after_stamps = (
        index_hashes(bench.compiled),
        index_entries(bench.compiled, site),
        file_stamps(bench.compiled),
    )
    changed_sites = sorted(
        s
        for s in set(before_hashes) | set(after_hashes)
        if before_hashes.get(s) != after_hashes.get(s)
    )
    changed_entries = sorted(
        p
        for p in set(before_entries) | set(after_entries)
        if before_entries.get(p) != after_entries.get(p)
    )
    touched = sorted(
        {
            p.split(os.sep, 1)[0]
            for p in set(stamps) | set(after_stamps)
            if stamps.get(p) != after_stamps.get(p)
        }
    )
    checks["one site changed: index.json differs only for that site"] = changed_sites == [site]
    checks["one site changed: only that site's files were touched"] = touched == [site]
    checks["one site changed: files changed in the site's index"] = changed_entries
    checks["one site changed: edit"] = edits
    final_hashes = after_hashes

    # (4) baseline: one process, no cache (validator cache warm), from scratch.
    baseline = bench.measure(
        "baseline",
        "cold, single process, no compile cache",
        ["--no-cache", "--jobs", "1"],
        before=bench.reset_output,
        repeat=repeat,
    )
    checks["baseline output identical to incremental output"] = (
        index_hashes(bench.compiled) == final_hashes
    )
    checks["cold output has one index.json per site"] = len(after_cold) == args.sites
    final_tree = tree_hashes(bench.compiled)

    # (5) the reference: every template rendered for every site (no reuse), byte for byte.
    if args.reference:
        bench.measure(
            "reference, no render reuse",
            "cold, GEN_RENDER_REUSE=0: every template rendered for every site",
            ["--no-cache"],
            before=bench.reset_output,
            env={"GEN_RENDER_REUSE": "0"},
        )
        reference = tree_hashes(bench.compiled)
        differing = sorted(
            p for p in set(reference) | set(final_tree) if reference.get(p) != final_tree.get(p)
        )
        checks[f"render reuse byte-identical to rendering every time ({len(final_tree)} files)"] = (
            differing[:10] if differing else True
        )

    for case in bench.cases:
        case.vs_baseline = baseline.wall / case.wall if case.wall else None
    objects = sum(
        1
        for s in final_hashes
        for f in json.loads((bench.compiled / s / "index.json").read_text())["files"]
        if "object" in f
    )

    profile = None
    if args.profile:
        bench.reset_output()
        profile = run_profile(args, bench)

    return _result(args, bench, objects, checks, code, inputs, generated, floor, profile)


def _scaling_result(
    args: argparse.Namespace,
    bench: Bench,
    after_cold: dict[str, str],
    checks: dict[str, Any],
    code: Path | None,
    inputs: int,
    generated: float,
    floor: Run,
) -> dict[str, Any]:
    """--scaling: cold, then no-op, nothing else (how the two grow with the number of sites)."""
    stamps = file_stamps(bench.compiled)
    noop = bench.measure("no-op", "recompile, nothing changed", [], repeat=args.repeat)
    checks["no-op: no site recompiled"] = noop.sites_compiled == 0
    checks["no-op: no file rewritten"] = file_stamps(bench.compiled) == stamps
    checks["cold output has one index.json per site"] = len(after_cold) == args.sites
    objects = sum(
        1
        for s in after_cold
        for f in json.loads((bench.compiled / s / "index.json").read_text())["files"]
        if "object" in f
    )
    return _result(args, bench, objects, checks, code, inputs, generated, floor, None)


def _result(
    args: argparse.Namespace,
    bench: Bench,
    objects: int,
    checks: dict[str, Any],
    code: Path | None,
    inputs: int,
    generated: float,
    floor: Run,
    profile: dict[str, Any] | None,
) -> dict[str, Any]:
    workdir = bench.project.parent
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpu": _cpu_model(),
        },
        "code": code_version(code),
        "sites": args.sites,
        "services": args.services,
        "objects": objects,
        "inventory_files": inputs,
        "generate_seconds": round(generated, 3),
        "workdir": str(workdir),
        "memory_method": "max_rss: ru_maxrss from os.wait4 (largest single process of the tree); "
        f"tree_rss / tree_pss: sum over gen and its descendants, sampled from /proc every "
        f"{args.sample_ms:g} ms",
        "startup_floor_seconds": round(floor.wall, 3),
        "python_env": (
            "as given (--keep-env)"
            if args.keep_env
            else "PYTHONDONTWRITEBYTECODE unset, "
            "PYTHONPYCACHEPREFIX=<workdir>/pycache (bytecode cached)"
        ),
        "cases": [{**{k: v for k, v in asdict(c).items()}, "ok": c.ok} for c in bench.cases],
        "rss_target_bytes": RSS_TARGET,
        "rss_ok": all(c.tree_rss <= RSS_TARGET for c in bench.cases),
        "checks": checks,
        "profile": profile,
    }


def snapshot(dest: Path) -> Path:
    """Copy the generator package (as it is now) to ``dest/generator``; returns ``dest``."""
    shutil.copytree(
        REPO / "generator",
        dest / "generator",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    return dest


def code_version(code: Path | None) -> dict[str, Any]:
    """The git commit of the repository and a hash of the measured generator/*.py (dirty trees
    differ)."""
    package = (code or REPO) / "generator"
    h = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        h.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes())
    try:
        commit = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "-C", str(REPO), "status", "--porcelain", "--", "generator"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
        )
    except (OSError, subprocess.CalledProcessError):
        commit, dirty = "unknown", True
    return {
        "commit": commit,
        "generator_dirty": dirty,
        "generator_sha256": h.hexdigest()[:12],
        "snapshot": code is not None,
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def run_profile(args: argparse.Namespace, bench: Bench) -> dict[str, Any]:
    """cProfile a cold single-process compile (--no-cache --jobs 1, validator cache warm) and
    summarise it.

    cProfile's default (wall-clock) timer: on a busy machine every figure is inflated alike, so read
    the percentages. ``top_cumulative`` lists gen's own functions (the chain of CLI wrappers above
    ``compile.run`` left out), ``top_self`` every function by its own time.
    """
    import pstats

    out = Path(args.profile).resolve()
    python = Path(args.gen).parent / "python"
    cmd = [
        str(python),
        "-m",
        "cProfile",
        "-o",
        str(out),
        args.gen,
        "compile",
        "--root",
        str(bench.project),
        "--no-cache",
        "--jobs",
        "1",
    ]
    bench.log(f"profiling: {' '.join(cmd)}")
    started = time.perf_counter()
    subprocess.run(cmd, env=bench.env, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    stats = pstats.Stats(str(out))
    rows = []
    for (file, line, func), (_, calls, own, cum, _) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append(
            {
                "function": f"{_short(file)}:{line}({func})",
                "calls": calls,
                "tottime": round(own, 3),
                "cumtime": round(cum, 3),
                "ours": _short(file).startswith("generator/"),
            }
        )
    total = max(r["cumtime"] for r in rows)  # the gen script's <module>: the whole run
    for r in rows:
        r["cum_pct"], r["own_pct"] = (
            round(100 * r["cumtime"] / total, 1),
            round(100 * r["tottime"] / total, 1),
        )
    run = max(
        (
            r["cumtime"]
            for r in rows
            if r["function"].endswith("(run)")
            and r["function"].startswith("generator/build/pipeline.py")
        ),
        default=total,
    )
    ours = [
        r
        for r in rows
        if r["ours"] and r["cumtime"] <= run and not r["function"].startswith("generator/cli/")
    ]
    top = sorted(ours, key=lambda r: -r["cumtime"])[: args.profile_top]
    self_time = sorted(rows, key=lambda r: -r["tottime"])[: args.profile_top]
    return {
        "file": str(out),
        "command": " ".join(cmd),
        "wall_under_profiler": round(wall, 3),
        "profiled_seconds": round(total, 3),
        "top_cumulative": top,
        "top_self": self_time,
    }


def _short(file: str) -> str:
    if "/generator/" in file:
        return "generator/" + file.rsplit("/generator/", 1)[1]
    for marker in ("site-packages/", "/lib/python3.11/", "/lib/python3"):
        if marker in file:
            return file.split(marker, 1)[1]
    return file


def print_report(result: dict[str, Any]) -> None:
    m = result["machine"]
    print(
        f"gen compile, {result['sites']} sites x {result['services']} services = "
        f"{result['objects']} objects "
        f"({result['inventory_files']} inventory files); {m['cpus']} CPUs, "
        f"Python {m['python']}, {result['date']}"
    )
    print(f"start-up floor (gen --version): {result['startup_floor_seconds']:.2f}s")
    header = (
        "case",
        "wall s",
        "target",
        "x base",
        "CPU s",
        "load",
        "max RSS",
        "tree RSS",
        "tree PSS",
        "procs",
        "files",
        "sites",
    )
    rows = []
    for c in result["cases"]:
        target = (
            f"<={c['target']:g}s"
            + (f",{c['cpu_target']:g}cpu" if c.get("cpu_target") else "")
            + f" {'ok' if c['ok'] else 'MISS'}"
            if c["target"] is not None
            else ""
        )
        sites = (
            f"{c['sites_compiled']}+{c['sites_unchanged']}u"
            if c["sites_compiled"] is not None
            else ""
        )
        rows.append(
            (
                c["name"],
                f"{c['wall']:.2f}",
                target,
                f"{c['vs_baseline']:.1f}" if c["vs_baseline"] else "",
                f"{c['cpu']:.2f}",
                f"{c['load_before']:.1f}",
                f"{c['max_rss'] / MIB:.0f}M",
                f"{c['tree_rss'] / MIB:.0f}M",
                f"{c['tree_pss'] / MIB:.0f}M",
                str(c["procs"]),
                str(c["files"]),
                sites,
            )
        )
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print(
            "  ".join(
                str(v).ljust(w) if i == 0 else str(v).rjust(w)
                for i, (v, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    code = result["code"]
    print(
        f"code: commit {code['commit']}"
        f"{' + uncommitted generator/ changes' if code['generator_dirty'] else ''}, "
        f"generator/*.py sha256 {code['generator_sha256']}"
        f"{' (snapshot)' if code['snapshot'] else ''}"
    )
    print(
        f"x base: baseline wall / case wall (baseline = cold, --no-cache --jobs 1). "
        f"CPU s: user+sys of gen and "
        f"its workers. load: 1-min load average before the run (> {m['cpus']}: "
        f"the machine was busy, wall "
        f"times are inflated). sites: compiled+unchanged. "
        f"Memory: {result['memory_method']}. "
        f"Peak tree RSS {'<=' if result['rss_ok'] else '>'} "
        f"{result['rss_target_bytes'] // MIB} MiB in every case."
    )
    for name, value in result["checks"].items():
        print(f"check: {name}: {value}")
    p = result.get("profile")
    if p:
        print(
            f"\nprofile of a cold compile, --no-cache --jobs 1 "
            f"({p['file']}; {p['profiled_seconds']:.1f}s "
            f"profiled, {p['wall_under_profiler']:.1f}s wall under cProfile)"
        )
        print("gen's functions by cumulative time:   cum%   cum s  own s     calls")
        for r in p["top_cumulative"]:
            print(
                f"  {r['cum_pct']:5.1f} {r['cumtime']:7.2f} {r['tottime']:6.2f} {r['calls']:>9}  "
                f"{r['function']}"
            )
        print("all functions by own time:            own%   cum s  own s     calls")
        for r in p["top_self"]:
            print(
                f"  {r['own_pct']:5.1f} {r['cumtime']:7.2f} {r['tottime']:6.2f} {r['calls']:>9}  "
                f"{r['function']}"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sites", type=int, default=200, help="number of sites (targets); default 200"
    )
    parser.add_argument(
        "--services", type=int, default=20, help="number of services per site; default 20"
    )
    parser.add_argument(
        "--workdir", type=Path, help="generate here (kept) instead of a temporary directory"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary directory and print its path"
    )
    parser.add_argument(
        "--json", action="store_true", help="print machine-readable JSON instead of the table"
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs per case; the median wall time is reported"
    )
    parser.add_argument(
        "--gen", default=str(REPO / ".venv" / "bin" / "gen"), help="the gen executable"
    )
    parser.add_argument(
        "--sample-ms", type=float, default=50, help="/proc sampling interval; 0 disables it"
    )
    parser.add_argument(
        "--no-snapshot",
        dest="snapshot",
        action="store_false",
        help="run the live generator/ (default: a copy taken at start, so concurrent edits "
        "cannot change the code or invalidate the compile cache mid-run)",
    )
    parser.add_argument(
        "--keep-env",
        action="store_true",
        help="run gen with this environment as is (default: bytecode caching on, in the workdir)",
    )
    parser.add_argument(
        "--profile", metavar="FILE", help="also cProfile a cold single-process compile into FILE"
    )
    parser.add_argument("--profile-top", type=int, default=25, help="rows of the profile summary")
    parser.add_argument(
        "--scaling",
        action="store_true",
        help="measure only cold and no-op (for the growth with --sites; the warm-up compiles one "
        "site)",
    )
    parser.add_argument(
        "--no-reference",
        dest="reference",
        action="store_false",
        help="skip the byte-for-byte comparison with a compile that renders every template for "
        "every site (GEN_RENDER_REUSE=0)",
    )
    args = parser.parse_args(argv)
    if args.sites < 1 or args.services < 1 or args.repeat < 1:
        parser.error("--sites, --services and --repeat must be at least 1")
    if not os.access(args.gen, os.X_OK):
        parser.error(f"{args.gen} is not executable: run `make setup` first or pass --gen")

    if args.workdir:
        workdir, temporary = args.workdir.resolve(), False
    else:
        workdir, temporary = Path(tempfile.mkdtemp(prefix="gen-bench-")), True
    try:
        result = run_bench(args, workdir)
    finally:
        shutil.rmtree(workdir / "trash", ignore_errors=True)
        if temporary and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        json.dump(result, sys.stdout, indent=1)
        print()
    else:
        print_report(result)
        if not temporary or args.keep:
            print(f"project kept in {workdir / 'project'}")
    failed = [k for k, v in result["checks"].items() if v is False]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
