"""A real Kubernetes API for tests: etcd + kube-apiserver on 127.0.0.1 (envtest-style, no kubelet).

Usage (e.g. from a session-scoped pytest fixture)::

    with start_control_plane(tmp_dir) as cp:
        subprocess.run(["kubectl", "--kubeconfig", str(cp.kubeconfig), "get", "ns"], check=True)
        limited = cp.kubeconfig_for("agent", ["gen:agents"])   # RBAC applies to this one

Binaries come from ``tools/build-envtest.sh`` (built once from the Go module proxy and cached
outside git) or from ``$KUBEBUILDER_ASSETS``. There is no kube-controller-manager: namespaces
stay Terminating, nothing is garbage-collected and workloads never get Pods.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import ipaddress
import json
import os
import re
import shutil
import ssl
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ._common import (
    LOOPBACK,
    assert_loopback_only,
    free_ports,
    run_build_script,
    spawn,
    stop,
    wait_until,
)

__all__ = ["ControlPlane", "ensure_envtest_binaries", "start_control_plane"]

_CERT_VALIDITY = dt.timedelta(days=7)


def ensure_envtest_binaries() -> Path:
    """Directory holding ``kube-apiserver`` and ``etcd`` (honours ``$KUBEBUILDER_ASSETS``).

    Builds them on first use (tens of minutes on 2 cores); later calls return at once.
    """
    return run_build_script("build-envtest.sh")


# ------------------------------------------------------------------ certificates
@dataclass(frozen=True)
class _KeyPair:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


def _name(cn: str, orgs: Sequence[str] = ()) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


def _new_ca(cn: str) -> _KeyPair:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + _CERT_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return _KeyPair(key, cert)


def _issue(
    ca: _KeyPair,
    cn: str,
    orgs: Sequence[str] = (),
    *,
    server: bool = False,
    dns: Sequence[str] = (),
    ips: Sequence[str] = (),
) -> _KeyPair:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn, orgs))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + _CERT_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_encipherment=False,
                content_commitment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False
        )
    )
    if dns or ips:
        sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
        sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return _KeyPair(key, builder.sign(ca.key, hashes.SHA256()))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# ------------------------------------------------------------------ control plane
@dataclass
class ControlPlane:
    """A running etcd + kube-apiserver. ``kubeconfig`` is for ``admin`` (group system:masters)."""

    workdir: Path
    url: str
    kubeconfig: Path
    ca_file: Path
    etcd_url: str
    assets: Path
    version: str
    _serving_ca: _KeyPair = field(repr=False)
    _client_ca: _KeyPair = field(repr=False)
    _procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict, repr=False)

    def client_cert(self, user: str, groups: Sequence[str] = ()) -> tuple[bytes, bytes]:
        """(cert PEM, key PEM) of a client certificate for ``user`` in ``groups``."""
        kp = _issue(self._client_ca, user, list(groups))
        return kp.cert_pem, kp.key_pem

    def kubeconfig_for(self, user: str, groups: Sequence[str] = ()) -> Path:
        """Write a kubeconfig authenticating as ``user`` (CN) in ``groups`` (O); return its path.

        Nothing is granted: bind RBAC roles to the user or a group for least-privilege tests.
        """
        cert, key = self.client_cert(user, groups)
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", user)
        path = self.workdir / f"kubeconfig-{safe}"
        _write_kubeconfig(path, self.url, self._serving_ca.cert_pem, cert, key, user)
        return path

    @property
    def pids(self) -> dict[str, int]:
        return {name: p.pid for name, p in self._procs.items()}


def _write_kubeconfig(
    path: Path, url: str, ca_pem: bytes, cert_pem: bytes, key_pem: bytes, user: str
) -> None:
    cfg = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "envtest",
                "cluster": {"server": url, "certificate-authority-data": _b64(ca_pem)},
            }
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": _b64(cert_pem),
                    "client-key-data": _b64(key_pem),
                },
            }
        ],
        "contexts": [{"name": "envtest", "context": {"cluster": "envtest", "user": user}}],
        "current-context": "envtest",
        "preferences": {},
    }
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(cfg, indent=2) + "\n")  # JSON is valid YAML for every client
    tmp.chmod(0o600)
    tmp.replace(path)


def _no_proxy_env() -> dict[str, str]:
    env = dict(os.environ)
    for k in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        env.pop(k, None)
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return env


@contextlib.contextmanager
def start_control_plane(
    workdir: Path, *, timeout: float = 180.0, extra_apiserver_args: Sequence[str] = ()
) -> Iterator[ControlPlane]:
    """Start etcd and kube-apiserver on free 127.0.0.1 ports; stop and clean up on exit.

    ``workdir`` receives the logs (``etcd.log``, ``kube-apiserver.log``) and kubeconfigs, which
    are kept; etcd's data and the apiserver's cert dir are removed on exit.
    """
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    assets = ensure_envtest_binaries()
    etcd_bin, apiserver_bin = assets / "etcd", assets / "kube-apiserver"

    pki = workdir / "pki"
    data = workdir / "etcd-data"
    for d in (pki, data):
        shutil.rmtree(d, ignore_errors=True)
    pki.mkdir(mode=0o700)
    data.mkdir(mode=0o700)
    etcd_log, api_log = workdir / "etcd.log", workdir / "kube-apiserver.log"

    # Certificates: serving CA + serving cert, client CA + admin cert, SA signing key pair.
    serving_ca = _new_ca("envtest-serving-ca")
    client_ca = _new_ca("envtest-client-ca")
    serving = _issue(
        serving_ca,
        "kube-apiserver",
        server=True,
        dns=["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"],
        ips=[LOOPBACK, "10.0.0.1"],
    )
    admin = _issue(client_ca, "admin", ["system:masters"])
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    files = {
        "serving-ca.crt": serving_ca.cert_pem,
        "client-ca.crt": client_ca.cert_pem,
        "apiserver.crt": serving.cert_pem,
        "apiserver.key": serving.key_pem,
        "sa.key": sa_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        "sa.pub": sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    }
    for name, content in files.items():
        (pki / name).write_bytes(content)
    ca_file = workdir / "ca.crt"
    ca_file.write_bytes(serving_ca.cert_pem)

    etcd_client, etcd_peer, api_port = free_ports(3)
    etcd_url = f"http://{LOOPBACK}:{etcd_client}"
    url = f"https://{LOOPBACK}:{api_port}"
    env = _no_proxy_env()
    procs: dict[str, subprocess.Popen[bytes]] = {}

    def shutdown() -> None:
        stop(procs.get("kube-apiserver"))
        stop(procs.get("etcd"))
        shutil.rmtree(data, ignore_errors=True)
        shutil.rmtree(pki, ignore_errors=True)

    try:
        peer = f"http://{LOOPBACK}:{etcd_peer}"
        procs["etcd"] = spawn(
            [
                str(etcd_bin),
                "--name=envtest",
                f"--data-dir={data}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=envtest={peer}",
                "--initial-cluster-state=new",
                "--unsafe-no-fsync=true",
                "--log-level=warn",
            ],
            etcd_log,
            cwd=workdir,
            env=env,
        )
        wait_until(
            lambda: _direct_get(f"{etcd_url}/health", None)[0] == 200,
            timeout=60,
            what="etcd /health",
            procs=[("etcd", procs["etcd"])],
            logs=[etcd_log],
        )

        procs["kube-apiserver"] = spawn(
            [
                str(apiserver_bin),
                f"--etcd-servers={etcd_url}",
                f"--cert-dir={pki}",
                f"--tls-cert-file={pki / 'apiserver.crt'}",
                f"--tls-private-key-file={pki / 'apiserver.key'}",
                f"--secure-port={api_port}",
                f"--bind-address={LOOPBACK}",
                f"--advertise-address={LOOPBACK}",
                "--service-cluster-ip-range=10.0.0.0/24",
                "--allow-privileged=true",
                "--disable-admission-plugins=ServiceAccount",
                "--authorization-mode=RBAC",
                f"--client-ca-file={pki / 'client-ca.crt'}",
                f"--service-account-issuer={url}/",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                "--endpoint-reconciler-type=none",
                *extra_apiserver_args,
            ],
            api_log,
            cwd=workdir,
            env=env,
        )

        tls = ssl.create_default_context(cafile=str(pki / "serving-ca.crt"))
        adm_cert, adm_key = pki / "admin.crt", pki / "admin.key"
        adm_cert.write_bytes(admin.cert_pem)
        adm_key.write_bytes(admin.key_pem)
        tls.load_cert_chain(str(adm_cert), str(adm_key))
        both = [("kube-apiserver", procs["kube-apiserver"]), ("etcd", procs["etcd"])]
        wait_until(
            lambda: _direct_get(f"{url}/readyz", tls)[0] == 200,
            timeout=timeout,
            what="kube-apiserver /readyz",
            procs=both,
            logs=[api_log, etcd_log],
            interval=0.5,
        )
        wait_until(
            lambda: _direct_get(f"{url}/api/v1/namespaces/default", tls)[0] == 200,
            timeout=60,
            what="namespace default",
            procs=both,
            logs=[api_log, etcd_log],
        )
        status, body = _direct_get(f"{url}/version", tls)
        version = json.loads(body).get("gitVersion", "?") if status == 200 else "?"

        assert_loopback_only(procs["etcd"].pid, "etcd")
        assert_loopback_only(procs["kube-apiserver"].pid, "kube-apiserver")

        kubeconfig = workdir / "kubeconfig"
        _write_kubeconfig(
            kubeconfig, url, serving_ca.cert_pem, admin.cert_pem, admin.key_pem, "admin"
        )
        cp = ControlPlane(
            workdir=workdir,
            url=url,
            kubeconfig=kubeconfig,
            ca_file=ca_file,
            etcd_url=etcd_url,
            assets=assets,
            version=version,
            _serving_ca=serving_ca,
            _client_ca=client_ca,
            _procs=procs,
        )
    except BaseException:
        shutdown()
        raise
    try:
        yield cp
    finally:
        shutdown()


def _direct_get(url: str, tls: ssl.SSLContext | None) -> tuple[int, bytes]:
    """GET without any proxy; returns (status, body); connection errors raise."""
    handlers: list[urllib.request.BaseHandler] = [urllib.request.ProxyHandler({})]
    if tls is not None:
        handlers.append(urllib.request.HTTPSHandler(context=tls))
    opener = urllib.request.build_opener(*handlers)
    try:
        with opener.open(url, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
