"""``gen publish --name``, ``gen releases`` and ``gen rollback`` end to end through the CLI."""

from __future__ import annotations

import json

from typer.testing import CliRunner, Result

from generator.cli import app
from generator.deliver import publish
from tests.support.ferry import SITE, World, edit_compiled, refs, rev


def gen(world: World, *args: str) -> Result:
    return CliRunner().invoke(
        app,
        [*args, "--deploy-repo", str(world.deploy)],
        env={"GEN_SIGNING_KEY": str(world.keys.release.private)},
    )


def replicas(world: World, n: int) -> None:
    path = "manifests/project/statefulset-abc-service.yaml"
    text = (world.root / "compiled" / SITE / path).read_text()
    before = next(line for line in text.splitlines() if line.startswith("  replicas: "))
    edit_compiled(world.root, SITE, path, text.replace(before, f"  replicas: {n}"))


def test_publish_releases_rollback_and_the_list_says_what_happened(world: World) -> None:
    first = rev(world.deploy, publish.branch(SITE))
    for n, name in ((5, "five"), (7, "")):
        replicas(world, n)
        result = gen(world, "publish", "-t", SITE, "--root", str(world.root), "--name", name)
        assert result.exit_code == 0, result.output
    assert "release 3 committed" in result.output and "1 changed; derived: index.json" in (
        result.output
    )
    before = refs(world.deploy)
    dry = gen(world, "rollback", "-t", SITE, "--to", "1", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "~ spec.replicas: 7 -> 2" in dry.output and "nothing written" in dry.output
    assert refs(world.deploy) == before
    done = gen(world, "rollback", "-t", SITE, "--to", "1", "--name", "undo")
    assert done.exit_code == 0, done.output
    assert "release 4 restores release 1" in done.output
    listed = gen(world, "releases", "-t", SITE, "-o", "json")
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.output)
    assert [(r["release"], r["name"], r["rollback_to"]) for r in rows] == [
        (4, "undo", 1),
        (3, None, None),
        (2, "five", None),
        (1, None, None),
    ]
    assert rows[0]["details"] == ["~ StatefulSet.apps project/abc-service: spec.replicas"]
    assert rows[3]["commit"] == first
    text = gen(world, "releases", "-t", SITE)
    assert text.output.splitlines()[1].startswith("4 (undo)") and "rollback to 1: " in text.output


def test_rollback_refuses_an_unknown_release_and_a_missing_key_writes_nothing(
    world: World,
) -> None:
    before = refs(world.deploy)
    unknown = gen(world, "rollback", "-t", SITE, "--to", "9")
    assert unknown.exit_code == 1
    assert "has no release 9 (releases 1)" in unknown.output
    as_json = gen(world, "rollback", "-t", SITE, "--to", "9", "-o", "json")
    assert as_json.exit_code == 1 and json.loads(as_json.output)["ok"] is False
    missing = gen(world, "releases", "-t", "nowhere")
    assert missing.exit_code == 1 and "no deploy branch for nowhere" in missing.output
    assert refs(world.deploy) == before
