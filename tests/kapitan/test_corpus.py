"""The differential corpus: gen gives Kapitan's parameters, or refuses with one located message.

Each directory under cases/ is one small inventory for one behaviour of Kapitan 0.36.3 (reclass),
with ``kapitan.yml``: the parameters Kapitan gives, recorded by tools/record-kapitan.py. gen is
compared with the recorded files always; with Kapitan itself too when the KAPITAN environment
variable (or PATH) names a ``kapitan`` executable (skipped otherwise).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from generator.build.inventory import Inventory, Problem, settings_for
from generator.core.errors import GenError, problem_key

CASES = Path(__file__).parent / "cases"
TOOL = Path(__file__).parents[2] / "tools" / "record-kapitan.py"

# What gen says beyond the values: the warnings (located, file:line  path  start of message) of a
# case that matches Kapitan, or the one located error of a case gen refuses.
WARNINGS: dict[str, list[str]] = {
    "core": [],
    "yaml11-scalars": [
        "inventory/targets/site.yml:2:3  $.parameters.mode  0550 reads as the int 360 in YAML 1.1",
        "inventory/targets/site.yml:4:11  $.parameters.flags[0]  yes reads as the boolean true",
        "inventory/targets/site.yml:4:16  $.parameters.flags[1]  no reads as the boolean false",
        "inventory/targets/site.yml:4:20  $.parameters.flags[2]  on reads as the boolean true",
        "inventory/targets/site.yml:4:24  $.parameters.flags[3]  off reads as the boolean false",
        "inventory/targets/site.yml:4:29  $.parameters.flags[4]  Yes reads as the boolean true",
        "inventory/targets/site.yml:4:34  $.parameters.flags[5]  NO reads as the boolean false",
        "inventory/targets/site.yml:5:3  $.parameters.duration  1:30 reads as the int 90",
        "inventory/targets/site.yml:6:3  $.parameters.date  2024-01-31 reads as a date",
        "inventory/targets/site.yml:7:3  $.parameters.exp  1e3 reads as a string in YAML 1.1",
        "inventory/targets/site.yml:8:3  $.parameters.octal12  0o17 reads as a string in YAML 1.1",
        "inventory/targets/site.yml:9:3  $.parameters.underscored  1_000 reads as the int 1000",
        "inventory/targets/site.yml:13:3  $.parameters.sexagesimal_float  1:30.5 reads as the "
        "float 90.5",
    ],
    "merge-keys": [],
    "duplicate-keys": [
        "inventory/targets/site.yml:4:3  $.parameters.a  duplicate key 'a' (also at line 2)",
        "inventory/targets/site.yml:5:13  $.parameters.m.k  duplicate key 'k' (also at line 5)",
    ],
    "dotted-names": [],
    "relative-init": [],
    "class-references": [],
    "reclass-config": [],
    "class-mappings-path": [
        "inventory/reclass-config.yml:4:5  class 'role.api' not found: skipped "
        "(ignore_class_notfound)",
    ],
    "reclass-metadata": [],
    "unknown-top-level": [
        "inventory/targets/site.yml:1:1  unknown top-level key 'params' is ignored",
    ],
    "values-in-strings": [
        "inventory/targets/site.yml:7:3  $.s_cfg  reference ${cfg} is a mapping and is rendered "
        "into this string as \"{'k': 'v'}\"",
        "inventory/targets/site.yml:8:3  $.s_items  reference ${items} is a list and is rendered",
        "inventory/targets/site.yml:9:3  $.s_none  reference ${none} is None and is rendered",
        "inventory/targets/site.yml:10:3  $.s_flag  reference ${flag} is True and is rendered",
    ],
    "tabs": [],
    "overwritten-missing-reference": [],
    "integer-keys": [],
    "inventory-queries": [],
    "inventory-query-tests": [
        "inventory/targets/lb.yml:6:3  $.not_db  inventory query $[ if exports:role != db ] lists "
        "targets by name",
        "inventory/targets/lb.yml:7:3  $.port80_or_db  inventory query $[ if exports:port == 80 or "
        "exports:role == db ] lists targets by name",
    ],
}
REFUSED: dict[str, str] = {
    "config-unknown-key": "inventory/reclass-config.yml:2:1  unknown key 'fancy_option' in "
    "reclass-config.yml",
}


def cases() -> list[str]:
    return sorted(p.name for p in CASES.iterdir() if (p / "inventory").is_dir())


def gen_parameters(case: Path) -> tuple[dict[str, Any], list[Problem]]:
    """Every target's parameters as gen gives them, and the warnings (each once)."""
    inv = Inventory(case, settings_for(case, strict=False))
    out: dict[str, Any] = {}
    warnings: set[Problem] = set()
    for name in inv.target_files():
        target = inv.target(name)
        out[name] = target.parameters
        warnings.update(target.warnings)
    return out, sorted(warnings, key=problem_key)


def recorded(text: str) -> dict[str, Any]:
    data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    assert isinstance(data, dict) and "targets" in data, text[:200]
    targets = data["targets"]
    assert isinstance(targets, dict)
    return targets


def test_every_case_is_recorded_and_has_an_expectation() -> None:
    assert cases(), "no corpus"
    for case in cases():
        assert (CASES / case / "kapitan.yml").is_file(), f"{case}: run tools/record-kapitan.py"
        assert (case in WARNINGS) != (case in REFUSED), case


# Lists of targets from inventory queries: Kapitan's are in file system order, gen's by name.
ANY_ORDER = {
    ("inventory-query-tests", "lb", "not_db"),
    ("inventory-query-tests", "lb", "port80_or_db"),
}


@pytest.mark.parametrize("case", sorted(WARNINGS))
def test_gen_gives_kapitans_parameters(case: str) -> None:
    expected = recorded((CASES / case / "kapitan.yml").read_text())
    got, warnings = gen_parameters(CASES / case)
    for where, target, key in ANY_ORDER:
        if where == case:
            assert got[target][key] == sorted(got[target][key])
            expected[target][key] = sorted(expected[target][key])
    assert got == expected
    shown = [w.format() for w in warnings]
    assert len(shown) == len(WARNINGS[case]), "\n".join(shown)
    for line, start in zip(shown, WARNINGS[case], strict=True):
        assert line.startswith(start), line


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_gen_refuses_what_it_does_not_support_with_a_located_message(case: str) -> None:
    with pytest.raises(GenError) as exc:
        gen_parameters(CASES / case)
    assert str(exc.value).startswith(REFUSED[case]), str(exc.value)


@pytest.mark.parametrize("case", sorted(WARNINGS))
def test_gen_warnings_are_errors_when_strict(case: str) -> None:
    root = CASES / case
    inv = Inventory(root, settings_for(root, strict=True))
    if not WARNINGS[case]:
        for name in inv.target_files():
            inv.target(name)
        return
    with pytest.raises(GenError):
        for name in inv.target_files():
            inv.target(name)


def _kapitan() -> str | None:
    return os.environ.get("KAPITAN") or shutil.which("kapitan")


@pytest.mark.skipif(_kapitan() is None, reason="no kapitan (set KAPITAN=/path/to/kapitan)")
def test_recorded_files_are_what_kapitan_gives_today(tmp_path: Path) -> None:
    kapitan = _kapitan()
    assert kapitan is not None
    subprocess.run(
        [sys.executable, str(TOOL), "--kapitan", kapitan, "--out", str(tmp_path)], check=True
    )
    for case in cases():
        live = recorded((tmp_path / case / "kapitan.yml").read_text())
        assert live == recorded((CASES / case / "kapitan.yml").read_text()), case
