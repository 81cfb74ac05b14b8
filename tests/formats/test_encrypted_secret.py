"""What the agent calls at apply time: EncryptedSecret -> Secret,
with errors that name object and key only."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from generator.core.objects import ObjectId
from generator.formats import age as crypto
from generator.formats import encrypted_secret as encrypted

LABELS = {"app": "abc-service", "app.kubernetes.io/managed-by": "gen"}


def keypair() -> tuple[crypto.Identities, str]:
    identity, public = crypto.generate()
    return crypto.identities(identity.encode(), "site.key"), public


def env_secret(public: str, **values: bytes) -> dict[str, Any]:
    return encrypted.build(
        "abc-service-secrets",
        "project",
        LABELS,
        "Opaque",
        {k: crypto.encrypt(v, [public]).decode() for k, v in values.items()},
    )


def decoded(secret: dict[str, Any]) -> dict[str, bytes]:
    return {k: base64.b64decode(v) for k, v in secret["data"].items()}


def test_an_encrypted_secret_becomes_the_secret_it_names() -> None:
    keys, public = keypair()
    obj = env_secret(public, REDIS_PASSWORD=b"p@ss", TOKEN=b"t")
    secret = encrypted.materialize(obj, keys)
    assert (
        secret["apiVersion"] == "v1" and secret["kind"] == "Secret" and secret["type"] == "Opaque"
    )
    assert (
        secret["metadata"]["name"] == "abc-service-secrets"
        and secret["metadata"]["namespace"] == "project"
    )
    assert secret["metadata"]["labels"] == LABELS
    assert secret["metadata"]["annotations"] == {
        encrypted.DIGEST_ANNOTATION: encrypted.spec_digest(obj)
    }
    assert decoded(secret) == {"REDIS_PASSWORD": b"p@ss", "TOKEN": b"t"}
    assert list(secret["data"]) == ["REDIS_PASSWORD", "TOKEN"]


def test_registry_credentials_become_a_dockerconfigjson_for_the_server() -> None:
    keys, public = keypair()
    obj = encrypted.build(
        "registry-pull",
        "project",
        {},
        encrypted.DOCKER_CONFIG_TYPE,
        {},
        {
            "server": "dockerhub.kubekey.local",
            "username": "admin",
            "encryptedPassword": crypto.encrypt(b"Harbor-pw", [public]).decode(),
        },
    )
    secret = encrypted.materialize(obj, keys)
    assert secret["type"] == "kubernetes.io/dockerconfigjson"
    config = json.loads(decoded(secret)[".dockerconfigjson"])
    entry = config["auths"]["dockerhub.kubekey.local"]
    assert entry["username"] == "admin" and entry["password"] == "Harbor-pw"
    assert base64.b64decode(entry["auth"]) == b"admin:Harbor-pw"


def test_a_whole_dockerconfigjson_must_decrypt_to_a_docker_config() -> None:
    keys, public = keypair()
    good = json.dumps({"auths": {"r.local": {"auth": "eDp5"}}}).encode()
    for value, ok in ((good, True), (b"not json", False), (b'{"no": "auths"}', False)):
        obj = encrypted.build(
            "registry-pull",
            "project",
            {},
            encrypted.DOCKER_CONFIG_TYPE,
            {".dockerconfigjson": crypto.encrypt(value, [public]).decode()},
        )
        if ok:
            assert decoded(encrypted.materialize(obj, keys))[".dockerconfigjson"] == good
        else:
            with pytest.raises(encrypted.SecretError, match="is not a docker config") as caught:
                encrypted.materialize(obj, keys)
            assert value.decode() not in str(caught.value)


def test_another_sites_ciphertext_is_refused_naming_object_and_key_not_the_value() -> None:
    _, east = keypair()
    north_keys, _ = keypair()
    with pytest.raises(encrypted.SecretError) as caught:
        encrypted.materialize(env_secret(east, REDIS_PASSWORD=b"east-only-value"), north_keys)
    message = str(caught.value)
    assert message.startswith(
        "EncryptedSecret project/abc-service-secrets key REDIS_PASSWORD is not encrypted to "
        "the identity in site.key"
    )
    assert "another site" in message and "east-only-value" not in message


def test_a_corrupted_ciphertext_is_an_error_naming_the_key() -> None:
    keys, public = keypair()
    obj = env_secret(public, REDIS_PASSWORD=b"v")
    obj["spec"]["encryptedData"]["REDIS_PASSWORD"] = obj["spec"]["encryptedData"]["REDIS_PASSWORD"][
        :120
    ]
    with pytest.raises(
        encrypted.SecretError, match="abc-service-secrets key REDIS_PASSWORD is damaged"
    ):
        encrypted.materialize(obj, keys)


def test_without_an_identity_an_encrypted_secret_says_how_to_give_one(tmp_path: Path) -> None:
    _, public = keypair()
    obj = env_secret(public, X=b"v")
    for keys in (None, encrypted.site_identities(None)):
        with pytest.raises(
            encrypted.SecretError,
            match=r"cannot decrypt it: no age identity is configured .*GEN_AGENT_AGE_IDENTITY",
        ):
            encrypted.materialize(obj, keys)
    unreadable = encrypted.site_identities(tmp_path / "missing.key")
    with pytest.raises(
        encrypted.SecretError,
        match=r"cannot decrypt it: cannot read the identity file .*missing\.key",
    ):
        encrypted.materialize(obj, unreadable)


def test_site_identities_reads_the_mounted_key_file(tmp_path: Path) -> None:
    identity, public = crypto.generate()
    (tmp_path / "identity").write_text(crypto.identity_file(identity))
    keys = encrypted.site_identities(tmp_path / "identity")
    assert keys.public == (public,) and keys.problem == ""
    assert encrypted.materialize(env_secret(public, X=b"v"), keys)["data"] == {"X": "dg=="}


def test_materialize_all_keeps_other_objects_in_order_and_reports_failures_by_secret_identity() -> (
    None
):
    keys, public = keypair()
    _, stranger = keypair()
    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c", "namespace": "project"},
    }
    good = env_secret(public, A=b"1")
    bad = encrypted.build(
        "other-secrets", "project", {}, "Opaque", {"B": crypto.encrypt(b"2", [stranger]).decode()}
    )
    objects, errors = encrypted.materialize_all([configmap, good, bad], keys)
    assert [o["kind"] for o in objects] == ["ConfigMap", "Secret"] and objects[0] is configmap
    assert list(errors) == [ObjectId("", "Secret", "project", "other-secrets")]
    assert "key B is not encrypted to" in errors[ObjectId("", "Secret", "project", "other-secrets")]


def test_only_our_group_and_kind_count_as_encrypted() -> None:
    assert encrypted.is_encrypted({"apiVersion": encrypted.API_VERSION, "kind": "EncryptedSecret"})
    assert not encrypted.is_encrypted(
        {"apiVersion": "bitnami.com/v1alpha1", "kind": "SealedSecret"}
    )
    assert not encrypted.is_encrypted({"apiVersion": "other.io/v1", "kind": "EncryptedSecret"})


def test_the_digest_annotation_changes_exactly_when_a_ciphertext_does() -> None:
    keys, public = keypair()
    obj = env_secret(public, A=b"1")
    relabelled = {**obj, "metadata": {**obj["metadata"], "labels": {"x": "y"}}}
    rotated = env_secret(public, A=b"1")
    digest = encrypted.materialize(obj, keys)["metadata"]["annotations"][
        encrypted.DIGEST_ANNOTATION
    ]
    assert (
        encrypted.materialize(relabelled, keys)["metadata"]["annotations"][
            encrypted.DIGEST_ANNOTATION
        ]
        == digest
    )
    assert (
        encrypted.materialize(rotated, keys)["metadata"]["annotations"][encrypted.DIGEST_ANNOTATION]
        != digest
    )
