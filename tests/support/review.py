"""A git repository of the reference platform, for gen diff and its CLI."""

from __future__ import annotations

import subprocess
from pathlib import Path

from generator.build import pipeline

GATEKEEPER = "inventory/classes/services/gatekeeper.yml"
STS = "cn-east-1/manifests/project/statefulset-gatekeeper.yaml"


def git(root: Path, *args: str) -> str:
    """Run git in ``root`` with a fixed identity and no signing; its stdout."""
    done = subprocess.run(
        [
            "git",
            "-c",
            "user.name=Test",
            "-c",
            "user.email=test@example.com",
            "-c",
            "commit.gpgsign=false",
            "-c",
            "init.defaultBranch=main",
            *args,
        ],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def make_repo(root: Path) -> Path:
    """Compile the project (so compiled/ is current), then commit everything on ``main``."""
    pipeline.run(pipeline.Options(root))
    (root / ".gitignore").write_text(".gen-cache/\n")
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "reference platform")
    return root


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))
