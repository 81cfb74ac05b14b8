"""The reference platform this repository compiles, and tree digests to prove nothing changed."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PROJECT_DIRS = ("inventory", "components", "schemas", "compiled", "secrets")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A writable copy of the reference platform, compiled/ included."""
    root = tmp_path / "project"
    for name in PROJECT_DIRS:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, root / name)
    return root


def tree_digest(directory: Path) -> dict[str, str]:
    """sha256 of every file under ``directory`` by relative path (to prove nothing changed)."""
    return {
        p.relative_to(directory).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }
