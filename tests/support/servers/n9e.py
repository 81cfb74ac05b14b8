"""A real Nightingale (n9e) center for tests, on 127.0.0.1 with SQLite and in-process miniredis.

Usage::

    with start_n9e(tmp_dir) as n9e:
        groups = n9e.request("GET", "/api/n9e/busi-groups")

The binary, its ``etc/`` and ``integrations/`` come from ``tools/build-n9e.sh`` (cached outside
git) or from ``$N9E_ASSETS``. Every listener is bound to 127.0.0.1 (checked after start). n9e
looks up api.github.com at start-up and ignores the proxy variables set below, so only a network
namespace without routes keeps it in (``tools/offline``; ``real_n9e`` starts nothing outside one).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._common import (
    LOOPBACK,
    ServerStartError,
    assert_loopback_only,
    free_ports,
    run_build_script,
    spawn,
    stop,
    wait_until,
)

__all__ = ["N9e", "ensure_n9e", "set_toml", "start_n9e"]

ROOT_USER = "root"
ROOT_PASSWORD = "root.2020"
_TOKEN_TTL = 20 * 60  # re-login after 20 min (n9e's default AccessExpired is 1500 min)


def ensure_n9e() -> Path:
    """Directory with ``n9e``, ``etc/`` and ``integrations/`` (honours ``$N9E_ASSETS``)."""
    return run_build_script("build-n9e.sh")


# ------------------------------------------------------------------ config editing
def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return json.dumps(str(value))  # a JSON string is a valid TOML basic string


def set_toml(text: str, section: str, key: str, value: object) -> str:
    """Set ``key = value`` in ``[section]`` of a TOML text, keeping everything else as is.

    Replaces an existing (or commented-out) assignment inside the section, else inserts it
    right after the section header, else appends the section.
    """
    lines = text.splitlines()
    header = re.compile(r"^\s*\[\s*" + re.escape(section) + r"\s*\]\s*(#.*)?$")
    start = next((i for i, ln in enumerate(lines) if header.match(ln)), None)
    new = f"{key} = {_toml_value(value)}"
    if start is None:
        return text.rstrip("\n") + f"\n\n[{section}]\n{new}\n"
    end = next(
        (i for i in range(start + 1, len(lines)) if lines[i].lstrip().startswith("[")), len(lines)
    )
    live = re.compile(r"^\s*" + re.escape(key) + r"\s*=")
    commented = re.compile(r"^\s*#\s*" + re.escape(key) + r"\s*=")
    for pattern in (live, commented):
        for i in range(start + 1, end):
            if pattern.match(lines[i]):
                lines[i] = new
                return "\n".join(lines) + "\n"
    lines.insert(start + 1, new)
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ the server
@dataclass
class N9e:
    """A running n9e center. ``url`` is ``http://127.0.0.1:<port>``."""

    workdir: Path
    url: str
    config_dir: Path
    log: Path
    assets: Path
    pid: int
    _token: str | None = field(default=None, repr=False)
    _token_at: float = field(default=0.0, repr=False)

    def login(self, username: str = ROOT_USER, password: str = ROOT_PASSWORD) -> str:
        """Log in and return an access token (not cached)."""
        body = _http_json(
            "POST", f"{self.url}/api/n9e/auth/login", {"username": username, "password": password}
        )
        if body.get("err"):
            raise RuntimeError(f"n9e login as {username} failed: {body['err']}")
        return str(body["dat"]["access_token"])

    def token(self) -> str:
        """root's access token (cached; renewed after 20 minutes). Send as ``Bearer``."""
        if self._token is None or time.monotonic() - self._token_at > _TOKEN_TTL:
            self._token = self.login()
            self._token_at = time.monotonic()
        return self._token

    def request(self, method: str, path: str, body: Any = None, *, check: bool = True) -> Any:
        """Call the API as root; returns the decoded JSON envelope's ``dat``.

        With ``check`` (default) a non-empty ``err`` raises; otherwise the whole envelope is
        returned.
        """
        env = _http_json(
            method, f"{self.url}{path}", body, headers={"Authorization": f"Bearer {self.token()}"}
        )
        if not check:
            return env
        if isinstance(env, dict) and env.get("err"):
            raise RuntimeError(f"n9e {method} {path}: {env['err']}")
        return env.get("dat") if isinstance(env, dict) else env


def _http_json(
    method: str,
    url: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        url,
        data=data,
        method=method,
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=timeout) as resp:
            raw = resp.read()
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return json.loads(raw)
        except ValueError:
            raise RuntimeError(f"{method} {url}: HTTP {exc.code}: {raw[:500]!r}") from exc
    return json.loads(raw) if raw else None


def _write_config(
    config_dir: Path, workdir: Path, assets: Path, http_port: int, redis_port: int, ibex_port: int
) -> None:
    path = config_dir / "config.toml"
    text = path.read_text()
    settings: list[tuple[str, str, object]] = [
        ("Global", "RunMode", "release"),
        ("Log", "Dir", str(workdir / "logs")),
        ("Log", "Output", "stdout"),
        ("Log", "Level", "INFO"),
        ("HTTP", "Host", LOOPBACK),
        ("HTTP", "Port", http_port),
        ("HTTP", "PrintAccessLog", False),
        ("HTTP.ShowCaptcha", "Enable", False),
        ("HTTP.RSA", "OpenRSA", False),
        ("DB", "DBType", "sqlite"),
        ("DB", "DSN", str(workdir / "n9e.db")),
        ("Redis", "RedisType", "miniredis"),
        ("Redis", "Address", f"{LOOPBACK}:{redis_port}"),
        ("Alert.Heartbeat", "IP", LOOPBACK),
        ("Ibex", "Enable", False),
        ("Ibex", "RPCListen", f"{LOOPBACK}:{ibex_port}"),
    ]
    if (assets / "integrations").is_dir():
        settings.append(("Center", "BuiltinIntegrationsDir", str(assets / "integrations")))
    for section, key, value in settings:
        text = set_toml(text, section, key, value)
    path.write_text(text)


@contextlib.contextmanager
def start_n9e(workdir: Path, *, timeout: float = 120.0) -> Iterator[N9e]:
    """Start n9e on a free 127.0.0.1 port with a fresh SQLite DB; stop it on exit.

    ``workdir`` receives ``etc/`` (a patched copy of the build's config), ``n9e.db``,
    ``n9e.log`` and ``logs/``; they are kept after exit for inspection.
    """
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    assets = ensure_n9e()

    config_dir = workdir / "etc"
    shutil.rmtree(config_dir, ignore_errors=True)
    shutil.copytree(assets / "etc", config_dir)
    (workdir / "n9e.db").unlink(missing_ok=True)
    integrations = workdir / "integrations"  # n9e's default lookup is <cwd>/integrations
    if (assets / "integrations").is_dir() and not integrations.exists():
        integrations.symlink_to(assets / "integrations")

    http_port, redis_port, ibex_port = free_ports(3)
    _write_config(config_dir, workdir, assets, http_port, redis_port, ibex_port)
    url = f"http://{LOOPBACK}:{http_port}"
    log = workdir / "n9e.log"

    env = dict(os.environ)
    # Belt and braces for whatever honours them (n9e's version check does not: see the module doc).
    env.update(
        {
            "HTTP_PROXY": "http://127.0.0.1:9",
            "HTTPS_PROXY": "http://127.0.0.1:9",
            "http_proxy": "http://127.0.0.1:9",
            "https_proxy": "http://127.0.0.1:9",
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
            "N9E_CONFIGS": str(config_dir),
        }
    )
    proc: subprocess.Popen[bytes] | None = None
    try:
        proc = spawn([str(assets / "n9e"), "-configs", str(config_dir)], log, cwd=workdir, env=env)
        server = N9e(
            workdir=workdir, url=url, config_dir=config_dir, log=log, assets=assets, pid=proc.pid
        )
        wait_until(
            lambda: bool(server.token()),
            timeout=timeout,
            what="n9e login as root",
            procs=[("n9e", proc)],
            logs=[log],
            interval=0.5,
        )
        assert_loopback_only(proc.pid, "n9e")
    except BaseException:
        stop(proc)
        raise
    try:
        yield server
    finally:
        stop(proc)


__all__ += ["ServerStartError"]
