"""Helpers shared by the server launchers: ports, processes, logs, listener checks."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

REPO = Path(__file__).resolve().parents[3]
TOOLS = REPO / "tools"
LOOPBACK = "127.0.0.1"


class ServerStartError(RuntimeError):
    """A test server did not come up; the message carries the tail of its logs."""


def free_ports(count: int) -> list[int]:
    """``count`` distinct free TCP ports on 127.0.0.1 (held open together so they differ)."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((LOOPBACK, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def run_build_script(script: str) -> Path:
    """Run ``tools/<script>`` (idempotent, locked) and return the directory on its last stdout line.

    The script's progress (stderr) is passed through so a long first build is visible with
    ``pytest -s``.
    """
    proc = subprocess.run([str(TOOLS / script)], stdout=subprocess.PIPE, text=True, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    if proc.returncode != 0 or not lines:
        raise ServerStartError(
            f"tools/{script} failed (exit {proc.returncode}); stdout:\n{proc.stdout}"
        )
    return Path(lines[-1].strip())


def _set_pdeathsig() -> None:
    """In the child: get SIGTERM when the parent (the test process) dies,
    so nothing is left behind."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def spawn(
    args: Sequence[str],
    log_path: Path,
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``args`` with stdout+stderr appended to ``log_path``, in its own process group."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log: IO[bytes] = open(log_path, "ab")
    try:
        return subprocess.Popen(
            list(args),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            env=env,
            start_new_session=True,
            preexec_fn=_set_pdeathsig,
        )
    finally:
        log.close()


def stop(proc: subprocess.Popen[bytes] | None, timeout: float = 15.0) -> None:
    """SIGTERM the process group, then SIGKILL after ``timeout`` seconds."""
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        data = path.read_text(errors="replace").splitlines()
    except OSError:
        return f"--- {path}: (no log)"
    return f"--- last {min(lines, len(data))} lines of {path}:\n" + "\n".join(data[-lines:])


def wait_until(
    check: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    procs: Sequence[tuple[str, subprocess.Popen[bytes]]] = (),
    logs: Sequence[Path] = (),
    interval: float = 0.25,
) -> None:
    """Poll ``check`` until true; fail early if one of ``procs`` exits;
    logs' tails go in the error."""
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while time.monotonic() < deadline:
        for name, p in procs:
            if p.poll() is not None:
                raise ServerStartError(
                    f"{name} exited with code {p.returncode} while waiting for {what}\n"
                    + "\n".join(log_tail(lg) for lg in logs)
                )
        try:
            if check():
                return
        except Exception as exc:
            last_exc = exc
        time.sleep(interval)
    raise ServerStartError(
        f"timed out after {timeout:.0f}s waiting for {what} (last error: {last_exc!r})\n"
        + "\n".join(log_tail(lg) for lg in logs)
    )


def _proc_tree(pid: int) -> list[int]:
    pids = [pid]
    i = 0
    while i < len(pids):
        try:
            children = Path(f"/proc/{pids[i]}/task/{pids[i]}/children").read_text().split()
        except OSError:
            children = []
        pids.extend(int(c) for c in children)
        i += 1
    return pids


def _socket_inodes(pid: int) -> set[str]:
    inodes: set[str] = set()
    with contextlib.suppress(OSError):
        for fd in os.scandir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(fd.path)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    return inodes


def _decode_addr(hexaddr: str) -> str:
    ip_hex, port_hex = hexaddr.split(":")
    raw = bytes.fromhex(ip_hex)
    if len(raw) == 4:
        ip = socket.inet_ntop(socket.AF_INET, raw[::-1])
    else:  # /proc/net/tcp6: four little-endian 32-bit words
        words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
        ip = socket.inet_ntop(socket.AF_INET6, words)
    return f"{ip}:{int(port_hex, 16)}"


def listening_addresses(pid: int) -> list[str]:
    """TCP/UDP addresses that ``pid`` and its children listen on / are bound to (from /proc)."""
    inodes: set[str] = set()
    for p in _proc_tree(pid):
        inodes |= _socket_inodes(p)
    found: list[str] = []
    for table, listen_state in (("tcp", "0A"), ("tcp6", "0A"), ("udp", "07"), ("udp6", "07")):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
                cols = line.split()
                if cols[3] == listen_state and cols[9] in inodes:
                    found.append(f"{table}:{_decode_addr(cols[1])}")
    return sorted(set(found))


def assert_loopback_only(pid: int, name: str) -> list[str]:
    """Raise unless every listener of ``pid`` (and children) is on 127.0.0.0/8 or ::1."""
    addrs = listening_addresses(pid)
    bad = [
        a
        for a in addrs
        if not (
            a.split(":", 1)[1].startswith("127.")
            or a.split(":", 1)[1].startswith("::1:")
            or a.split(":", 1)[1].startswith("::ffff:127.")
        )
    ]
    if bad:
        raise ServerStartError(f"{name} listens on non-loopback addresses: {bad} (all: {addrs})")
    return addrs
