#!/usr/bin/env python3
"""Benchmark ``gen inventory`` (every target, one process) on bench/compile.py's synthetic project.

    .venv/bin/python bench/inventory.py                 # 200 sites x 20 services, 3 runs
    .venv/bin/python bench/inventory.py --sites 1000 --repeat 1

The project is generated exactly as bench/compile.py generates it (224 inventory files at 200x20).
Each run is a separate ``python -m generator -C DIR inventory`` subprocess (interpreter start-up
included, as a user pays it; YAML output, the default, discarded; ``-o json`` once more at the end,
slower: Python's JSON encoder with indentation is pure Python). Reported: wall time (median), CPU
time (user + sys, from ``os.wait4``), the 1-minute load average before the run, and, in-process,
the time to parse every inventory file once (the YAML loader alone). The bar (issue #12): all 200
targets of 200x20 in at most 2 s.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _compile_bench() -> object:
    spec = importlib.util.spec_from_file_location("bench_compile", REPO / "bench" / "compile.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_compile"] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def run_once(root: Path, extra: tuple[str, ...] = ()) -> tuple[float, float]:
    """Wall and CPU seconds of one ``gen inventory`` of every target (YAML, or ``extra`` args)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "generator", "-C", str(root), "inventory", *extra],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"gen inventory failed:\n{err.decode(errors='replace')}")
    return wall, usage.ru_utime + usage.ru_stime


def parse_all(root: Path) -> tuple[int, float]:
    """Files parsed and seconds to parse each inventory file once, in this process."""
    sys.path.insert(0, str(REPO))
    from generator.build.inventory.yamlsrc import load_file

    files = sorted((root / "inventory").rglob("*.yml"))
    start = time.perf_counter()
    for path in files:
        load_file(path, path.relative_to(root).as_posix())
    return len(files), time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sites", type=int, default=200)
    parser.add_argument("--services", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", type=Path, help="generate here (kept) instead of a temp dir")
    args = parser.parse_args()
    bench = _compile_bench()
    with tempfile.TemporaryDirectory(prefix="gen-inv-bench-") as tmp:
        root = args.workdir or Path(tmp) / "project"
        if not (root / "inventory").is_dir():
            bench.generate(root, args.sites, args.services)  # type: ignore[attr-defined]
        run_once(root)  # warm-up: page cache and bytecode
        walls, cpus, loads = [], [], []
        for _ in range(args.repeat):
            loads.append(os.getloadavg()[0])
            wall, cpu = run_once(root)
            walls.append(wall)
            cpus.append(cpu)
        json_wall, json_cpu = run_once(root, ("-o", "json"))
        count, parse = parse_all(root)
    wall = statistics.median(walls)
    print(f"gen inventory, all {args.sites} targets of {args.sites}x{args.services}, one process:")
    runs = ", ".join(f"{w:.2f}" for w in walls)
    print(f"  wall {wall:.2f} s (median of {args.repeat}; runs: {runs})")
    print(f"  cpu  {statistics.median(cpus):.2f} s   load average before: {max(loads):.2f}")
    print(f"  -o json: wall {json_wall:.2f} s, cpu {json_cpu:.2f} s (one run)")
    print(f"  parse every inventory file once: {count} files in {parse * 1000:.0f} ms")
    print(f"  bar: <= 2 s wall: {'ok' if wall <= 2.0 else 'MISSED'}")
    return 0 if wall <= 2.0 else 1


if __name__ == "__main__":
    sys.exit(main())
