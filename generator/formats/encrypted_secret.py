"""The EncryptedSecret object: what compiled/ carries instead of a Secret, and how the agent opens
it.

    apiVersion: secrets.gen-gitops.io/v1alpha1
    kind: EncryptedSecret
    metadata: {name: abc-service-secrets, namespace: project, labels: {...}}
    spec:
      type: Opaque                    # the type of the Secret to create
      encryptedData:                  # key -> ASCII-armored age ciphertext of its value
        REDIS_PASSWORD: |
          -----BEGIN AGE ENCRYPTED FILE-----
          ...
      dockerConfig:                   # optional: a .dockerconfigjson built from these at apply time
        server: dockerhub.kubekey.local
        username: admin
        encryptedPassword: |
          -----BEGIN AGE ENCRYPTED FILE-----

``materialize`` turns one into the Secret of the same name and namespace (``data`` base64, labels
kept, annotation ``secrets.gen-gitops.io/encrypted-sha256`` naming the ciphertext revision). The
agent imports this module: it depends on ``crypto`` and ``generator.core`` only, never the compiler.
No error message holds a plaintext value: they name the object and the key.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from generator.core.errors import GenError
from generator.core.objects import ObjectId, identity
from generator.formats import age as crypto

GROUP = "secrets.gen-gitops.io"
API_VERSION = f"{GROUP}/v1alpha1"
KIND = "EncryptedSecret"
DIGEST_ANNOTATION = f"{GROUP}/encrypted-sha256"
"""On the materialized Secret: sha256 of the EncryptedSecret's spec (which revision is applied)."""
DOCKER_CONFIG_KEY = ".dockerconfigjson"
DOCKER_CONFIG_TYPE = "kubernetes.io/dockerconfigjson"
NO_IDENTITY = (
    "no age identity is configured (mount the site's key from the gen-agent-age Secret and set "
    "GEN_AGENT_AGE_IDENTITY; docs/secrets.md)"
)

Obj = dict[str, Any]


class SecretError(GenError):
    """An EncryptedSecret that cannot be materialized; the message names the object and key."""


def is_encrypted(obj: Mapping[str, Any]) -> bool:
    """True for an EncryptedSecret (of any version of our group)."""
    return obj.get("kind") == KIND and str(obj.get("apiVersion", "")).rpartition("/")[0] == GROUP


def secret_identity(obj: Mapping[str, Any]) -> ObjectId:
    """The identity of the Secret an EncryptedSecret becomes (what the agent applies and prunes)."""
    meta = obj["metadata"]
    return ObjectId("", "Secret", meta.get("namespace", "") or "", meta["name"])


def build(
    name: str,
    namespace: str,
    labels: Mapping[str, str],
    secret_type: str,
    encrypted_data: Mapping[str, str],
    docker_config: Mapping[str, str] | None = None,
) -> Obj:
    """An EncryptedSecret; ciphertexts are armored age text, keys in sorted order."""
    spec: dict[str, Any] = {"type": secret_type}
    if encrypted_data:
        spec["encryptedData"] = dict(sorted(encrypted_data.items()))
    if docker_config:
        spec["dockerConfig"] = dict(docker_config)
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": name, "namespace": namespace, "labels": dict(sorted(labels.items()))},
        "spec": spec,
    }


def site_identities(path: Path | None) -> crypto.Identities:
    """The site's identities from the mounted key file; never raises: without usable keys, an empty
    ``Identities`` whose ``problem`` says why (every EncryptedSecret then fails with that
    reason)."""
    if path is None:
        return crypto.Identities((), "", problem=NO_IDENTITY)
    try:
        return crypto.load_identities(path)
    except crypto.CryptoError as e:
        return crypto.Identities((), str(path), problem=str(e))


def materialize(obj: Obj, keys: crypto.Identities | None) -> Obj:
    """The Secret an EncryptedSecret stands for, decrypted with the site's identities.

    SecretError (naming the object and key, never a value) when a ciphertext is missing, damaged,
    or not encrypted to these identities (another site's key), or when no identity is configured.
    """
    what = f"{KIND} {_where(obj)}"
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        raise SecretError(f"{what}: no spec")
    if keys is None or not keys.keys:
        reason = keys.problem if keys is not None and keys.problem else NO_IDENTITY
        raise SecretError(f"{what}: cannot decrypt it: {reason}")
    data = {
        key: _b64(_open(value, keys, f"{what} key {key}"))
        for key, value in _encrypted_data(spec, what)
    }
    if spec.get("dockerConfig") is not None:
        data[DOCKER_CONFIG_KEY] = _b64(_docker_config(spec["dockerConfig"], keys, what))
    if spec.get("type") == DOCKER_CONFIG_TYPE:
        _check_docker_config(data.get(DOCKER_CONFIG_KEY), what)
    return _secret(obj, spec, dict(sorted(data.items())))


def materialize_all(
    objects: Iterable[Obj], keys: crypto.Identities | None
) -> tuple[list[Obj], dict[ObjectId, str]]:
    """Every EncryptedSecret replaced by its Secret; the rest unchanged, in the same order.

    Returns (objects, errors): an EncryptedSecret that cannot be opened is left out of the objects
    and reported in ``errors`` under the identity of its Secret (``secret_identity``), so the agent
    records it like a failed apply and must keep that Secret as a member (never prune it for this).
    """
    out: list[Obj] = []
    errors: dict[ObjectId, str] = {}
    for obj in objects:
        if not is_encrypted(obj):
            out.append(obj)
            continue
        try:
            out.append(materialize(obj, keys))
        except SecretError as e:
            errors[secret_identity(obj)] = str(e)
    return out, errors


def spec_digest(obj: Mapping[str, Any]) -> str:
    """sha256 of an EncryptedSecret's spec (stable JSON): changes exactly when a ciphertext is
    rotated."""
    text = json.dumps(obj.get("spec"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _where(obj: Mapping[str, Any]) -> str:
    try:
        oid = identity(dict(obj))
    except (KeyError, TypeError, AttributeError):
        return "(without name)"
    return f"{oid.namespace}/{oid.name}" if oid.namespace else oid.name


def _encrypted_data(spec: Mapping[str, Any], what: str) -> list[tuple[str, str]]:
    data = spec.get("encryptedData") or {}
    if not isinstance(data, dict):
        raise SecretError(f"{what}: spec.encryptedData must be a mapping of key to ciphertext")
    if not data and spec.get("dockerConfig") is None:
        raise SecretError(
            f"{what}: nothing to decrypt (no spec.encryptedData, no spec.dockerConfig)"
        )
    return sorted(data.items())


def _open(armored: Any, keys: crypto.Identities, what: str) -> bytes:
    if not isinstance(armored, str) or not armored:
        raise SecretError(f"{what}: missing ciphertext")
    try:
        return crypto.decrypt(armored.encode("ascii", "replace"), keys, what)
    except crypto.CryptoError as e:
        raise SecretError(str(e)) from e


def _docker_config(config: Any, keys: crypto.Identities, what: str) -> bytes:
    """A ``.dockerconfigjson`` for one registry, built from its server, username and encrypted
    password."""
    if not isinstance(config, dict) or not all(
        isinstance(config.get(k), str) and config.get(k)
        for k in ("server", "username", "encryptedPassword")
    ):
        raise SecretError(f"{what}: spec.dockerConfig needs server, username and encryptedPassword")
    username = config["username"]
    password = _open(config["encryptedPassword"], keys, f"{what} dockerConfig password").decode(
        "utf-8", "replace"
    )
    auth = base64.b64encode(f"{username}:{password}".encode()).decode()
    entry = {"username": username, "password": password, "auth": auth}
    return json.dumps(
        {"auths": {config["server"]: entry}}, sort_keys=True, separators=(",", ":")
    ).encode()


def _check_docker_config(data: str | None, what: str) -> None:
    """A dockerconfigjson Secret must hold JSON with ``auths`` (the API server would refuse it
    later)."""
    if data is None:
        raise SecretError(f"{what}: type {DOCKER_CONFIG_TYPE} needs the key {DOCKER_CONFIG_KEY}")
    try:
        parsed = json.loads(base64.b64decode(data))
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict) or not isinstance(parsed.get("auths"), dict):
        raise SecretError(
            f"{what} key {DOCKER_CONFIG_KEY}: the decrypted value is not a docker config "
            '(JSON with "auths"); set it again with gen secrets rotate'
        )


def _secret(obj: Obj, spec: Mapping[str, Any], data: dict[str, str]) -> Obj:
    meta = obj["metadata"]
    out_meta: dict[str, Any] = {"name": meta["name"]}
    if meta.get("namespace"):
        out_meta["namespace"] = meta["namespace"]
    if meta.get("labels"):
        out_meta["labels"] = dict(meta["labels"])
    out_meta["annotations"] = {
        **(meta.get("annotations") or {}),
        DIGEST_ANNOTATION: spec_digest(obj),
    }
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": out_meta,
        "type": spec.get("type") or "Opaque",
        "data": data,
    }


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")
