"""``gen secrets kubekey-config``: the cleartext Cluster for kk, written only for the operator."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from generator.build import kubekey_config as config
from generator.build import secret_store as store
from generator.core import errors, layout, yamlio
from generator.formats import age as crypto
from tests.support.project import REPO

EAST = "cn-east-1"
KEYS = REPO / "tests" / "fixtures" / "age"


def keys(site: str) -> crypto.Identities:
    return crypto.load_identities(KEYS / f"{site}.key")


def test_the_config_holds_the_decrypted_passwords_in_place_of_the_references(
    project: Path, tmp_path: Path
) -> None:
    out = tmp_path / "kk" / "config.yaml"
    config.write(project, EAST, keys(EAST), out)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    [cluster] = yamlio.load_rendered(out.read_text(), "config.yaml")
    ssh = store.show(project, EAST, "kubekey/ssh-password", keys(EAST)).decode()
    registry = store.show(project, EAST, "registry/password", keys(EAST)).decode()
    assert {h["password"] for h in cluster["spec"]["hosts"]} == {ssh}
    assert cluster["spec"]["registry"]["auths"]["dockerhub.kubekey.local"]["password"] == registry
    [compiled] = yamlio.load_rendered(
        (project / "compiled" / EAST / layout.KUBEKEY_CLUSTER).read_text(), "cluster"
    )
    compiled["spec"]["hosts"] = [{**h, "password": ssh} for h in compiled["spec"]["hosts"]]
    compiled["spec"]["registry"]["auths"]["dockerhub.kubekey.local"]["password"] = registry
    assert cluster == compiled  # nothing else changed


def test_another_sites_key_is_refused_once_per_secret_and_nothing_is_written(
    project: Path, tmp_path: Path
) -> None:
    out = tmp_path / "config.yaml"
    with pytest.raises(errors.ProblemReport) as caught:
        config.write(project, EAST, keys("cn-north-2"), out)
    found = [p.format() for p in caught.value.problems]
    rel = f"compiled/{EAST}/{layout.KUBEKEY_CLUSTER}"
    assert [f.split("  ")[:2] for f in found] == [
        [rel, "$.spec.hosts[0].password"],
        [rel, "$.spec.registry.auths['dockerhub.kubekey.local'].password"],
    ]
    assert (
        found[0]
        .split("  ")[2]
        .startswith("?{age:kubekey/ssh-password} is not encrypted to the identity in ")
    )
    assert caught.value.summary == f"the KubeKey config of {EAST} cannot be decrypted"
    assert not out.exists()


def test_a_reference_without_its_ciphertext_is_a_located_error(
    project: Path, tmp_path: Path
) -> None:
    sealed_file = project / "compiled" / EAST / layout.KUBEKEY_SECRETS
    sealed = json.loads(sealed_file.read_text())
    del sealed["secrets"]["registry/password"]
    sealed_file.write_text(json.dumps(sealed))
    out = tmp_path / "config.yaml"
    with pytest.raises(errors.ProblemReport) as caught:
        config.write(project, EAST, keys(EAST), out)
    assert [p.format() for p in caught.value.problems] == [
        f"compiled/{EAST}/{layout.KUBEKEY_CLUSTER}  "
        "$.spec.registry.auths['dockerhub.kubekey.local'].password  "
        "?{age:registry/password}: no ciphertext in kubekey-secrets.json; compile the site again"
    ]
    assert not out.exists()


def test_a_site_without_a_compiled_cluster_is_told_what_to_do(
    project: Path, tmp_path: Path
) -> None:
    (project / "compiled" / EAST / layout.KUBEKEY_CLUSTER).unlink()
    with pytest.raises(errors.GenError) as caught:
        config.write(project, EAST, keys(EAST), tmp_path / "config.yaml")
    assert str(caught.value) == (
        f"no compiled/{EAST}/kubekey-cluster.yaml: give the site site.kubekey "
        f"(docs/kubekey.md) and run `gen compile -t {EAST}`"
    )
    assert not (tmp_path / "config.yaml").exists()
