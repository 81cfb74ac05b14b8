"""The slim agent: ``gen-agent`` starts without the compiler, which is the ``compile`` extra."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

from generator import cli
from tests.support.project import REPO

COMPILER = (
    "jinja2",
    "ruamel",
    "jsonschema",
    "fastjsonschema",
    "kubernetes_validate",
    "referencing",
)
BLOCK_COMPILER = f"import sys\nfor m in {COMPILER!r}: sys.modules[m] = None\n"
"""Makes importing any compiler library fail as if it were not installed."""


def python(code: str, *args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    """``python -c code args`` with this checkout first on the path."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, cwd=cwd
    )


def test_importing_the_agent_entry_point_loads_no_compiler_library() -> None:
    code = (
        "import json, sys\nfrom generator.cli import agent_main\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    done = python(code)
    assert done.returncode == 0, done.stderr
    loaded = {name.split(".")[0] for name in json.loads(done.stdout)}
    assert "generator" in loaded and "typer" in loaded
    assert loaded.isdisjoint(COMPILER), sorted(loaded & set(COMPILER))


def test_the_agent_runs_without_the_compiler() -> None:
    # start: what `gen-agent run` imports (the kubernetes client only tries kubernetes_validate)
    code = (
        "from generator.run.agent import start\nfrom generator.cli import agent_main\nagent_main()"
    )
    done = python(BLOCK_COMPILER + code, "run", "--help")
    assert done.returncode == 0, done.stderr
    assert re.search(r"Usage: gen-agent run \[OPTIONS\]", done.stdout)
    assert "--envelopes DIR" in done.stdout and "--allowed-signers FILE" in done.stdout
    assert "<bool>" not in done.stdout and "╭" not in done.stdout  # plain help, as in `gen`


def test_gen_agent_is_the_agent_entry_point_and_gen_agent_still_works() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["gen-agent"] == "generator.cli:agent_main"
    assert cli.agent_main.__module__ == "generator.cli"
    done = python("from generator.cli import main\nmain()", "agent", "run", "--help")
    assert done.returncode == 0, done.stderr
    assert "--envelopes" in done.stdout


def test_the_compiler_libraries_are_the_compile_extra_only() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]

    def names(requirements: list[str]) -> set[str]:
        return {re.split(r"[<>=\[ ]", r, maxsplit=1)[0].lower() for r in requirements}

    compiler = {cli.COMPILE_EXTRA[m] for m in COMPILER}
    assert names(project["optional-dependencies"]["compile"]) == compiler
    assert names(project["dependencies"]).isdisjoint(compiler)


def test_a_command_that_compiles_without_the_compiler_says_what_to_install(project: Path) -> None:
    for command in (["compile"], ["validate"]):
        done = python(
            BLOCK_COMPILER + "from generator.cli import main\nmain()",
            *command,
            "--root",
            str(project),
        )
        assert done.returncode == 1, (command, done.stdout, done.stderr)
        [line] = done.stderr.splitlines()
        said = re.fullmatch(
            r"gen: this command compiles, and the compiler is not installed "
            r"\((\S+) is missing\): pip install 'gen-gitops\[compile\]'",
            line,
        )
        assert said and said[1] in cli.COMPILE_EXTRA.values(), line


def test_the_pre_commit_hooks_install_the_compile_extra() -> None:
    extra = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    hooks = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())
    assert hooks and all(hook["additional_dependencies"] == extra["compile"] for hook in hooks)


def test_inventory_needs_no_compiler(project: Path) -> None:
    # The inventory is read with PyYAML (a base dependency), as Kapitan reads it.
    done = python(
        BLOCK_COMPILER + "from generator.cli import main\nmain()",
        *("inventory", "-t", "cn-east-1", "--root", str(project)),
    )
    assert done.returncode == 0, done.stderr
    assert "  gatekeeper_version: v362\n" in done.stdout
