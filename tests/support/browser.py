"""A real headless Chromium (Debian's ``chromium`` package) for tests of pages gen writes.

``chromium`` (or ``chromium-browser``, ``google-chrome``) on PATH, else ``GEN_CHROMIUM``. Without
one the test skips saying how to install it, and GEN_NO_SKIP=1 (CI, ``make test``) turns that
skip into a failure; ``.ci/run`` installs it. Screenshots are test artifacts: they go to the
directory ``GEN_TEST_ARTIFACTS`` names (created), else the test's tmp directory.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

NAMES = ("chromium", "chromium-browser", "google-chrome")
TIMEOUT = 120


@dataclass(frozen=True)
class Browser:
    """One headless Chromium binary and a private profile directory."""

    binary: str
    profile: Path

    def _run(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        command = [
            self.binary,
            "--headless",
            "--no-sandbox",  # root in a container: the sandbox needs user namespaces
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
            f"--user-data-dir={self.profile}",
            *args,
        ]
        proc = subprocess.run(
            command, capture_output=True, timeout=TIMEOUT, check=False, env=_env(self.profile)
        )
        assert proc.returncode == 0, proc.stderr.decode("utf-8", "replace")[-2000:]
        return proc

    def dom(self, page: Path) -> str:
        """The page's DOM after Chromium loaded and rendered it (``--dump-dom``)."""
        out = self._run("--dump-dom", page.resolve().as_uri()).stdout
        return out.decode("utf-8", "replace")

    def screenshot(self, page: Path, png: Path, width: int = 1400, height: int = 700) -> Path:
        """A PNG of the rendered page."""
        png.parent.mkdir(parents=True, exist_ok=True)
        self._run(f"--screenshot={png}", f"--window-size={width},{height}", page.resolve().as_uri())
        return png


def _env(profile: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["HOME"] = str(profile)  # Chromium writes caches under $HOME
    return env


def find() -> str | None:
    """The Chromium binary to use, or None."""
    given = os.environ.get("GEN_CHROMIUM")
    if given:
        return given
    return next((found for name in NAMES if (found := shutil.which(name))), None)


@pytest.fixture
def browser(tmp_path: Path) -> Browser:
    """A headless Chromium (skipped, naming the install command, if there is none)."""
    binary = find()
    if binary is None:
        pytest.skip("no Chromium: apt-get install -y chromium (or set GEN_CHROMIUM)")
    return Browser(binary, tmp_path / "chromium-profile")


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    """Where a test keeps what it made for people to look at (GEN_TEST_ARTIFACTS, else tmp)."""
    named = os.environ.get("GEN_TEST_ARTIFACTS")
    directory = Path(named) if named else tmp_path / "artifacts"
    directory.mkdir(parents=True, exist_ok=True)
    return directory
