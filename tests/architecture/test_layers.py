"""The layer contracts of .importlinter hold, and they catch the edges they exist for.

The contracts are only worth something if they fail when the layering is broken, so each case here
copies the package, adds one forbidden import, and runs the real ``lint-imports`` on the copy.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.project import REPO

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


LAYERS = "layers: core < formats < build | deliver < review | run < cli"
RUN_NEVER_COMPILES = (
    "the in-cluster code (run) never reaches the compiler (build), not even indirectly"
)
JINJA2 = "jinja2 only in build.render"


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """Run lint-imports on the package under ``root`` (its .importlinter, its generator/)."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def flat(text: str) -> str:
    """lint-imports wraps its lines at 80 columns: one line, single spaces."""
    return " ".join(text.split())


@pytest.fixture(scope="module")
def package_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("layers")
    shutil.copytree(
        REPO / "generator", root / "generator", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(REPO / ".importlinter", root / ".importlinter")
    return root


def with_import(package_copy: Path, tmp_path: Path, module: str, statement: str) -> Path:
    """A copy of the package where ``module`` (a path under generator/) also runs ``statement``."""
    root = tmp_path / "copy"
    shutil.copytree(package_copy, root)
    path = root / module
    path.write_text(path.read_text() + f"\n{statement}\n")
    return root


def test_the_contracts_hold_for_the_package_as_it_is(package_copy: Path) -> None:
    done = lint_imports(package_copy)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def test_the_compile_path_importing_the_agent_breaks_the_layers(
    package_copy: Path, tmp_path: Path
) -> None:
    root = with_import(
        package_copy,
        tmp_path,
        "generator/build/render.py",
        "from generator.run.agent import plan  # noqa",
    )
    done = lint_imports(root)
    assert done.returncode != 0
    assert f"{LAYERS} BROKEN" in flat(done.stdout)
    assert f"{RUN_NEVER_COMPILES} KEPT" in flat(done.stdout)
    assert "generator.build.render -> generator.run.agent.plan" in done.stdout


def test_the_agent_reaching_the_compiler_indirectly_breaks_a_contract(
    package_copy: Path, tmp_path: Path
) -> None:
    # The agent imports the ferry; deliver may not import build (independent layers), and the
    # agent's path through the ferry to the compiler is caught by the run-never-compiles contract
    # as well.
    root = with_import(
        package_copy,
        tmp_path,
        "generator/deliver/ferry/receive.py",
        "from generator.build import render  # noqa",
    )
    done = lint_imports(root)
    assert done.returncode != 0
    assert f"{RUN_NEVER_COMPILES} BROKEN" in flat(done.stdout)
    assert f"{LAYERS} BROKEN" in flat(done.stdout)


def test_jinja2_outside_the_renderer_breaks_a_contract(package_copy: Path, tmp_path: Path) -> None:
    root = with_import(
        package_copy, tmp_path, "generator/build/pipeline.py", "import jinja2  # noqa"
    )
    done = lint_imports(root)
    assert done.returncode != 0
    assert f"{JINJA2} BROKEN" in flat(done.stdout)
