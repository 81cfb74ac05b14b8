#!/usr/bin/env python3
"""Benchmark ``gen diff`` on a synthetic project of N sites x M services in a real git
repository.

    .venv/bin/python bench/diff.py                  # 200 sites x 20 services, 3 runs per case
    .venv/bin/python bench/diff.py --sites 20 --repeat 1 --json

The project comes from bench/compile.py's generator. It is compiled and committed on ``main``, then
one line of one target is changed on a feature branch (bench/compile.py's ``change_one_value``).
Each case is a ``gen diff`` subprocess (interpreter start-up included, as on a laptop or in CI):

    edited, not compiled          a laptop after the edit: the compile cache says 199 sites are
                                  current and they are read from compiled/; one site compiles in
                                  memory
    edited and compiled           a laptop after `gen compile`: every site is read from compiled/
    CI: --worktree                a clean clone after `gen compile --check` passed: no compile at
                                  all
    CI: --worktree, markdown      the same, rendering the merge-request comment
    CI: compiling, no cache       a clean clone diffing without --worktree: all sites compile
    CI: compile --check           for scale: what the gate before the diff costs in the same clone
    class change, --worktree      one line of a class used by every site: every site differs

gen runs from a snapshot of generator/ taken at the start (PYTHONPATH), so editing the package
while the benchmark runs does not change what is measured. Wall time and CPU time (user + system,
gen and the processes it waited for) are the medians of --repeat runs (one run for the two cases
that compile every site); max RSS is ru_maxrss of the largest process of the run.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parents[1]
TARGET_CPU_SECONDS = 2.0
"""What "fast enough to run on every push" means for the CI cases that do not compile, in CPU time:
on an idle runner a single-process run's wall time is about its CPU time, and CPU time does not
depend on how busy a shared machine is (wall time is reported too)."""


def _bench_compile() -> ModuleType:
    """bench/compile.py (its project generator), imported by path: ``compile`` is no package
    name."""
    spec = importlib.util.spec_from_file_location("bench_compile", REPO / "bench" / "compile.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_compile"] = module
    spec.loader.exec_module(module)
    return module


@dataclass
class Case:
    name: str
    command: str
    wall: float
    walls: list[float]
    cpu: float
    """user + system seconds of gen and the processes it waited for (git, compile workers): what the
    run costs regardless of how busy the machine is."""
    max_rss: int
    exit_status: int
    output_bytes: int
    target: float | None = None

    @property
    def ok(self) -> bool | None:
        return None if self.target is None else self.cpu <= self.target


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args, self.project = args, workdir / "project"
        # gen runs a snapshot of generator/ taken now: an edit of the package during the run would
        # change the compile cache's tool fingerprint and turn the incremental cases into full
        # compiles.
        shutil.copytree(REPO / "generator", workdir / "src" / "generator")
        self.env = {
            **os.environ,
            "GEN_CACHE_DIR": str(workdir / "gen-cache"),
            "PYTHONPYCACHEPREFIX": str(workdir / "pycache"),
            "PYTHONPATH": str(workdir / "src"),
        }
        self.env.pop("PYTHONDONTWRITEBYTECODE", None)
        self.env.pop("GEN_DIFF_BASE", None)
        self.cases: list[Case] = []

    def gen(self, *args: str, cwd: Path | None = None) -> tuple[float, float, int, int, bytes]:
        """(wall s, CPU s, ru_maxrss bytes, exit status, stdout) of one gen run; 0 and 1 are both
        fine."""
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            started = time.perf_counter()
            proc = subprocess.Popen(
                [self.args.gen, *args],
                cwd=cwd or self.project,
                env=self.env,
                stdout=out,
                stderr=err,
            )
            _, status, usage = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - started
            proc.returncode = os.waitstatus_to_exitcode(status)
            out.seek(0)
            err.seek(0)
            stdout, stderr = out.read(), err.read()
        if proc.returncode not in (0, 1):
            raise SystemExit(
                f"bench: gen {' '.join(args)} exited {proc.returncode}\n{stderr.decode()}"
            )
        return (
            wall,
            usage.ru_utime + usage.ru_stime,
            usage.ru_maxrss * 1024,
            proc.returncode,
            stdout,
        )

    def measure(
        self,
        name: str,
        *args: str,
        cwd: Path | None = None,
        before: Any = None,
        target: float | None = None,
        once: bool = False,
    ) -> Case:
        runs = []
        for _ in range(1 if once else self.args.repeat):
            if before:
                before()
            runs.append(self.gen(*args, cwd=cwd))
        walls = [r[0] for r in runs]
        case = Case(
            name,
            " ".join(["gen", *args]),
            statistics.median(walls),
            walls,
            statistics.median(r[1] for r in runs),
            max(r[2] for r in runs),
            runs[-1][3],
            len(runs[-1][4]),
            target,
        )
        self.cases.append(case)
        self.log(
            f"  {name}: {case.wall:.2f}s wall, {case.cpu:.2f}s CPU (exit {case.exit_status}, "
            f"{case.output_bytes} bytes of output)"
        )
        return case

    def log(self, text: str) -> None:
        if not self.args.json:
            print(text, file=sys.stderr, flush=True)


def git(root: Path, *args: str) -> str:
    return subprocess.run(
        [
            "git",
            "-c",
            "user.name=bench",
            "-c",
            "user.email=bench@example.com",
            "-c",
            "commit.gpgsign=false",
            *args,
        ],
        cwd=root,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def change_one_class_line(root: Path) -> str:
    """Raise a service class's CPU request: every site's StatefulSet of that service changes."""
    old = "cpu: 100m"
    found = [
        p
        for p in sorted((root / "inventory" / "classes" / "services").glob("*.yml"))
        if old in p.read_text()
    ]
    if not found:
        raise SystemExit(f"bench: no service class with {old!r}")
    path = found[0]
    text = path.read_text()
    path.write_text(text.replace(old, "cpu: 150m", 1))
    return f"{path.relative_to(root)}: {old} -> cpu: 150m"


def run_bench(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    bc = _bench_compile()
    bench = Bench(args, workdir)
    project = bench.project
    started = time.perf_counter()
    bc.generate(project, args.sites, args.services)
    (project / ".gitignore").write_text(".gen-cache/\n")
    bench.log(
        f"generated {args.sites} sites x {args.services} services "
        f"in {time.perf_counter() - started:.1f}s"
    )
    wall, *_ = bench.gen("compile")
    bench.log(f"  initial compile (not reported): {wall:.1f}s")
    bench.measure("start-up floor", "--version")
    git(project, "init", "-q", "-b", "main")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "synthetic platform")
    files = int(git(project, "ls-files", "compiled").count("\n"))
    git(project, "checkout", "-qb", "feature")

    site = bc.site_name(args.sites // 2)
    edit = bc.change_one_value(project, site)
    bench.log(f"edit: {edit}")
    bench.measure("edited, not compiled", "diff")
    bench.gen("compile")
    bench.measure("edited and compiled", "diff")
    git(project, "commit", "-qam", "one line")

    clone = workdir / "clone"
    git(workdir, "clone", "-q", "--no-local", str(project), str(clone))
    git(clone, "fetch", "-q", "origin", "main:main")
    bench.measure("CI: --worktree", "diff", "--worktree", cwd=clone, target=TARGET_CPU_SECONDS)
    bench.measure(
        "CI: --worktree, markdown",
        "diff",
        "--worktree",
        "-o",
        "markdown",
        cwd=clone,
        target=TARGET_CPU_SECONDS,
    )
    bench.measure("CI: compiling, no cache", "diff", "--no-cache", cwd=clone, once=True)
    bench.measure("CI: compile --check", "compile", "--check", "--no-cache", cwd=clone, once=True)

    class_edit = change_one_class_line(clone)
    bench.log(f"edit: {class_edit}")
    bench.gen("compile", cwd=clone)
    case = bench.measure("class change, --worktree", "diff", "--worktree", cwd=clone)
    summary = json.loads(bench.gen("diff", "--worktree", "-o", "json", cwd=clone)[4])["summary"]
    case.name += f" ({summary['sites']['changed']} sites, {summary['objects']['changed']} objects)"

    return {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "sites": args.sites,
        "services": args.services,
        "compiled_files": files,
        "edit": edit,
        "class_edit": class_edit,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average": [round(x, 1) for x in os.getloadavg()],
        },
        "cases": [{**c.__dict__, "ok": c.ok} for c in bench.cases],
    }


def print_report(result: dict[str, Any]) -> None:
    m = result["machine"]
    print(
        f"gen diff, {result['sites']} sites x {result['services']} services "
        f"({result['compiled_files']} compiled "
        f"files); {m['cpus']} CPUs, Python {m['python']}, load {m['load_average']}, "
        f"{result['date']}"
    )
    print(f"edit: {result['edit']}; class edit: {result['class_edit']}")
    rows = [("case", "wall s", "CPU s", "target (CPU)", "max RSS", "exit", "output")]
    for c in result["cases"]:
        target = f"<={c['target']:g}s {'ok' if c['ok'] else 'MISS'}" if c["target"] else ""
        rows.append(
            (
                c["name"],
                f"{c['wall']:.2f}",
                f"{c['cpu']:.2f}",
                target,
                f"{c['max_rss'] / 2**20:.0f}M",
                str(c["exit_status"]),
                f"{c['output_bytes']}B",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(
                v.ljust(w) if i == 0 else v.rjust(w)
                for i, (v, w) in enumerate(zip(row, widths, strict=True))
            )
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sites", type=int, default=200)
    parser.add_argument("--services", type=int, default=20)
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs per case; the median is reported"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--gen", default=str(REPO / ".venv" / "bin" / "gen"))
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="gen-bench-diff-"))
    try:
        result = run_bench(args, workdir)
    finally:
        if args.keep:
            print(f"kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        json.dump(result, sys.stdout, indent=1)
        print()
    else:
        print_report(result)
    return 0 if all(c["ok"] is not False for c in result["cases"]) else 1


if __name__ == "__main__":
    sys.exit(main())
