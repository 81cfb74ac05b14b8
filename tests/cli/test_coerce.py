"""Option values coerced without pydantic (``generator.cli._coerce``): the same values as typer's
own coercion, typer's messages for invalid ones, and no pydantic import on a plain command line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from generator.cli import _coerce
from tests.cli import _coerce_app

ROOT = Path(__file__).resolve().parents[2]


def _unpatched(args: list[str]) -> tuple[int, str]:
    """Exit code and output of ``run ARGS`` through typer's own (pydantic) coercion, in a process
    that never imports generator.cli."""
    script = (
        "import sys; sys.path.insert(0, sys.argv[1]); from tests.cli import _coerce_app; "
        "from typer.testing import CliRunner; "
        "r = CliRunner().invoke(_coerce_app.make(), sys.argv[2:]); "
        "print(r.exit_code); print(r.output, end='')"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(ROOT), "run", *args],
        capture_output=True,
        text=True,
        check=True,
    )
    code, _, output = done.stdout.partition("\n")
    return int(code), output


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--root", "a/b", "--name", "n", "--jobs", "3", "--mode", "slow"],
        ["--tag", "one", "--tag", "two", "--shard", "2/4", "--jobs", "+7"],
        ["--where", ".", "--count", "5"],
    ],
)
def test_plain_values_are_converted_as_typer_converts_them(args: list[str]) -> None:
    _coerce.install()
    plain = CliRunner().invoke(_coerce_app.make(), ["run", *args])
    assert plain.exit_code == 0, plain.output
    assert (plain.exit_code, plain.output) == _unpatched(args)


@pytest.mark.parametrize(
    "args",
    [
        ["--jobs", "-1"],
        ["--jobs", "many"],
        ["--mode", "medium"],
        ["--jobs", ""],
        ["--where", "no/such/dir"],
        ["--count", "x"],
    ],
)
def test_invalid_values_keep_typers_messages(args: list[str]) -> None:
    _coerce.install()
    result = CliRunner().invoke(_coerce_app.make(), ["run", *args])
    assert result.exit_code == 2
    assert "Invalid value" in result.output
    assert (result.exit_code, result.output) == _unpatched(args)


@pytest.mark.parametrize(
    "argv",
    [
        "['gen', 'compile', '--root', sys.argv[1], '-j', '1', '-o', 'json']",
        "['gen', '-C', sys.argv[1], 'inventory', '-t', 'site']",
    ],
)
def test_plain_command_lines_do_not_import_pydantic(tmp_path: Path, argv: str) -> None:
    script = (
        "import sys\n"
        "from generator.cli import main\n"
        f"sys.argv = {argv}\n"
        "try:\n"
        "    main()\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('pydantic' in sys.modules, file=sys.stderr)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, env=env
    )
    assert done.stderr.strip().splitlines()[-1] == "False", done.stderr
