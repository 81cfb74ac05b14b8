"""Targets that apply the same classes share one merge of them (``inventory.prefix``): every
target still gets exactly what merging it alone gives, its own copy, and errors in file order."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from generator.build.inventory import Inventory, Target, settings_for
from generator.core.errors import GenError
from tests.support.tree import write_tree

C = "inventory/classes/"
TG = "inventory/targets/"

CLASSES = {
    C + "common.yml": """
        parameters:
          =region: eu
          site:
            name: ${_reclass_:name:short}
            labels: [base]
            registry: registry.local
          defaults: &d {replicas: 1, image: "${site:registry}/app"}
          mode: 0644
          enabled: yes
          zone_name: a
        """,
    C + "kinds/small.yml": """
        classes: [common]
        parameters:
          site: {size: small, labels: [small]}
          app: ${defaults}
        """,
    C + "kinds/large.yml": """
        classes: [common]
        parameters:
          site: {size: large, labels: [large]}
          app: ${defaults}
          ~defaults: {replicas: 3, image: big}
          zone_name: b
        """,
    C + "services/web.yml": """
        parameters:
          services:
            web: {port: 80, host: "web.${site:name}", tags: [a]}
          app: {replicas: 2}
        """,
    C + "services/db.yml": """
        parameters:
          services:
            db: {port: 5432, =engine: postgres, host: "${site:name}-db"}
        exports:
          db_host: ${services:db:host}
        """,
    C + "meta.yml": """
        parameters:
          _reclass_: {environment: custom}
        """,
    C + "zone/a.yml": "parameters: {zone: a}\n",
    C + "zone/b.yml": "parameters: {zone: b}\n",
}

TARGETS = {
    TG + "one.yml": "classes: [kinds.small, services.web, services.db]\n",
    TG + "two.yml": """
        classes: [kinds.small, services.web, services.db]
        parameters:
          site: {labels: [two], registry: r2.local}
          services: {web: {tags: [b]}}
        """,
    TG + "three.yml": """
        classes: [kinds.large, services.web, services.db]
        parameters:
          ~app: {replicas: 9}
        """,
    TG + "four.yml": """
        classes: [kinds.small, services.web]
        parameters:
          services: {web: {port: 8080}}
        """,
    TG + "five.yml": """
        classes: [kinds.small, meta, services.web]
        """,
    TG + "six.yml": """
        classes: [kinds.large, "zone.${zone_name}", services.db]
        """,
    TG + "seven.yml": """
        classes: [common, "zone.${zone_name}", services.web]
        """,
}


def _view(target: Target) -> tuple[Any, ...]:
    return (
        target.parameters,
        target.locations,
        target.classes,
        target.inputs,
        target.probes,
        target.warnings,
    )


def _alone(root: Path, name: str) -> tuple[Any, ...]:
    """Target ``name`` merged in an inventory that merged nothing before it."""
    return _view(Inventory(root, settings_for(root)).target(name))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    write_tree(tmp_path, {**CLASSES, **TARGETS})
    return tmp_path


@pytest.mark.parametrize("order", ["forward", "backward"])
def test_every_target_gets_what_merging_it_alone_gives(root: Path, order: str) -> None:
    inventory = Inventory(root, settings_for(root))
    names = list(inventory.target_files())
    if order == "backward":
        names.reverse()
    for _ in range(2):  # the second round takes every class sequence from the cache
        for name in names:
            assert _view(inventory.target(name)) == _alone(root, name), name
    assert inventory._prefixes.hits > len(names)


def test_shared_classes_give_each_target_its_own_values(root: Path) -> None:
    inventory = Inventory(root, settings_for(root))
    one = inventory.target("one")
    before = copy.deepcopy(one.parameters)
    two = inventory.target("two")
    assert two.parameters["site"]["labels"] == ["base", "small", "two"]
    assert two.parameters["app"]["image"] == "r2.local/app"
    assert one.parameters == before
    one.parameters["site"]["labels"].append("changed")
    one.parameters["services"]["web"]["port"] = 1
    again = inventory.target("two")
    assert again.parameters == two.parameters
    assert inventory.target("one").parameters == before


def test_metadata_and_locations_are_the_targets_own(root: Path) -> None:
    inventory = Inventory(root, settings_for(root))
    inventory.target("one")
    two = inventory.target("two")
    assert two.parameters["_reclass_"]["name"]["short"] == "two"
    assert two.parameters["site"]["name"] == "two"
    assert str(two.location(("site", "labels", 2))).startswith(TG + "two.yml:")
    assert str(two.location(("site", "size"))).startswith(C + "kinds/small.yml:")
    assert str(two.location(("nothing", "here"))) == TG + "two.yml:1:1"
    assert str(inventory.target("one").location(("site", "labels", 1))).startswith(
        C + "kinds/small.yml:"
    )


def test_a_class_that_sets_reclass_metadata_merges_over_it(root: Path) -> None:
    inventory = Inventory(root, settings_for(root))
    inventory.target("one")
    five = inventory.target("five")
    assert five.parameters["_reclass_"]["environment"] == "custom"
    assert five.parameters["_reclass_"]["name"]["full"] == "five"
    assert next(iter(five.parameters)) == "_reclass_"
    assert _view(five) == _alone(root, "five")


def test_class_names_with_references_after_a_cached_prefix(root: Path) -> None:
    inventory = Inventory(root, settings_for(root))
    inventory.target("three")
    six = inventory.target("six")
    assert six.classes == ("common", "kinds.large", "zone.b", "services.db")
    assert six.parameters["zone"] == "b"
    seven = inventory.target("seven")
    assert seven.classes == ("common", "zone.a", "services.web")
    assert seven.parameters["zone"] == "a"


def test_errors_come_in_file_order_after_a_cached_prefix(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            **CLASSES,
            C + "bad.yml": "parameters:\n  site: just-a-string\n",
            TG + "good.yml": "classes: [kinds.small, services.web]\n",
            TG + "broken.yml": "classes: [kinds.small, bad, missing]\n",
        },
    )
    inventory = Inventory(tmp_path, settings_for(tmp_path))
    inventory.target("good")
    with pytest.raises(GenError) as exc:
        inventory.target("broken")
    message = str(exc.value)
    assert message.startswith(C + "bad.yml:2:3  $.site  "), message
    assert "cannot merge a str ('just-a-string') over a mapping" in message
    with pytest.raises(GenError) as again:
        inventory.target("broken")
    assert str(again.value) == message


def test_a_constant_from_a_cached_class_holds_in_every_target(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            **CLASSES,
            TG + "a.yml": "classes: [common]\n",
            TG + "b.yml": "classes: [common]\nparameters:\n  region: us\n",
        },
    )
    inventory = Inventory(tmp_path, settings_for(tmp_path))
    assert inventory.target("a").parameters["region"] == "eu"
    with pytest.raises(GenError) as exc:
        inventory.target("b")
    assert str(exc.value).startswith(TG + "b.yml:3:3  $.region  cannot change a constant set at ")
