"""``gen publish``: one signed commit per changed site on its own deploy branch, nothing else."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from generator.core.errors import GenError
from generator.deliver import publish
from generator.deliver.git.repo import open_repo
from tests.support.ferry import (
    IDENTITY,
    OTHER_SITE,
    SITE,
    World,
    edit_compiled,
    git,
    refs,
    rev,
    verify_commit,
)

BRANCH = publish.branch(SITE)


def show(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "--git-dir", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout


def files_on_branch(repo: Path, branch: str) -> list[str]:
    return show(repo, "ls-tree", "-r", "--name-only", branch).split()


def compiled_files(root: Path, site: str) -> list[str]:
    directory = root / "compiled" / site
    return sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file())


def test_each_site_gets_a_branch_with_exactly_its_own_files(world: World) -> None:
    for site in (SITE, OTHER_SITE):
        assert files_on_branch(world.deploy, publish.branch(site)) == compiled_files(
            world.root, site
        )
        for path in files_on_branch(world.deploy, publish.branch(site)):
            assert (
                show(world.deploy, "cat-file", "blob", f"{publish.branch(site)}:{path}").encode()
                == (world.root / "compiled" / site / path).read_bytes()
            )
    assert {r for r in refs(world.deploy) if r.startswith("refs/heads/")} == {
        publish.branch(SITE),
        publish.branch(OTHER_SITE),
    }


def test_deploy_commit_is_ssh_signed_by_the_configured_key(world: World) -> None:
    proc = verify_commit(world.deploy, BRANCH, world.keys.allowed_signers)
    assert proc.returncode == 0, proc.stderr
    assert f'Good "git" signature for {IDENTITY.email}' in proc.stderr


def test_message_names_the_source_commit_and_the_files_changed(world: World) -> None:
    edit_compiled(world.root, SITE, "images.txt", "registry.local/new:1\n")
    edit_compiled(world.root, SITE, "manifests/project/configmap-extra.yaml", "kind: ConfigMap\n")
    source = git(world.root, "rev-parse", "HEAD").strip()
    [result] = publish.publish(world.root, [SITE], world.publish_settings())
    message = show(world.deploy, "log", "-1", "--format=%B", BRANCH)
    assert message.splitlines()[0] == f"deploy {SITE}: 3 files from {source[:12]}"
    assert "~ images.txt" in message and "+ manifests/project/configmap-extra.yaml" in message
    assert "~ index.json" in message and f"Source-Commit: {source}" in message
    assert result.changes == (
        "~ images.txt",
        "~ index.json",
        "+ manifests/project/configmap-extra.yaml",
    )


def test_nothing_changed_commits_nothing(world: World) -> None:
    before = refs(world.deploy)
    results = publish.publish(world.root, [], world.publish_settings())
    assert [r.changed for r in results] == [False, False]
    assert refs(world.deploy) == before


def test_one_change_is_one_commit_on_top_of_the_previous_one(world: World) -> None:
    previous = rev(world.deploy, BRANCH)
    other = rev(world.deploy, publish.branch(OTHER_SITE))
    edit_compiled(world.root, SITE, "kubekey-manifest.yaml", None)
    [result] = publish.publish(world.root, [SITE], world.publish_settings())
    assert show(world.deploy, "rev-parse", f"{BRANCH}^").strip() == previous
    assert result.changes == ("~ index.json", "- kubekey-manifest.yaml")
    assert rev(world.deploy, publish.branch(OTHER_SITE)) == other


def test_uncommitted_compiled_changes_are_refused_unless_allowed(world: World) -> None:
    (world.root / "compiled" / SITE / "images.txt").write_text("edited\n")
    before = refs(world.deploy)
    with pytest.raises(GenError, match=f"compiled/{SITE} has uncommitted changes"):
        publish.publish(world.root, [SITE], world.publish_settings())
    assert refs(world.deploy) == before


def test_allow_dirty_publishes_and_says_so(world: World) -> None:
    edit_compiled(world.root, SITE, "images.txt", "registry.local/x:1\n")
    git(world.root, "reset", "-q", "--soft", "HEAD^")  # the change is now uncommitted
    publish.publish(world.root, [SITE], world.publish_settings(allow_dirty=True))
    assert "Source-Dirty: yes" in show(world.deploy, "log", "-1", "--format=%B", BRANCH)


def test_files_that_disagree_with_the_index_are_refused(world: World) -> None:
    (world.root / "compiled" / SITE / "images.txt").write_text("hand edit\n")
    git(world.root, "commit", "-qam", "hand edit")
    with pytest.raises(GenError, match=r"images.txt does not match its sha256 in index.json"):
        publish.publish(world.root, [SITE], world.publish_settings())


def test_a_file_missing_from_the_index_is_refused(world: World) -> None:
    (world.root / "compiled" / SITE / "stray.yaml").write_text("x: 1\n")
    git(world.root, "add", "-A")
    git(world.root, "commit", "-qm", "stray")
    with pytest.raises(GenError, match=r"stray\.yaml is not listed in"):
        publish.publish(world.root, [SITE], world.publish_settings())


def test_unknown_site_is_an_error_listing_the_compiled_ones(world: World) -> None:
    with pytest.raises(GenError, match=f"no compiled site nowhere; sites: {SITE}, {OTHER_SITE}"):
        publish.publish(world.root, ["nowhere"], world.publish_settings())


def test_missing_deploy_repository_is_created_bare(world: World, tmp_path: Path) -> None:
    settings = publish.Settings(tmp_path / "new.git", world.keys.release.private, IDENTITY)
    publish.publish(world.root, [SITE], settings)
    assert show(tmp_path / "new.git", "rev-parse", "--is-bare-repository").strip() == "true"
    assert show(tmp_path / "new.git", "rev-parse", f"{BRANCH}^{{tree}}") == show(
        world.deploy, "rev-parse", f"{BRANCH}^{{tree}}"
    )


def test_a_directory_that_is_not_a_repository_is_never_used_nor_a_parent_searched(
    world: World,
) -> None:
    inside_source = world.root / "not-a-repo"
    inside_source.mkdir()
    with pytest.raises(GenError, match="not a git repository"):
        publish.publish(
            world.root,
            [SITE],
            publish.Settings(inside_source, world.keys.release.private, IDENTITY),
        )


def test_missing_signing_key_moves_no_branch(world: World, tmp_path: Path) -> None:
    edit_compiled(world.root, SITE, "images.txt", "registry.local/y:1\n")
    before = refs(world.deploy)
    with pytest.raises(GenError, match=r"signing key .*no-key does not exist"):
        publish.publish(
            world.root, [SITE], publish.Settings(world.deploy, tmp_path / "no-key", IDENTITY)
        )
    assert refs(world.deploy) == before


def test_publish_leaves_the_source_repository_alone(world: World) -> None:
    edit_compiled(world.root, SITE, "images.txt", "registry.local/z:1\n")
    status, head = git(world.root, "status", "--porcelain"), git(world.root, "rev-parse", "HEAD")
    publish.publish(world.root, [], world.publish_settings())
    assert (git(world.root, "status", "--porcelain"), git(world.root, "rev-parse", "HEAD")) == (
        status,
        head,
    )
    assert open_repo(world.root).git_dir == world.root / ".git"
