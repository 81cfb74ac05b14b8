"""What invalidates the compile cache: the code of the layers a compile runs, and nothing else."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import generator
from generator.build import cache


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the generator package that tool_fingerprint reads instead of the real one."""
    copy = tmp_path / "generator"
    shutil.copytree(
        Path(generator.__file__).parent, copy, ignore=shutil.ignore_patterns("__pycache__")
    )
    monkeypatch.setattr(generator, "__file__", str(copy / "__init__.py"))
    return copy


def edited(package: Path, rel: str) -> str:
    """The fingerprint after appending a comment to ``rel`` (a path under the package)."""
    path = package / rel
    path.write_text(path.read_text() + "\n# edited\n")
    return cache.tool_fingerprint()


@pytest.mark.parametrize(
    "rel", ["build/render.py", "build/stages/agent_rbac.py", "core/yamlio.py", "formats/n9e.py"]
)
def test_editing_code_a_compile_runs_invalidates_the_cache(package: Path, rel: str) -> None:
    before = cache.tool_fingerprint()
    assert edited(package, rel) != before


@pytest.mark.parametrize(
    "rel",
    [
        "run/agent/loop.py",
        "deliver/ferry/pack.py",
        "review/diff.py",
        "cli/_compile.py",
        "build/cache.py",
    ],
)
def test_editing_code_a_compile_never_runs_keeps_the_cache(package: Path, rel: str) -> None:
    before = cache.tool_fingerprint()
    assert edited(package, rel) == before
