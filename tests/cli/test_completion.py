"""Shell completion of target names: the names the inventory gives, never an error."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from generator.cli import complete_targets
from tests.support.tree import write_tree


def _complete(root: Path, incomplete: str) -> list[str]:
    ctx: Any = SimpleNamespace(params={"root": str(root)})
    return complete_targets(ctx, incomplete)


def test_completes_composed_target_names_as_the_inventory_names_them(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            "inventory/reclass-config.yml": "compose_node_name: true\n",
            "inventory/targets/prod/web.yml": "parameters: {}\n",
            "inventory/targets/prod/db.yml": "parameters: {}\n",
            "inventory/targets/staging.yml": "parameters: {}\n",
        },
    )
    assert _complete(tmp_path, "") == ["prod.db", "prod.web", "staging"]
    assert _complete(tmp_path, "prod.w") == ["prod.web"]


def test_completion_offers_nothing_for_a_broken_inventory(tmp_path: Path) -> None:
    write_tree(tmp_path, {"inventory/reclass-config.yml": "no_such_setting: 1\n"})
    assert _complete(tmp_path, "") == []
    assert _complete(tmp_path / "missing", "") == []
