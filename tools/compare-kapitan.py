#!/usr/bin/env python3
"""Compare gen's parameters with Kapitan's on any project (a directory holding ``inventory/``).

    PYTHONPATH=. .venv/bin/python tools/compare-kapitan.py --kapitan ~/kapitan-venv/bin/kapitan DIR

Loads every target with Kapitan (as tools/record-kapitan.py does) and with gen, and prints each
value that differs (``target  path  gen=...  kapitan=...``), then a count; exit 1 if any differs.
Kapitan's own compile model (``parameters.kapitan``) fills defaults that reclass never set (e.g.
``dependencies[].force_fetch: false``); keys Kapitan adds there are not counted, values present in
both are. gen's warnings are printed on stderr.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent


def _recorder() -> Any:
    spec = importlib.util.spec_from_file_location(
        "record_kapitan", REPO / "tools/record-kapitan.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def differences(gen: Any, kapitan: Any, path: tuple[Any, ...], out: list[Any]) -> None:
    if type(gen) is not type(kapitan):
        out.append((path, gen, kapitan))
    elif isinstance(gen, dict):
        for key in gen.keys() | kapitan.keys():
            if key not in kapitan:
                out.append(((*path, key), gen[key], "<missing>"))
            elif key not in gen:
                if path[:1] != ("kapitan",):  # Kapitan's compile-model defaults
                    out.append(((*path, key), "<missing>", kapitan[key]))
            else:
                differences(gen[key], kapitan[key], (*path, key), out)
    elif isinstance(gen, list):
        if len(gen) != len(kapitan):
            out.append((path, f"{len(gen)} items", f"{len(kapitan)} items"))
        else:
            for i, (a, b) in enumerate(zip(gen, kapitan, strict=True)):
                differences(a, b, (*path, i), out)
    elif gen != kapitan:
        out.append((path, gen, kapitan))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path, help="the project (holding inventory/)")
    parser.add_argument(
        "--kapitan",
        default=os.environ.get("KAPITAN") or shutil.which("kapitan"),
        help="the kapitan executable (default: $KAPITAN, then PATH)",
    )
    args = parser.parse_args()
    if not args.kapitan:
        print("no kapitan executable: pass --kapitan or set KAPITAN", file=sys.stderr)
        return 2
    sys.path.insert(0, str(REPO))
    from generator.build.inventory import Inventory, settings_for

    recorded = yaml.load(
        _recorder().record(args.kapitan, args.root.resolve()),
        Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader),
    )
    if "error" in recorded:
        print(f"kapitan failed: {recorded['error']}")
        return 1
    kapitan = recorded["targets"]
    inv = Inventory(args.root, settings_for(args.root))
    names = list(inv.target_files())
    found: list[Any] = []
    warnings: set[str] = set()
    for name in sorted(set(names) | set(kapitan)):
        if name not in names or name not in kapitan:
            print(f"{name}  only in {'gen' if name in names else 'kapitan'}")
            found.append(name)
            continue
        target = inv.target(name)
        warnings.update(w.format() for w in target.warnings)
        out: list[Any] = []
        differences(target.parameters, kapitan[name], (), out)
        for path, a, b in out:
            shown = ".".join(str(p) for p in path)
            print(f"{name}  {shown}  gen={a!r:.100}  kapitan={b!r:.100}")
        found += out
    for line in sorted(warnings):
        print(f"warning: {line}", file=sys.stderr)
    print(f"{len(names)} targets, {len(found)} differences")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
