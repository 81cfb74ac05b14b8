"""Detached SSH signatures of files (the SSHSIG format), made and checked by ``ssh-keygen -Y``.

The same ed25519 key that signs deploy commits (git's ``gpg.format=ssh``, namespace ``git``) signs
envelope manifests under a namespace of their own, so neither signature can stand in for the other.
Trust comes from an OpenSSH ``allowed_signers`` file (``principal [namespaces="..."] key``).
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from generator.core.errors import GenError

_FINGERPRINT = re.compile(r"key (SHA256:[A-Za-z0-9+/=]+)")


class SignError(GenError):
    """Signing failed (missing key, wrong permissions, passphrase needed without an agent, ...)."""


@dataclass(frozen=True)
class Verdict:
    """The outcome of checking one signature against an allowed-signers file."""

    ok: bool
    principal: str = ""
    """The principal the signature verified for ("" when it did not)."""
    fingerprint: str = ""
    """The signing key's fingerprint as ``SHA256:...`` ("" if the signature is unreadable)."""
    reason: str = ""
    """Why it did not verify, in words an operator can act on."""


def sign(data: bytes, key: Path, namespace: str) -> bytes:
    """An armored SSHSIG signature of ``data`` by ``key`` (a private key,
    or a public key held in ssh-agent)."""
    if not key.is_file():
        raise SignError(f"signing key {key} does not exist")
    proc = _ssh_keygen(["-Y", "sign", "-f", str(key), "-n", namespace], data)
    if proc.returncode != 0 or b"BEGIN SSH SIGNATURE" not in proc.stdout:
        raise SignError(f"cannot sign with {key}: {_stderr(proc)}")
    return proc.stdout


def verify(
    data: bytes, signature: bytes, allowed_signers: Path, namespace: str, principal: str
) -> Verdict:
    """Whether ``signature`` is ``principal``'s signature of ``data`` in ``namespace``, trusted
    by ``allowed_signers``.

    The reason distinguishes a damaged or tampered signature, a key nobody trusts (with its
    fingerprint) and a trusted key that belongs to someone other than ``principal``.
    """
    if not allowed_signers.is_file():
        raise GenError(f"allowed signers file {allowed_signers} does not exist")
    with tempfile.TemporaryDirectory(prefix="gen-sshsig-") as tmp:
        sig = Path(tmp) / "signature"
        sig.write_bytes(signature)
        return _verify(data, sig, allowed_signers, namespace, principal)


def _verify(data: bytes, sig: Path, allowed: Path, namespace: str, principal: str) -> Verdict:
    proc = _ssh_keygen(
        [
            "-Y",
            "verify",
            "-f",
            str(allowed),
            "-I",
            principal or "-",
            "-n",
            namespace,
            "-s",
            str(sig),
        ],
        data,
    )
    if proc.returncode == 0:
        return Verdict(True, principal, _fingerprint(proc))
    return Verdict(False, "", *_explain(data, sig, allowed, namespace, principal, proc))


def _explain(
    data: bytes,
    sig: Path,
    allowed: Path,
    namespace: str,
    principal: str,
    failed: subprocess.CompletedProcess[bytes],
) -> tuple[str, str]:
    """Why a signature did not verify: (fingerprint, reason). Only runs on the failure path."""
    check = _ssh_keygen(["-Y", "check-novalidate", "-n", namespace, "-s", str(sig)], data)
    fingerprint = _fingerprint(check)
    if check.returncode != 0:
        return fingerprint, f"the signature does not match (tampered or damaged): {_stderr(check)}"
    found = _ssh_keygen(["-Y", "find-principals", "-s", str(sig), "-f", str(allowed)], b"")
    principals = found.stdout.decode("utf-8", "replace").split() if found.returncode == 0 else []
    if not principals:
        return fingerprint, f"signed by key {fingerprint}, which {allowed} does not trust"
    if principal not in principals:
        return (
            fingerprint,
            f"signed by key {fingerprint} of {', '.join(principals)}, not of the sender it "
            f"names ({principal or 'none'})",
        )
    return fingerprint, (
        f"{allowed} does not allow key {fingerprint} of {principal} for {namespace!r} "
        f"signatures now: {_stderr(failed)}"
    )


def _ssh_keygen(args: list[str], data: bytes) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(["ssh-keygen", *args], input=data, capture_output=True, check=False)
    except FileNotFoundError as e:
        raise GenError(
            "ssh-keygen is not installed (OpenSSH 8.2 or newer is needed to sign and verify)"
        ) from e


def _fingerprint(proc: subprocess.CompletedProcess[bytes]) -> str:
    match = _FINGERPRINT.search((proc.stdout + proc.stderr).decode("utf-8", "replace"))
    return match.group(1) if match else ""


def _stderr(proc: subprocess.CompletedProcess[bytes]) -> str:
    lines = [
        line.strip()
        for line in proc.stderr.decode("utf-8", "replace").splitlines()
        if line.strip() and not line.startswith("Signing data")
    ]
    return "; ".join(lines) or f"ssh-keygen exit status {proc.returncode}"
