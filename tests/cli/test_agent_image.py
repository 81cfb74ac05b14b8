"""The agent image's inputs: agent/requirements.lock pins gen's base dependencies (no compile
extra), every file hashed; agent/Dockerfile installs from the locks only, on a base by digest.
(No Docker engine here: tools/check-agent-lock.sh runs the image's build stage in a venv.)"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from generator import cli
from tests.support.project import REPO

AGENT = REPO / "agent"
PIN = re.compile(
    r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+) \\\n((?:    --hash=sha256:[0-9a-f]{64}(?: \\)?\n)+)",
    re.M,
)


def pins(lock: Path) -> dict[str, Version]:
    """name -> pinned version of every requirement in ``lock``, each checked to carry hashes."""
    text = lock.read_text()
    found: dict[str, Version] = {canonicalize_name(m[1]): Version(m[2]) for m in PIN.finditer(text)}
    requirements = [line for line in text.splitlines() if re.match(r"^[A-Za-z0-9]", line)]
    assert len(found) == len(requirements), "a requirement without --hash lines"
    return found


def pyproject() -> dict[str, object]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def test_the_lock_pins_every_base_dependency_within_its_range() -> None:
    locked = pins(AGENT / "requirements.lock")
    project = pyproject()["project"]
    assert isinstance(project, dict)
    for line in project["dependencies"]:
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        assert name in locked, f"{name} is not in agent/requirements.lock: run tools/lock-agent.sh"
        assert locked[name] in requirement.specifier, (name, str(locked[name]), line)


def test_the_lock_holds_no_compiler_library() -> None:
    locked = pins(AGENT / "requirements.lock")
    compiler = {canonicalize_name(name) for name in cli.COMPILE_EXTRA.values()}
    assert compiler.isdisjoint(locked), compiler & set(locked)


def test_the_build_lock_pins_the_build_backend() -> None:
    locked = pins(AGENT / "build.lock")
    system = pyproject()["build-system"]
    assert isinstance(system, dict)
    for line in system["requires"]:
        requirement = Requirement(line)
        assert locked[canonicalize_name(requirement.name)] in requirement.specifier


def test_the_dockerfile_installs_from_the_locks_only_on_a_base_by_digest() -> None:
    text = (AGENT / "Dockerfile").read_text()
    assert re.search(r"^ARG BASE_IMAGE$", text, re.M), (
        "BASE_IMAGE has no default: it names a digest"
    )
    assert re.findall(r"^FROM (\S+)", text, re.M) == ["${BASE_IMAGE}", "base", "base"]
    assert "*@sha256:*) ;;" in text
    installs = re.findall(r"pip install ([^\n\\&]+)", text)
    assert installs == [
        "--require-hashes --only-binary :all: -r agent/requirements.lock ",
        "--require-hashes --only-binary :all: -r agent/build.lock",
        "--no-index --no-deps /wheels/gen_gitops-*.whl ",
    ]
    for argument in ("PIP_INDEX_URL", "CA_BUNDLE", "DEBIAN_MIRROR"):
        assert re.search(rf"^ARG {argument}=", text, re.M), argument
