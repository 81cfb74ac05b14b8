"""The semantic diff: trees in, sites/objects/fields out;
the git tree reader on real repositories."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from generator.build import pipeline
from generator.core import errors, yamlio
from generator.deliver.git import tree
from generator.review import diff, report
from generator.review.diff import FieldChange, Item, Op
from tests.support.review import GATEKEEPER, STS, edit, git, make_repo


def ref(name: str = "base") -> tree.Ref:
    return tree.Ref(name, "0" * 40)


def y(obj: object) -> bytes:
    return yamlio.dump(obj).encode()


def sts(
    image: str = "r/app:1", env: list[dict[str, str]] | None = None, **spec: object
) -> dict[str, object]:
    container = {"name": "app", "image": image, "env": env or [{"name": "A", "value": "1"}]}
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "app", "namespace": "ns"},
        "spec": {"replicas": 1, **spec, "template": {"spec": {"containers": [container]}}},
    }


def secret(kind: str = "Secret", **data: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": kind,
        "metadata": {"name": "creds", "namespace": "ns"},
        "type": "Opaque",
        "data": data,
    }


def render_all(d: diff.Diff) -> str:
    result = diff.Result(ref(), d, "new", 0, 0)
    return report.text(result) + report.markdown(result) + json.dumps(report.as_json(result))


# ------------------------------------------------------------------------------------------------
# compare: objects and fields
# ------------------------------------------------------------------------------------------------


def test_named_list_items_are_matched_by_name() -> None:
    old = sts(env=[{"name": "A", "value": "1"}, {"name": "B", "value": "2"}])
    new = sts(
        env=[{"name": "B", "value": "3"}, {"name": "A", "value": "1"}, {"name": "C", "value": "4"}]
    )
    got = diff.changes(old, new)
    env = ("spec", "template", "spec", "containers", Item("name", "app"), "env")
    assert got == [
        FieldChange((*env, Item("name", "B"), "value"), Op.CHANGED, "2", "3"),
        FieldChange((*env, Item("name", "C")), Op.ADDED, new={"name": "C", "value": "4"}),
        FieldChange(env, Op.REORDERED, ["A", "B"], ["B", "A"]),
    ]
    assert got[0].where == "spec.template.spec.containers[name=app].env[name=B].value"


def test_one_insertion_in_a_scalar_list_is_one_change() -> None:
    got = diff.changes({"args": ["a", "b", "c"]}, {"args": ["a", "x", "b", "c"]})
    assert got == [FieldChange(("args", 1), Op.ADDED, new="x")]
    assert diff.changes({"args": ["a", 1]}, {"args": ["a", "1"]}) == [
        FieldChange(("args", 1), Op.CHANGED, 1, "1")
    ]


def test_unnamed_lists_are_compared_by_index_and_types_matter() -> None:
    old = {"rules": [{"http": {"paths": [1]}}, {"x": 1}], "flag": 1}
    new = {"rules": [{"http": {"paths": [2]}}], "flag": True}
    assert diff.changes(old, new) == [
        FieldChange(("rules", 0, "http", "paths", 0), Op.CHANGED, 1, 2),
        FieldChange(("rules", 1), Op.REMOVED, old={"x": 1}),
        FieldChange(("flag",), Op.CHANGED, 1, True),
    ]


def test_paths_quote_keys_that_are_not_words() -> None:
    assert (
        diff.format_path(("metadata", "labels", "app.kubernetes.io/name"))
        == "metadata.labels['app.kubernetes.io/name']"
    )
    assert diff.format_path(("data", "it's")) == "data['it\\'s']"
    assert diff.format_path(()) == "."


def test_sites_objects_added_removed_changed() -> None:
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c", "namespace": "ns"},
        "data": {"k": "v"},
    }
    old = {
        "a/manifests/ns/statefulset-app.yaml": y(sts()),
        "a/manifests/ns/configmap-c.yaml": y(cm),
        "gone/images.txt": b"x\n",
    }
    new = {
        "a/manifests/ns/statefulset-app.yaml": y(sts(image="r/app:2")),
        "new/images.txt": b"y\n",
        "a/manifests/ns/service-app.yaml": y(
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "app", "namespace": "ns"}}
        ),
    }
    d = diff.compare(old, new, ["a", "same"])
    assert [(s.site, s.op) for s in d.sites] == [
        ("a", Op.CHANGED),
        ("gone", Op.REMOVED),
        ("new", Op.ADDED),
    ]
    assert d.unchanged == ("same",)
    a = d.sites[0]
    assert [(e.op, e.name) for e in a.entries] == [
        (Op.REMOVED, "ConfigMap ns/c"),
        (Op.ADDED, "Service ns/app"),
        (Op.CHANGED, "StatefulSet.apps ns/app"),
    ]
    assert (a.count(Op.ADDED), a.count(Op.REMOVED), a.count(Op.CHANGED)) == (1, 1, 1)
    assert a.entries[2].fields[0].where == "spec.template.spec.containers[name=app].image"


def test_an_object_moved_to_another_file_is_a_change() -> None:
    d = diff.compare(
        {"s/old/statefulset-app.yaml": y(sts())}, {"s/new/statefulset-app.yaml": y(sts(replicas=2))}
    )
    (entry,) = d.sites[0].entries
    assert (entry.op, entry.path, entry.old_path) == (
        Op.CHANGED,
        "new/statefulset-app.yaml",
        "old/statefulset-app.yaml",
    )
    assert [f.where for f in entry.fields] == ["spec.replicas"]


def test_an_api_group_change_in_the_same_file_is_a_change() -> None:
    old = {
        "apiVersion": "extensions/v1beta1",
        "kind": "Ingress",
        "metadata": {"name": "i", "namespace": "ns"},
    }
    new = {**old, "apiVersion": "networking.k8s.io/v1"}
    (entry,) = (
        diff.compare({"s/ingress-i.yaml": y(old)}, {"s/ingress-i.yaml": y(new)}).sites[0].entries
    )
    assert entry.op is Op.CHANGED
    assert entry.fields == (
        FieldChange(("apiVersion",), Op.CHANGED, "extensions/v1beta1", "networking.k8s.io/v1"),
    )


def test_derived_files_are_counted_not_detailed() -> None:
    d = diff.compare(
        {"s/index.json": b"{}", "s/images.txt": b"a\n"},
        {"s/index.json": b"[]", "s/images.txt": b"a\n"},
    )
    assert d.differs and d.sites[0].entries == () and d.sites[0].derived == ("index.json",)
    assert "only derived files differ: index.json" in report.text(
        diff.Result(ref(), d, "new", 0, 0)
    )


def test_text_files_by_line_and_formatting_only_changes() -> None:
    d = diff.compare(
        {"s/images.txt": b"a:1\nb:1\n", "s/x.yaml": b"a: 1\n"},
        {"s/images.txt": b"a:1\nb:2\n", "s/x.yaml": b"a:   1\n"},
    )
    entries = {e.path: e for e in d.sites[0].entries}
    assert entries["images.txt"].lines == (("-", "b:1"), ("+", "b:2"))
    assert entries["x.yaml"].fields == () and entries["x.yaml"].op is Op.CHANGED
    assert "same data, different formatting" in report.text(diff.Result(ref(), d, "new", 0, 0))


def test_unparsable_yaml_falls_back_to_lines() -> None:
    (entry,) = diff.compare({"s/x.yaml": b"a: [\n"}, {"s/x.yaml": b"a: 1\n"}).sites[0].entries
    assert entry.lines == (("-", "a: ["), ("+", "a: 1"))


def test_n9e_rules_are_matched_by_name_and_prometheus_rules_by_alert() -> None:
    rules = [
        {"name": "cpu high", "rule_config": {"queries": [{"prom_ql": "cpu > 90"}]}},
        {"name": "down"},
    ]
    changed = [
        {"name": "new"},
        {"name": "cpu high", "rule_config": {"queries": [{"prom_ql": "cpu > 95"}]}},
    ]
    prom = {"groups": [{"name": "g", "rules": [{"alert": "A", "expr": "up == 0", "for": "2m"}]}]}
    prom2 = {"groups": [{"name": "g", "rules": [{"alert": "A", "expr": "up == 0", "for": "5m"}]}]}
    d = diff.compare(
        {
            "s/n9e/alert-rules.json": json.dumps(rules).encode(),
            "s/n9e/prometheus-rules.yaml": y(prom),
            "s/n9e/notify-rules.json": b"[]",
        },
        {
            "s/n9e/alert-rules.json": json.dumps(changed).encode(),
            "s/n9e/prometheus-rules.yaml": y(prom2),
            "s/n9e/notify-rules.json": b'[{"name": "ops"}]',
        },
    )
    got = [(e.op, e.name, [f.where for f in e.fields]) for e in d.sites[0].entries]
    assert got == [
        (Op.CHANGED, "n9e/alert-rules.json [name=cpu high]", ["rule_config.queries[0].prom_ql"]),
        (Op.REMOVED, "n9e/alert-rules.json [name=down]", []),
        (Op.ADDED, "n9e/alert-rules.json [name=new]", []),
        (Op.ADDED, "n9e/notify-rules.json [name=ops]", []),
        (Op.CHANGED, "n9e/prometheus-rules.yaml", ["groups[name=g].rules[alert=A].for"]),
    ]
    assert "  ~ n9e/alert-rules.json [name=cpu high]\n" in report.text(
        diff.Result(ref(), d, "new", 0, 0)
    )


def test_multiline_values_render_as_a_diff_block() -> None:
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c"},
        "data": {"app.yaml": "a: 1\nb: 2\n"},
    }
    cm2 = {**cm, "data": {"app.yaml": "a: 1\nb: 3\n"}}
    out = report.markdown(
        diff.Result(ref(), diff.compare({"s/c.yaml": y(cm)}, {"s/c.yaml": y(cm2)}), "new", 0, 0)
    )
    assert "`data['app.yaml']`:\n\n```diff\n@@ -1,2 +1,2 @@\n a: 1\n-b: 2\n+b: 3\n```" in out


# ------------------------------------------------------------------------------------------------
# Secrets
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["Secret", "SealedSecret", "EncryptedSecret"])
def test_secret_values_never_leave_the_diff(kind: str) -> None:
    old = secret(kind, password="b2xkLXBhc3N3b3Jk", gone="Z29uZS12YWx1ZQ==")
    new = secret(kind, password="bmV3LXBhc3N3b3Jk", token="dG9rZW4tdmFsdWU=")
    new["metadata"] = {**new["metadata"], "labels": {"team": "ops"}}  # type: ignore[dict-item]
    d = diff.compare(
        {
            "s/secret-creds.yaml": y(old),
            "s/secret-added.yaml": y({**new, "metadata": {"name": "x"}}),
        },
        {"s/secret-creds.yaml": y(new)},
    )
    out = render_all(d)
    for value in ("b2xkLXBhc3N3b3Jk", "bmV3LXBhc3N3b3Jk", "Z29uZS12YWx1ZQ==", "dG9rZW4tdmFsdWU="):
        assert value not in out
    changed = next(e for e in d.sites[0].entries if e.op is Op.CHANGED)
    assert changed.secret
    assert [(f.where, f.op, f.hidden) for f in changed.fields] == [
        ("metadata.labels", Op.ADDED, False),
        ("data.password", Op.CHANGED, True),
        ("data.gone", Op.REMOVED, True),
        ("data.token", Op.ADDED, True),
    ]
    assert "data.password: value changed (secret value not shown)" in out
    assert '"team": "ops"' in out  # labels are not secret


def test_encrypted_secrets_hide_their_ciphertext_but_not_their_type() -> None:
    def encrypted(ciphertext: str, secret_type: str) -> dict[str, object]:
        return {
            "apiVersion": "secrets.gen-gitops.io/v1alpha1",
            "kind": "EncryptedSecret",
            "metadata": {"name": "abc", "namespace": "project"},
            "spec": {"type": secret_type, "encryptedData": {"REDIS_PASSWORD": ciphertext}},
        }

    old, new = (
        encrypted("-----BEGIN AGE ENCRYPTED FILE-----\nb2xk\n", "Opaque"),
        encrypted("-----BEGIN AGE ENCRYPTED FILE-----\nbmV3\n", "kubernetes.io/basic-auth"),
    )
    d = diff.compare({"s/encryptedsecret-abc.yaml": y(old)}, {"s/encryptedsecret-abc.yaml": y(new)})
    out = render_all(d)
    assert "b2xk" not in out and "bmV3" not in out
    assert [(f.where, f.hidden) for f in d.sites[0].entries[0].fields] == [
        ("spec.type", False),
        ("spec.encryptedData.REDIS_PASSWORD", True),
    ]


def test_a_secret_that_does_not_parse_shows_no_lines() -> None:
    bad = b"apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {p: czNjcmV0}\n"
    d = diff.compare(
        {"s/secret-s.yaml": bad}, {"s/secret-s.yaml": b"kind: Secret\n  broken: [\n czNjcmV0\n"}
    )
    assert "czNjcmV0" not in render_all(d)
    d = diff.compare(
        {"s/sealedsecret-s.yaml": b"data: {p: czNjcmV0}\n  x: ["},
        {"s/sealedsecret-s.yaml": b"[czNjcmV0"},
    )
    assert d.sites[0].entries[0].secret and "czNjcmV0" not in render_all(d)


# ------------------------------------------------------------------------------------------------
# Reports
# ------------------------------------------------------------------------------------------------


def test_markdown_has_a_summary_table_and_a_collapsible_section_per_site() -> None:
    old = {f"site-{i}/manifests/ns/statefulset-app.yaml": y(sts()) for i in range(5)}
    new = {f"site-{i}/manifests/ns/statefulset-app.yaml": y(sts(replicas=2)) for i in range(4)}
    md = report.markdown(
        diff.Result(ref("main"), diff.compare(old, new, ["quiet"]), "the inventory", 0, 0)
    )
    assert md.startswith(
        "<!-- gen-diff -->\n### gen diff: 5 of 6 sites differ (4 changed, 1 removed)\n"
    )
    assert "| `site-0` | 0 | 0 | 1 |" in md and "| `site-4` (site removed) | 0 | 1 | 0 |" in md
    assert md.count("<details><summary>") == 5  # closed: more than three sites
    assert "| ~ | `spec.replicas` | `1` | `2` |" in md
    assert "**- removed** (1):\n\n- `StatefulSet.apps ns/app`\n" in md
    assert "1 site unchanged." in md


def test_markdown_is_cut_before_the_comment_limit() -> None:
    old = {f"site-{i:03}/manifests/ns/statefulset-app.yaml": y(sts()) for i in range(50)}
    new = {p: y(sts(replicas=3)) for p in old}
    md = report.markdown(diff.Result(ref(), diff.compare(old, new), "new", 0, 0), limit=6000)
    assert len(md) <= 6000 + 200
    assert "more sites not shown" in md and "| `site-049` | 0 | 0 | 1 |" in md


def test_markdown_escapes_table_cells() -> None:
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c"},
        "data": {"k": "a|b`c"},
    }
    cm2 = {**cm, "data": {"k": "x"}}
    md = report.markdown(
        diff.Result(ref(), diff.compare({"s/c.yaml": y(cm)}, {"s/c.yaml": y(cm2)}), "new", 0, 0)
    )
    assert '| ~ | `data.k` | ``"a\\|b`c"`` | `"x"` |' in md


def test_no_difference() -> None:
    result = diff.Result(ref("HEAD"), diff.compare({"s/a": b"1"}, {"s/a": b"1"}), "new", 0, 0)
    assert not result.diff.differs
    assert report.text(result).splitlines()[1] == "no difference in 1 site"
    assert report.as_json(result)["differs"] is False


# ------------------------------------------------------------------------------------------------
# The git tree reader
# ------------------------------------------------------------------------------------------------


def small_repo(root: Path) -> Path:
    (root / "compiled" / "s" / "manifests").mkdir(parents=True)
    (root / "compiled" / "s" / "images.txt").write_bytes(b"a\n")
    (root / "compiled" / "s" / "manifests" / "x.yaml").write_bytes("ü: 1\n".encode())
    (root / "other.txt").write_text("not compiled\n")
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "one")
    return root


def test_listing_and_blobs_match_what_git_stores(tmp_path: Path) -> None:
    root = small_repo(tmp_path)
    head = tree.resolve(root, "HEAD")
    ids = tree.listing(root, head)
    assert sorted(ids) == ["s/images.txt", "s/manifests/x.yaml"]
    assert ids["s/images.txt"] == git(root, "hash-object", "compiled/s/images.txt").strip()
    assert tree.blob_id(b"a\n") == ids["s/images.txt"]
    assert tree.read(root, head) == {
        "s/images.txt": b"a\n",
        "s/manifests/x.yaml": "ü: 1\n".encode(),
    }
    assert tree.read_blobs(root, []) == {}


def test_worktree_takes_unmodified_files_from_the_index_and_hashes_the_rest(tmp_path: Path) -> None:
    root = small_repo(tmp_path)
    committed = tree.listing(root, tree.resolve(root, "HEAD"))
    assert tree.worktree(root) == committed
    touched = root / "compiled" / "s" / "manifests" / "x.yaml"
    touched.write_bytes(touched.read_bytes())
    os.utime(
        touched, (1, 1)
    )  # same content, other stat data: git must hash it, and finds the same id
    assert "x.yaml" in git(root, "diff-files", "--name-only") and tree.worktree(root) == committed
    (root / "compiled" / "s" / "images.txt").write_bytes(b"b\n")
    (root / "compiled" / "s" / "manifests" / "x.yaml").unlink()
    (root / "compiled" / "s" / "new.txt").write_text("n\n")
    (root / ".gitignore").write_text("*.tmp\n")
    (root / "compiled" / "s" / "junk.tmp").write_text("x\n")
    assert tree.worktree(root) == {
        "s/images.txt": tree.blob_id(b"b\n"),
        "s/new.txt": tree.blob_id(b"n\n"),
    }


def test_listing_from_a_subdirectory_of_the_repository(tmp_path: Path) -> None:
    small_repo(tmp_path / "")
    sub = tmp_path / "platform"
    (sub / "compiled" / "t").mkdir(parents=True)
    (sub / "compiled" / "t" / "f").write_text("x\n")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-qm", "two")
    assert list(tree.listing(sub, tree.resolve(sub, "HEAD"))) == ["t/f"]


def test_default_base_is_the_merge_base_with_main(tmp_path: Path) -> None:
    root = small_repo(tmp_path)
    first = tree.resolve(root, "HEAD").commit
    git(root, "checkout", "-qb", "feature")
    (root / "other.txt").write_text("changed\n")
    git(root, "commit", "-qam", "feature work")
    git(root, "checkout", "-q", "main")
    (root / "x").write_text("main moved on\n")
    git(root, "add", "x")
    git(root, "commit", "-qm", "main work")
    git(root, "checkout", "-q", "feature")
    base = tree.default_base(root)
    assert base == tree.Ref("merge-base(HEAD, main)", first)
    git(root, "branch", "-qm", "main", "trunk")
    assert tree.default_base(root).name == "HEAD"


def test_unknown_ref_and_missing_repository_are_user_errors(tmp_path: Path) -> None:
    root = small_repo(tmp_path / "repo")
    with pytest.raises(errors.GenError, match=r"git repository .*repo: no commit 'nope'$"):
        tree.resolve(root, "nope")
    (tmp_path / "plain").mkdir()
    with pytest.raises(errors.GenError, match="is not inside a git repository"):
        tree.resolve(tmp_path / "plain", "HEAD")


def test_a_commit_missing_from_a_shallow_clone_says_so(tmp_path: Path) -> None:
    root = small_repo(tmp_path / "repo")
    first = tree.resolve(root, "HEAD").commit
    (root / "other.txt").write_text("2\n")
    git(root, "commit", "-qam", "two")
    git(tmp_path, "clone", "-q", "--depth", "1", f"file://{root}", "shallow")
    with pytest.raises(errors.GenError, match="this clone is shallow"):
        tree.resolve(tmp_path / "shallow", first)


# ------------------------------------------------------------------------------------------------
# diff.run on the reference platform, in a real repository
# ------------------------------------------------------------------------------------------------


@pytest.fixture
def repo(project: Path) -> Path:
    return make_repo(project)


def test_a_one_line_inventory_change_shows_the_objects_and_fields_it_changes(repo: Path) -> None:
    edit(repo / GATEKEEPER, "gatekeeper_version: v362", "gatekeeper_version: v363")
    result = diff.run(diff.Options(repo))
    assert result.base.name == "merge-base(HEAD, main)"
    assert (result.compiled, result.reused) == (2, 0)
    (east,) = [s for s in result.diff.sites if s.site == "cn-east-1"]
    assert [(e.op, e.name) for e in east.entries] == [
        (Op.CHANGED, "StatefulSet.apps project/gatekeeper"),
        (Op.CHANGED, "images.txt"),
    ]
    image = "dockerhub.kubekey.local/project/gatekeeper"
    assert east.entries[0].fields == (
        FieldChange(
            ("spec", "template", "spec", "containers", Item("name", "gatekeeper"), "image"),
            Op.CHANGED,
            f"{image}:v362",
            f"{image}:v363",
        ),
    )
    assert east.entries[1].lines == (("-", f"{image}:v362"), ("+", f"{image}:v363"))
    assert set(east.derived) == {"index.json", "kubekey-manifest.yaml"}
    assert (
        not (repo / "compiled" / "cn-east-1" / "images.txt").read_text().count("v363")
    )  # nothing written


def test_nothing_changed_means_no_difference(repo: Path) -> None:
    result = diff.run(diff.Options(repo, base="HEAD"))
    assert not result.diff.differs and result.diff.unchanged == ("cn-east-1", "cn-north-2")


def test_sites_the_compile_cache_knows_are_current_are_read_not_compiled(repo: Path) -> None:
    edit(repo / GATEKEEPER, "gatekeeper_version: v362", "gatekeeper_version: v363")
    compiled = diff.run(diff.Options(repo, use_cache=False)).diff
    pipeline.run(pipeline.Options(repo))
    result = diff.run(diff.Options(repo))
    assert (result.compiled, result.reused) == (0, 2)
    assert result.diff == compiled
    assert diff.run(diff.Options(repo, worktree=True)).diff == compiled


def test_worktree_mode_sees_hand_edits_of_compiled(repo: Path) -> None:
    sts_file = repo / "compiled" / STS
    edit(sts_file, "  replicas: 1\n", "  replicas: 4\n")
    (repo / "compiled" / "cn-north-2" / "notes.txt").write_text("hand-made\n")
    result = diff.run(diff.Options(repo, worktree=True))
    assert (result.compiled, result.reused) == (0, 2)
    assert [(s.site, [(e.op, e.name) for e in s.entries]) for s in result.diff.sites] == [
        ("cn-east-1", [(Op.CHANGED, "StatefulSet.apps project/gatekeeper")]),
        ("cn-north-2", [(Op.ADDED, "notes.txt")]),
    ]
    assert result.diff.sites[0].entries[0].fields == (
        FieldChange(("spec", "replicas"), Op.CHANGED, 1, 4),
    )
    assert not diff.run(
        diff.Options(repo)
    ).diff.differs  # compiling ignores the hand edits: that is the point
    with pytest.raises(
        errors.GenError, match=r"no compiled/cn-west-9/ in .*; sites: cn-east-1, cn-north-2"
    ):
        diff.run(diff.Options(repo, worktree=True, targets=("cn-west-9",)))


def test_targets_restrict_both_sides_and_removed_targets_are_removed_sites(repo: Path) -> None:
    edit(repo / GATEKEEPER, "gatekeeper_version: v362", "gatekeeper_version: v363")
    only_north = diff.run(diff.Options(repo, targets=("cn-north-2",)))
    assert not only_north.diff.differs and only_north.diff.unchanged == ("cn-north-2",)
    (repo / "inventory/targets/cn-north-2.yml").unlink()
    sites = {s.site: s for s in diff.run(diff.Options(repo)).diff.sites}
    assert sites["cn-north-2"].op is Op.REMOVED
    assert sites["cn-north-2"].count(Op.REMOVED) == len(sites["cn-north-2"].entries) > 5


def test_progress_is_reported_per_compiled_site(repo: Path) -> None:
    ticks: list[tuple[int, int]] = []
    diff.run(
        diff.Options(
            repo, use_cache=False, progress=lambda done, total: ticks.append((done, total))
        )
    )
    assert ticks == [(1, 2), (2, 2)]
