#!/usr/bin/env python3
"""Record what Kapitan gives for each inventory of the differential corpus (tests/kapitan/cases/).

For every case directory holding an ``inventory/``, loads the inventory with Kapitan there (in
Kapitan's own Python, found from the ``kapitan`` script) and writes ``<case>/kapitan.yml``: each
target's parameters as Kapitan holds them, or the error it gives. Dates become their ISO text
(gen keeps the text as written; the corpus compares values).
tests/kapitan/test_corpus.py compares gen with these files always, and with Kapitan live when the
KAPITAN environment variable (or PATH) names a ``kapitan`` executable.

    python3 -m venv /tmp/kapitan-venv && /tmp/kapitan-venv/bin/pip install kapitan==0.36.3
    tools/record-kapitan.py --kapitan /tmp/kapitan-venv/bin/kapitan          # rewrite the corpus
    tools/record-kapitan.py --kapitan ... --out /tmp/x                        # write elsewhere

Needs only PyYAML besides Kapitan itself. Prints one line per case.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

CASES = Path(__file__).resolve().parent.parent / "tests" / "kapitan" / "cases"
RECORD = "kapitan.yml"


# Runs inside Kapitan's own Python: each target's parameters as Kapitan holds them in memory (what
# its templates see), dumped with PyYAML (YAML 1.1 tags: strings that look like numbers are quoted).
# `kapitan inventory`'s printed YAML is not exact (it prints the string 0o17 as 15).
_PROBE = r"""
import datetime, sys, yaml
from kapitan.resources import get_inventory

compose = sys.argv[1] == "1"
inv = get_inventory("inventory") if not compose else None
if compose:
    from kapitan import cached
    from kapitan.inventory.backends.reclass import ReclassInventory
    inv = ReclassInventory("inventory", compose_target_name=True)

def plain(value):
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    return value

out = {}
for name, target in sorted(inv.inventory.items()):
    params = dict(target["parameters"])
    # Kapitan's own model adds these (unless the inventory sets them): not reclass's values.
    if params.get("_kapitan_") is None:
        params.pop("_kapitan_", None)
    kapitan = params.get("kapitan")
    if isinstance(kapitan, dict) and not kapitan.get("compile") and not kapitan.get("labels"):
        params.pop("kapitan")
    out[name] = plain(params)
sys.stdout.write(yaml.safe_dump({"targets": out}, sort_keys=True, allow_unicode=True))
"""


def _python_of(kapitan: str) -> str:
    """The interpreter of a pip-installed ``kapitan`` script (its ``#!`` line)."""
    path = shutil.which(kapitan) or kapitan
    with open(path, "rb") as f:
        first = f.readline().decode("utf-8", "replace").strip()
    if not first.startswith("#!"):
        raise SystemExit(f"{path} is not a Python script; point --kapitan at a pip-installed one")
    return first[2:].strip().split()[0]


def record(kapitan: str, case: Path) -> str:
    """Kapitan's parameters of every target of ``case`` as YAML (``error: ...`` when it fails)."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    config = case / "inventory" / "reclass-config.yml"
    # Kapitan names its targets by file unless told (--compose-target-name); with reclass's
    # composed node names alone it fails (KeyError), so the flag goes with the config key.
    compose = config.is_file() and bool(
        (yaml.safe_load(config.read_text()) or {}).get("compose_node_name")
    )
    proc = subprocess.run(
        [_python_of(kapitan), "-c", _PROBE, "1" if compose else "0"],
        cwd=case,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    if proc.returncode != 0:
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        return yaml.safe_dump({"error": lines[-1] if lines else f"exit {proc.returncode}"})
    return proc.stdout


def cases(root: Path = CASES) -> list[Path]:
    return sorted(p for p in root.iterdir() if (p / "inventory").is_dir())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--kapitan",
        default=os.environ.get("KAPITAN") or shutil.which("kapitan"),
        help="the kapitan executable (default: $KAPITAN, then PATH)",
    )
    parser.add_argument("--out", type=Path, help="write <out>/<case>/kapitan.yml instead")
    parser.add_argument("case", nargs="*", help="only these cases (directory names)")
    args = parser.parse_args()
    if not args.kapitan:
        print("no kapitan executable: pass --kapitan or set KAPITAN", file=sys.stderr)
        return 2
    for case in cases():
        if args.case and case.name not in args.case:
            continue
        text = record(args.kapitan, case)
        out = (args.out / case.name if args.out else case) / RECORD
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(f"# Recorded by tools/record-kapitan.py from Kapitan's inventory.\n{text}")
        print(f"{case.name}: {text.splitlines()[0][:100]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
