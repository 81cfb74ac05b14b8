"""Compiling references: ciphertext copied from the secret files into EncryptedSecrets, located
errors.

The project is the reference platform with fresh keys and known values (``tests.support.secrets``).
"""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from generator.build import secret_store as store
from generator.core import errors, yamlio
from generator.formats import age as crypto
from generator.formats import encrypted_secret as encrypted
from tests.support.secrets import SecretProject, files_under
from tests.support.tree import write_tree

EAST = "cn-east-1"
ABC_CLASS = "inventory/classes/services/abc-service.yml"


def manifest(project: SecretProject, site: str, rel: str) -> dict[str, Any]:
    [obj] = yamlio.load_rendered(
        (project.root / "compiled" / site / "manifests" / rel).read_text(), rel
    )
    return obj


def pod_spec(project: SecretProject, site: str, rel: str) -> dict[str, Any]:
    spec: dict[str, Any] = manifest(project, site, rel)["spec"]["template"]["spec"]
    return spec


def line_of(project: SecretProject, rel: str, needle: str) -> int:
    lines = (project.root / rel).read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if needle in line)


def problems_of(project: SecretProject, *targets: str) -> list[str]:
    with pytest.raises(errors.ProblemReport) as caught:
        project.compile(*targets)
    return [p.format() for p in caught.value.problems]


def edit(project: SecretProject, rel: str, old: str, new: str) -> None:
    path = project.root / rel
    text = path.read_text()
    assert old in text, f"{old!r} not in {rel}"
    path.write_text(text.replace(old, new, 1))


# -- what compiles ---------------------------------------------------------------------------------


def test_an_env_reference_becomes_value_from_and_an_encrypted_secret_holding_the_files_bytes(
    secret_project: SecretProject,
) -> None:
    env = {
        e["name"]: e
        for e in pod_spec(secret_project, EAST, "project/statefulset-abc-service.yaml")[
            "containers"
        ][0]["env"]
    }
    assert env["REDIS_PASSWORD"] == {
        "name": "REDIS_PASSWORD",
        "valueFrom": {"secretKeyRef": {"key": "REDIS_PASSWORD", "name": "abc-service-secrets"}},
    }
    assert env["REDIS_ADDR"]["value"] == "redis-cluster.project.svc:6379"
    obj = manifest(secret_project, EAST, "project/encryptedsecret-abc-service-secrets.yaml")
    assert obj["apiVersion"] == encrypted.API_VERSION and obj["kind"] == encrypted.KIND
    assert obj["metadata"]["labels"]["app"] == "abc-service" and obj["spec"]["type"] == "Opaque"
    assert (
        obj["spec"]["encryptedData"]["REDIS_PASSWORD"]
        == secret_project.file(EAST, "redis/password").read_text()
    )


def test_registry_auth_gives_every_pod_a_pull_secret_in_its_own_namespace(
    secret_project: SecretProject,
) -> None:
    for rel in (
        "project/statefulset-abc-service.yaml",
        "project/statefulset-gatekeeper.yaml",
        "gen-agent/deployment-gen-agent.yaml",
    ):
        assert {"name": "registry-pull"} in pod_spec(secret_project, EAST, rel)[
            "imagePullSecrets"
        ], rel
    for namespace in ("project", "gen-agent"):
        obj = manifest(secret_project, EAST, f"{namespace}/encryptedsecret-registry-pull.yaml")
        assert obj["spec"]["type"] == "kubernetes.io/dockerconfigjson"
        assert obj["spec"]["dockerConfig"]["server"] == "dockerhub.kubekey.local"
        assert obj["spec"]["dockerConfig"]["username"] == "admin"
    north = manifest(secret_project, "cn-north-2", "project/encryptedsecret-registry-pull.yaml")
    assert north["spec"]["dockerConfig"]["server"] == "harbor.cn-north-2.internal:5000"


def test_the_index_names_the_secret_files_an_encrypted_secret_came_from(
    secret_project: SecretProject,
) -> None:
    index = (secret_project.root / "compiled" / EAST / "index.json").read_text()
    assert '"source": "secrets/cn-east-1/redis/password.age (service abc-service)"' in index


def test_compile_never_reencrypts_so_its_output_is_stable(secret_project: SecretProject) -> None:
    before = dict(files_under(secret_project.root / "compiled"))
    secret_project.compile()
    assert dict(files_under(secret_project.root / "compiled")) == before
    assert secret_project.gen("compile", "--check").exit_code == 0


def test_rotation_changes_the_ciphertext_and_rolls_the_pods_even_with_the_cache(
    secret_project: SecretProject,
) -> None:
    sts = "project/statefulset-abc-service.yaml"
    checksum = manifest(secret_project, EAST, sts)["spec"]["template"]["metadata"]["annotations"][
        "checksum/secrets"
    ]
    assert secret_project.gen("compile").exit_code == 0  # records the cache state
    rotated = secret_project.gen(
        "secrets", "rotate", "-t", EAST, "redis/password", stdin=b"rotated-value"
    )
    assert rotated.exit_code == 0, rotated.output
    check = secret_project.gen("compile", "--check")
    assert check.exit_code == 1 and "encryptedsecret-abc-service-secrets.yaml" in check.output
    assert secret_project.gen("compile").exit_code == 0
    obj = manifest(secret_project, EAST, "project/encryptedsecret-abc-service-secrets.yaml")
    assert (
        obj["spec"]["encryptedData"]["REDIS_PASSWORD"]
        == secret_project.file(EAST, "redis/password").read_text()
    )
    assert (
        manifest(secret_project, EAST, sts)["spec"]["template"]["metadata"]["annotations"][
            "checksum/secrets"
        ]
        != checksum
    )


def test_a_disabled_service_needs_no_secret_file(secret_project: SecretProject) -> None:
    secret_project.file(EAST, "redis/password").unlink()
    edit(
        secret_project,
        "inventory/targets/cn-east-1.yml",
        "  services:\n",
        "  services:\n    abc-service:\n      enabled: false\n",
    )
    secret_project.compile(EAST)
    assert not (
        secret_project.root
        / "compiled"
        / EAST
        / "manifests/project/encryptedsecret-abc-service-secrets"
        ".yaml"
    ).exists()


# -- located errors --------------------------------------------------------------------------------


def test_a_missing_secret_file_is_located_at_the_reference(secret_project: SecretProject) -> None:
    secret_project.file(EAST, "redis/password").unlink()
    line = line_of(secret_project, ABC_CLASS, "REDIS_PASSWORD: ?{age:")
    assert problems_of(secret_project, EAST) == [
        f"{ABC_CLASS}:{line}:9  $.services.abc-service.env.REDIS_PASSWORD  "
        "?{age:redis/password}: the secret "
        "file secrets/cn-east-1/redis/password.age does not exist; "
        "create it with `gen secrets set -t cn-east-1 "
        "redis/password` (the value is read from stdin) (target: cn-east-1)"
    ]


def test_a_reference_to_an_unknown_path_is_located_at_the_reference(
    secret_project: SecretProject,
) -> None:
    edit(secret_project, ABC_CLASS, "?{age:redis/password}", "?{age:redis/passwrd}")
    [problem] = problems_of(secret_project, EAST)
    assert problem.startswith(f"{ABC_CLASS}:{line_of(secret_project, ABC_CLASS, 'passwrd')}:9  ")
    assert "secrets/cn-east-1/redis/passwrd.age does not exist" in problem


def test_a_path_reaching_into_another_sites_secrets_is_refused(
    secret_project: SecretProject,
) -> None:
    edit(secret_project, ABC_CLASS, "?{age:redis/password}", "?{age:../cn-north-2/redis/password}")
    [problem] = problems_of(secret_project, EAST)
    assert (
        problem.startswith(f"{ABC_CLASS}:")
        and "may not contain empty, '.' or '..' parts" in problem
    )


def test_a_corrupted_secret_file_is_located_at_the_reference(secret_project: SecretProject) -> None:
    path = secret_project.file(EAST, "registry/password")
    path.write_text(path.read_text()[:150])
    line = line_of(secret_project, "inventory/classes/sites/kubekey.yml", "password: ?{age:")
    [problem] = problems_of(secret_project, EAST)
    assert problem.startswith(f"inventory/classes/sites/kubekey.yml:{line}:")
    assert (
        "secrets/cn-east-1/registry/password.age is truncated" in problem
        and "gen secrets rotate" in problem
    )


def test_a_reference_outside_env_and_registry_auth_is_refused(
    secret_project: SecretProject,
) -> None:
    edit(
        secret_project,
        ABC_CLASS,
        "log_level: info",
        "log_level: info\n            password: ?{age:redis/password}",
    )
    edit(
        secret_project,
        ABC_CLASS,
        "    abc-service:\n",
        "    abc-service:\n      args: ['?{age:redis/password}']\n",
    )
    found = problems_of(secret_project, EAST)
    assert [p.split("  ")[1] for p in found] == [
        "$.services.abc-service.args[0]",
        "$.services.abc-service.config.files['app.yaml']",
    ]
    assert found[0].endswith(
        "secret references are allowed in services.<name>.env values, site.registry_auth "
        "(password or dockerconfigjson), site.monitoring-stack.database.password and "
        ".redis.password, and the SSH password or private_key of site.kubekey.ssh "
        "and site.nodes[] only (target: cn-east-1)"
    )


def test_a_plain_text_registry_password_is_refused_without_being_echoed(
    secret_project: SecretProject,
) -> None:
    edit(
        secret_project,
        "inventory/classes/sites/kubekey.yml",
        "?{age:registry/password}",
        "Harbor12345",
    )
    [problem] = problems_of(secret_project, EAST)
    assert "$.site.registry_auth.password  must be a secret reference ?{age:<path>}" in problem
    assert "Harbor12345" not in problem


def test_a_reference_that_reaches_the_output_through_a_free_key_is_refused(
    secret_project: SecretProject,
) -> None:
    write_tree(
        secret_project.root,
        {
            "components/leaky/configmap.yml.j2": """
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: leaky}
        data: {password: {{ parameters.shared_password | tojson }}}
        """
        },
    )
    edit(
        secret_project,
        "inventory/targets/cn-east-1.yml",
        "parameters:\n",
        "parameters:\n  shared_password: ?{age:redis/password}\n",
    )
    edit(
        secret_project,
        "inventory/classes/common.yml",
        "      - external\n",
        "      - external\n      - leaky\n",
    )
    [problem] = problems_of(secret_project, EAST)
    assert problem.startswith(
        "components/leaky/configmap.yml.j2  site: ConfigMap leaky: a secret "
        "reference reached the output at $.data.password"
    )


def test_a_component_that_does_not_render_secret_env_is_an_error(
    secret_project: SecretProject,
) -> None:
    write_tree(
        secret_project.root,
        {
            "components/plain/deployment.yml.j2": """
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: {{ name }}}
        spec:
          selector: {matchLabels: {app: {{ name }}}}
          template:
            metadata: {labels: {app: {{ name }}}}
            spec:
              containers: [{name: {{ name }}, image: {{ image_ref(service) }}}]
        """
        },
    )
    edit(secret_project, ABC_CLASS, "component: stateful-service", "component: plain")
    [problem] = problems_of(secret_project, EAST)
    assert (
        "$.services.abc-service.env.REDIS_PASSWORD  "
        "the secret abc-service-secrets is used by no pod" in problem
    )


# -- review ----------------------------------------------------------------------------------------


def test_gen_diff_shows_a_rotated_secret_as_changed_never_its_value(
    secret_project: SecretProject,
) -> None:
    root = secret_project.root
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "base"]):
        subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
            cwd=root,
            check=True,
        )
    assert (
        secret_project.gen(
            "secrets", "rotate", "-t", EAST, "redis/password", stdin=b"new-value-42"
        ).exit_code
        == 0
    )
    result = secret_project.gen("diff", "--base", "HEAD", "-t", EAST)
    assert result.exit_code == 1, result.output
    assert (
        "spec.encryptedData.REDIS_PASSWORD: value changed (secret value not shown)" in result.output
    )
    assert "new-value-42" not in result.output
    assert secret_project.values[(EAST, "redis/password")].decode() not in result.output


def test_each_site_can_open_only_its_own_compiled_secrets(secret_project: SecretProject) -> None:
    east = (
        secret_project.root
        / "compiled"
        / EAST
        / "manifests/project/encryptedsecret-abc-service-secrets.yaml"
    )
    [obj] = yamlio.load_rendered(east.read_text(), "east")
    assert encrypted.materialize(obj, secret_project.identities(EAST))["data"]
    with pytest.raises(encrypted.SecretError, match="is not encrypted to"):
        encrypted.materialize(obj, secret_project.identities("cn-north-2"))


def test_site_recipients_come_from_the_inventory(secret_project: SecretProject) -> None:
    recipients = store.recipients(secret_project.root, EAST)
    assert recipients.site == secret_project.identities(EAST).public and recipients.team == ()
    header = crypto.inspect(secret_project.file(EAST, "redis/password").read_bytes())
    assert header.recipients == 1


def test_registry_auth_mistakes_are_reported_without_quoting_the_password(
    secret_project: SecretProject,
) -> None:
    kubekey = "inventory/classes/sites/kubekey.yml"
    edit(
        secret_project,
        kubekey,
        "      password: ?{age:registry/password}\n",
        "      password: Harbor12345\n      dockerconfigjson: ?{age:registry/password}\n",
    )
    [both] = problems_of(secret_project, EAST)
    assert (
        "$.site.registry_auth  give either username and password (and server) or dockerconfigjson"
        in both
    )
    edit(secret_project, kubekey, "      username: admin\n", "")
    result = secret_project.gen("compile", "-t", EAST)
    assert result.exit_code == 1 and "'username' is a dependency of 'password'" in result.output
    assert "Harbor12345" not in both + result.output


def test_a_whole_dockerconfigjson_reference_is_carried_as_encrypted_data(
    secret_project: SecretProject,
) -> None:
    config = b'{"auths": {"dockerhub.kubekey.local": {"auth": "YWRtaW46eA=="}}}'
    assert (
        secret_project.gen("secrets", "set", "-t", EAST, "registry/config", stdin=config).exit_code
        == 0
    )
    edit(
        secret_project,
        "inventory/classes/sites/kubekey.yml",
        "      username: admin\n      password: ?{age:registry/password}\n",
        "      dockerconfigjson: ?{age:registry/config}\n",
    )
    secret_project.compile(EAST)
    obj = manifest(secret_project, EAST, "project/encryptedsecret-registry-pull.yaml")
    assert "dockerConfig" not in obj["spec"] and list(obj["spec"]["encryptedData"]) == [
        ".dockerconfigjson"
    ]
    secret = encrypted.materialize(obj, secret_project.identities(EAST))
    assert secret["type"] == "kubernetes.io/dockerconfigjson"
