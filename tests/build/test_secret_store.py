"""``gen secrets`` end to end: values in through stdin only, ciphertext on disk,
plaintext only for key holders."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from typer.testing import CliRunner

from generator.build import secret_store as store
from generator.cli import app
from generator.formats import age as crypto
from tests.support.secrets import SecretProject

EAST = "cn-east-1"


def show(project: SecretProject, path: str, key: Path, site: str = EAST) -> tuple[int, str]:
    result = project.gen("secrets", "show", "-t", site, path, "-i", str(key))
    return result.exit_code, result.output


def test_set_reads_the_value_from_stdin_and_stores_only_ciphertext(
    secret_project: SecretProject,
) -> None:
    result = secret_project.gen(
        "secrets", "set", "-t", EAST, "sms/api-key", stdin=b"k3y-from-stdin\n"
    )
    assert result.exit_code == 0, result.output
    assert "k3y-from-stdin" not in result.output
    stored = secret_project.file(EAST, "sms/api-key").read_bytes()
    assert b"k3y-from-stdin" not in stored and crypto.inspect(stored).recipients == 1
    assert show(secret_project, "sms/api-key", secret_project.keys[EAST]) == (0, "k3y-from-stdin")


def test_keep_newline_keeps_what_stdin_ends_with(secret_project: SecretProject) -> None:
    secret_project.gen("secrets", "set", "-t", EAST, "cert", "--keep-newline", stdin=b"line\n")
    assert show(secret_project, "cert", secret_project.keys[EAST]) == (0, "line\n")


def test_set_refuses_to_overwrite_and_rotate_refuses_a_missing_secret(
    secret_project: SecretProject,
) -> None:
    again = secret_project.gen("secrets", "set", "-t", EAST, "redis/password", stdin=b"x")
    assert again.exit_code == 1
    assert (
        "secrets/cn-east-1/redis/password.age  "
        "the secret redis/password of cn-east-1 exists; change it with "
        "`gen secrets rotate -t cn-east-1 redis/password`" in again.output
    )
    missing = secret_project.gen("secrets", "rotate", "-t", EAST, "nope", stdin=b"x")
    assert missing.exit_code == 1 and "no secret nope for cn-east-1 to rotate" in missing.output
    assert (
        "(its secrets: kubekey/ssh-password, monitoring/db-password, "
        "monitoring/redis-password, redis/password, registry/password)" in missing.output
    )


def test_an_empty_value_or_a_bad_path_is_refused(secret_project: SecretProject) -> None:
    assert (
        "refusing to store an empty value"
        in secret_project.gen("secrets", "set", "-t", EAST, "e", stdin=b"\n").output
    )
    bad = secret_project.gen("secrets", "set", "-t", EAST, "../cn-north-2/x", stdin=b"v")
    assert bad.exit_code == 1 and "'..'" in bad.output
    assert not (secret_project.root / "secrets" / "cn-north-2" / "x.age").exists()


def test_set_without_site_recipients_is_a_located_error(secret_project: SecretProject) -> None:
    target = secret_project.root / "inventory/targets/cn-east-1.yml"
    target.write_text(target.read_text().replace("    secrets:\n", "    unused_secrets:\n", 1))
    result = secret_project.gen("secrets", "set", "-t", EAST, "new", stdin=b"v")
    assert result.exit_code == 1
    assert (
        "inventory/targets/cn-east-1.yml:" in result.output
        and "has no site.secrets.recipients" in result.output
    )


def test_show_needs_a_key_the_secret_is_encrypted_to(secret_project: SecretProject) -> None:
    no_key = secret_project.gen("secrets", "show", "-t", EAST, "redis/password")
    assert no_key.exit_code == 2 and "--identity" in no_key.output
    code, output = show(secret_project, "redis/password", secret_project.keys["cn-north-2"])
    assert code == 1
    assert output.startswith(
        "secrets/cn-east-1/redis/password.age  the secret redis/password of cn-east-1 is not "
        f"encrypted to the identity in {secret_project.keys['cn-north-2']}"
    )
    assert secret_project.values[(EAST, "redis/password")].decode() not in output


def test_show_of_a_corrupted_file_is_located_at_the_file(secret_project: SecretProject) -> None:
    path = secret_project.file(EAST, "redis/password")
    path.write_text(path.read_text().replace("\n", "\n!", 1))
    code, output = show(secret_project, "redis/password", secret_project.keys[EAST])
    assert code == 1 and output.startswith(
        "secrets/cn-east-1/redis/password.age  the secret redis/password of "
        "cn-east-1 is damaged (corrupted armor"
    )


def test_show_of_an_unknown_path_lists_the_sites_secrets(secret_project: SecretProject) -> None:
    code, output = show(secret_project, "redis/pasword", secret_project.keys[EAST])
    assert code == 1 and output.strip() == (
        "secrets/cn-east-1/redis/pasword.age  no secret redis/pasword for target "
        "cn-east-1 (its secrets: kubekey/ssh-password, monitoring/db-password, "
        "monitoring/redis-password, redis/password, registry/password)"
    )


def test_rotate_replaces_the_value_for_the_same_recipients(secret_project: SecretProject) -> None:
    result = secret_project.gen("secrets", "rotate", "-t", EAST, "redis/password", stdin=b"second")
    assert result.exit_code == 0 and "rotated secrets/cn-east-1/redis/password.age" in result.output
    assert show(secret_project, "redis/password", secret_project.keys[EAST]) == (0, "second")


def test_reencrypt_adds_a_team_member_without_changing_any_value(
    secret_project: SecretProject, tmp_path: Path
) -> None:
    member = tmp_path / "member.key"
    public = store.keygen(member)
    target = secret_project.root / "inventory/targets/cn-east-1.yml"
    target.write_text(
        target.read_text().replace(
            "    secrets:\n", f"    secrets:\n      team_recipients: [{public}]\n"
        )
    )
    assert show(secret_project, "redis/password", member)[0] == 1
    listed = secret_project.gen("secrets", "list", "-t", EAST)
    assert listed.exit_code == 1 and "redis/password  stale" in listed.output
    result = secret_project.gen(
        "secrets", "rotate", "-t", EAST, "--reencrypt", "-i", str(secret_project.keys[EAST])
    )
    assert result.exit_code == 0, result.output
    assert "re-encrypted secrets/cn-east-1/redis/password.age" in result.output
    for key in (member, secret_project.keys[EAST]):
        assert show(secret_project, "redis/password", key) == (
            0,
            secret_project.values[(EAST, "redis/password")].decode(),
        )
    assert secret_project.gen("secrets", "list", "-t", EAST).exit_code == 0


def test_reencrypt_with_a_key_that_opens_only_some_secrets_changes_nothing(
    secret_project: SecretProject,
) -> None:
    other = secret_project.keys["cn-north-2"]
    odd = secret_project.file(EAST, "registry/password")
    odd.write_bytes(crypto.encrypt(b"v", crypto.load_identities(other).public))
    before = {
        p: secret_project.file(EAST, p).read_bytes()
        for p in ("kubekey/ssh-password", "redis/password", "registry/password")
    }
    result = secret_project.gen("secrets", "rotate", "-t", EAST, "--reencrypt", "-i", str(other))
    assert (
        result.exit_code == 1
        and "kubekey/ssh-password of cn-east-1 is not encrypted to" in result.output
    )
    assert {p: secret_project.file(EAST, p).read_bytes() for p in before} == before


def test_generate_stores_a_random_value_of_the_asked_length(secret_project: SecretProject) -> None:
    assert (
        secret_project.gen("secrets", "set", "-t", EAST, "gen/one", "--generate", "32").exit_code
        == 0
    )
    code, value = show(secret_project, "gen/one", secret_project.keys[EAST])
    assert code == 0 and len(value) == 32 and value.isalnum()
    assert (
        "at least 12"
        in secret_project.gen("secrets", "set", "-t", EAST, "gen/two", "--generate", "8").output
    )


def test_keygen_writes_a_private_file_once_and_prints_the_recipient(tmp_path: Path) -> None:
    out = tmp_path / "site.key"
    result = CliRunner().invoke(app, ["secrets", "keygen", "--out", str(out)])
    assert result.exit_code == 0 and result.output.strip() == crypto.load_identities(out).public[0]
    assert stat.S_IMODE(out.stat().st_mode) == 0o600 and "AGE-SECRET-KEY-1" not in result.output
    again = CliRunner().invoke(app, ["secrets", "keygen", "--out", str(out)])
    assert again.exit_code == 1 and "never overwritten" in again.output


def test_list_reports_missing_unused_and_damaged_files(secret_project: SecretProject) -> None:
    secret_project.file(EAST, "redis/password").unlink()
    secret_project.file(EAST, "registry/password").write_text("garbage\n")
    secret_project.gen("secrets", "set", "-t", EAST, "old/token", stdin=b"v")
    result = secret_project.gen("secrets", "list", "-t", EAST, "-o", "json")
    assert result.exit_code == 1
    states = {e["path"]: e["state"] for e in json.loads(result.output)["secrets"]}
    assert states == {
        "kubekey/ssh-password": "ok",
        "monitoring/db-password": "ok",
        "monitoring/redis-password": "ok",
        "old/token": "unused",
        "redis/password": "missing",
        "registry/password": "damaged",
    }


def test_materialize_prints_the_sites_secrets_for_kubectl(secret_project: SecretProject) -> None:
    result = secret_project.gen(
        "secrets", "materialize", "-t", EAST, "-i", str(secret_project.keys[EAST])
    )
    assert result.exit_code == 0, result.output
    assert (
        result.output.count("kind: Secret\n") == 5
    )  # abc-service-secrets, n9e-secrets, registry-pull in project, gen-agent and monitoring
    wrong = secret_project.gen(
        "secrets", "materialize", "-t", EAST, "-i", str(secret_project.keys["cn-north-2"])
    )
    assert wrong.exit_code == 1 and "5 secret(s) of cn-east-1 cannot be decrypted" in wrong.output
    assert (
        "compiled/cn-east-1/manifests/project/encryptedsecret-abc-service-secrets.yaml  "
        "EncryptedSecret "
        "project/abc-service-secrets key REDIS_PASSWORD is not encrypted to" in wrong.output
    )
