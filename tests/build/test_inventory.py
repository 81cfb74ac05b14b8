"""generator.build.inventory: Kapitan/reclass semantics, rule by rule, on small inline inventories.

Every error test asserts the complete message (``file:line:col  $.path  message``), so a test
fails when an error is raised for the wrong reason or points at the wrong place.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from generator.build.inventory import Inventory, Settings, Target, settings_for
from generator.core.errors import GenError, ProblemReport
from generator.core.location import Location
from tests.support.tree import write_tree

T = "inventory/targets/site.yml"
C = "inventory/classes/"


def load(root: Path, files: dict[str, str], name: str = "site") -> Target:
    """Write ``files`` under ``root`` and merge target ``name`` with the root's reclass-config."""
    write_tree(root, files)
    return Inventory(root, settings_for(root)).target(name)


def params(target: Target) -> dict[str, Any]:
    """The target's parameters without reclass's ``_reclass_`` metadata."""
    return {k: v for k, v in target.parameters.items() if k != "_reclass_"}


def error(root: Path, files: dict[str, str], name: str = "site") -> str:
    """The complete message of the user error that merging target ``name`` raises."""
    with pytest.raises(GenError) as exc:
        load(root, files, name)
    return str(exc.value)


def loc(file: str, line: int, column: int) -> Location:
    return Location(file, line, column)


# --------------------------------------------------------------------------------------------
# Targets


def test_target_parameters_are_read(tmp_path: Path) -> None:
    t = load(
        tmp_path,
        {
            T: """
        parameters:
          site: {name: east}
        """
        },
    )
    assert params(t) == {"site": {"name": "east"}}
    assert (t.name, t.file, t.classes) == ("site", T, ())


def test_empty_target_file_has_no_parameters(tmp_path: Path) -> None:
    assert params(load(tmp_path, {T: ""})) == {}


def test_reclass_metadata_names_the_target(tmp_path: Path) -> None:
    # As reclass: without compose_node_name a target in a subfolder is named by its file alone.
    t = load(
        tmp_path,
        {"inventory/targets/eu/west.yml": "parameters:\n  n: ${_reclass_:name:short}\n"},
        "west",
    )
    assert t.parameters["_reclass_"] == {
        "name": {"full": "west", "short": "west", "parts": ["west"], "path": "west"},
        "environment": "base",
    }
    assert t.parameters["n"] == "west"


def test_composed_target_names_and_environment(tmp_path: Path) -> None:
    t = load(
        tmp_path,
        {
            "inventory/reclass-config.yml": "compose_node_name: true\n",
            "inventory/targets/eu/west.yml": "environment: prod\nparameters: {}\n",
        },
        "eu.west",
    )
    assert t.parameters["_reclass_"] == {
        "name": {"full": "eu.west", "short": "west", "parts": ["eu", "west"], "path": "eu/west"},
        "environment": "prod",
    }


def test_unknown_target_lists_known_targets(tmp_path: Path) -> None:
    files = {
        "inventory/targets/b.yml": "",
        "inventory/targets/sub/a.yaml": "",
        "inventory/targets/notes.txt": "",
    }
    assert error(tmp_path, files, "c") == "unknown target 'c'; targets in inventory/targets: a, b"


def test_unknown_target_without_any_targets(tmp_path: Path) -> None:
    (tmp_path / "inventory" / "targets").mkdir(parents=True)
    assert error(tmp_path, {}, "c") == "unknown target 'c'; targets in inventory/targets: none"


def test_missing_targets_directory_is_an_error(tmp_path: Path) -> None:
    assert error(tmp_path, {}, "c") == (
        "inventory/targets  no inventory/targets directory here; "
        "run gen in the project root or pass --root"
    )


def test_two_target_files_same_name(tmp_path: Path) -> None:
    files = {"inventory/targets/a.yml": "", "inventory/targets/sub/a.yml": ""}
    assert error(tmp_path, files, "a") == (
        "inventory/targets/sub/a.yml  target 'a' is also defined in "
        "inventory/targets/a.yml; rename one"
    )


def test_target_files_are_sorted_by_name(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            "inventory/targets/z/b.yml": "",
            "inventory/targets/c.yaml": "",
            "inventory/targets/a.yml": "",
        },
    )
    assert list(Inventory(tmp_path).target_files()) == ["a", "b", "c"]


# --------------------------------------------------------------------------------------------
# Finding classes


def test_dotted_class_maps_to_file(tmp_path: Path) -> None:
    t = load(
        tmp_path, {T: "classes: [services.web]\n", C + "services/web.yml": "parameters: {x: 1}\n"}
    )
    assert (params(t), t.classes) == ({"x": 1}, ("services.web",))


def test_dotted_class_maps_to_init_file(tmp_path: Path) -> None:
    t = load(
        tmp_path,
        {T: "classes: [services.web]\n", C + "services/web/init.yml": "parameters: {x: 1}\n"},
    )
    assert (params(t), t.classes) == ({"x": 1}, ("services.web",))


def test_yaml_extension_is_accepted_for_classes(tmp_path: Path) -> None:
    t = load(
        tmp_path,
        {
            T: "classes: [a, b]\n",
            C + "a.yaml": "parameters: {x: 1}\n",
            C + "b/init.yaml": "parameters: {y: 2}\n",
        },
    )
    assert params(t) == {"x": 1, "y": 2}


def test_ambiguous_class_file(tmp_path: Path) -> None:
    files = {T: "classes:\n  - web\n", C + "web.yml": "", C + "web/init.yml": ""}
    assert error(tmp_path, files) == (
        f"{C}web.yml  class 'web' is ambiguous: both inventory/classes/web/init.yml and "
        "inventory/classes/web.yml exist; keep one"
    )


def test_relative_class_in_init_file(tmp_path: Path) -> None:
    t = load(
        tmp_path,
        {
            T: "classes: [svc.web]\n",
            C + "svc/web/init.yml": "classes: [.db]\nparameters:\n  l: [web]\n",
            C + "svc/db.yml": "parameters:\n  l: [db]\n",
        },
    )
    # As reclass: relative to the parent of the class's dotted name, init.yml or not.
    assert t.classes == ("svc.db", "svc.web")
    assert params(t) == {"l": ["db", "web"]}


def test_relative_class_in_plain_file_is_a_sibling(tmp_path: Path) -> None:
    t = load(
        tmp_path,
        {T: "classes: [svc.web]\n", C + "svc/web.yml": "classes: [.db]\n", C + "svc/db.yml": ""},
    )
    assert t.classes == ("svc.db", "svc.web")


def test_each_further_dot_goes_one_level_up(tmp_path: Path) -> None:
    # a/b/c/init.yml is class a.b.c: . is a.b, .. is a, ... is the top
    t = load(
        tmp_path,
        {
            T: "classes: [a.b.c]\n",
            C + "a/b/c/init.yml": "classes: [.z, ..x, ...y]\n",
            C + "a/b/z.yml": "",
            C + "a/x.yml": "",
            C + "y.yml": "",
        },
    )
    assert t.classes == ("a.b.z", "a.x", "y", "a.b.c")


def test_relative_class_needs_a_name_after_the_dots(tmp_path: Path) -> None:
    files = {T: "classes: [a]\n", C + "a/init.yml": "classes:\n  - ..\n"}
    assert error(tmp_path, files) == (
        f"{C}a/init.yml:2:5  invalid class name '..': a relative name needs a class after the dots"
    )


def test_relative_class_in_target_is_top_level(tmp_path: Path) -> None:
    t = load(tmp_path, {T: "classes: [.common]\n", C + "common.yml": ""})
    assert t.classes == ("common",)


def test_relative_class_above_classes_dir_stops_at_the_top(tmp_path: Path) -> None:
    files = {T: "classes: [a]\n", C + "a.yml": "classes:\n  - ..up\n", C + "up.yml": ""}
    assert load(tmp_path, files).classes == ("up", "a")


def test_class_name_with_spaces_is_an_error(tmp_path: Path) -> None:
    assert error(tmp_path, {T: "classes:\n  - ' a'\n"}) == f"{T}:2:5  invalid class name ' a'"


# --------------------------------------------------------------------------------------------
# Order of application


def test_classes_apply_depth_first_target_last(tmp_path: Path) -> None:
    t = load(
        tmp_path,
        {
            T: "classes: [a, d]\nparameters:\n  order: [site]\n  last: site\n",
            C + "a.yml": "classes: [b, c]\nparameters:\n  order: [a]\n  last: a\n",
            C + "b.yml": "parameters:\n  order: [b]\n  last: b\n",
            C + "c.yml": "parameters:\n  order: [c]\n  last: c\n",
            C + "d.yml": "parameters:\n  order: [d]\n  last: d\n",
        },
    )
    assert t.classes == ("b", "c", "a", "d")
    assert params(t) == {"order": ["b", "c", "a", "d", "site"], "last": "site"}


def test_later_class_overrides_earlier_scalar(tmp_path: Path) -> None:
    t = load(
        tmp_path,
        {
            T: "classes: [a, b]\n",
            C + "a.yml": "parameters: {x: a}\n",
            C + "b.yml": "parameters: {x: b}\n",
        },
    )
    assert params(t) == {"x": "b"}


def test_diamond_include_applies_class_once(tmp_path: Path) -> None:
    t = load(
        tmp_path,
        {
            T: "classes: [b, c]\n",
            C + "base.yml": "parameters:\n  l: [base]\n  x: base\n",
            C + "b.yml": "classes: [base]\nparameters:\n  l: [b]\n  x: b\n",
            C + "c.yml": "classes: [base]\nparameters:\n  l: [c]\n",
        },
    )
    assert t.classes == ("base", "b", "c")
    # base is not applied again under c, so it does not undo b's x
    assert params(t) == {"l": ["base", "b", "c"], "x": "b"}


def test_class_listed_twice_applies_once(tmp_path: Path) -> None:
    t = load(tmp_path, {T: "classes: [a, a]\n", C + "a.yml": "parameters:\n  l: [a]\n"})
    assert (t.classes, params(t)) == (("a",), {"l": ["a"]})


def test_class_cycle_is_an_error(tmp_path: Path) -> None:
    files = {T: "classes: [a]\n", C + "a.yml": "classes: [b]\n", C + "b.yml": "classes:\n  - a\n"}
    assert (
        error(tmp_path, files)
        == f"{C}b.yml:2:5  class cycle: a -> b -> a; remove one of these includes"
    )


def test_class_including_itself_is_a_cycle(tmp_path: Path) -> None:
    files = {T: "classes: [a.b]\n", C + "a/b/init.yml": "classes: [a.b]\n"}
    assert (
        error(tmp_path, files)
        == f"{C}a/b/init.yml:1:11  class cycle: a.b -> a.b; remove one of these includes"
    )


# --------------------------------------------------------------------------------------------
# Missing classes


def test_missing_class_error_names_file_and_line(tmp_path: Path) -> None:
    files = {T: "classes:\n  - common\n  - services.nope\n", C + "common.yml": ""}
    assert error(tmp_path, files) == (
        f"{T}:3:5  class 'services.nope' not found: "
        "expected inventory/classes/services/nope.yml or "
        ".../init.yml (or set ignore_class_notfound in inventory/reclass-config.yml)"
    )


def test_missing_class_in_a_class_names_that_class(tmp_path: Path) -> None:
    files = {T: "classes: [a]\n", C + "a.yml": "parameters: {}\nclasses: [nope]\n"}
    assert error(tmp_path, files).startswith(f"{C}a.yml:2:11  class 'nope' not found")


def test_ignore_class_notfound_skips_missing_class(tmp_path: Path) -> None:
    t = load(
        tmp_path,
        {
            T: "classes: [nope, a]\nparameters: {x: 1}\n",
            C + "a.yml": "parameters: {y: 2}\n",
            "inventory/reclass-config.yml": "ignore_class_notfound: true\n",
        },
    )
    assert (t.classes, params(t)) == (("a",), {"y": 2, "x": 1})


def test_ignore_class_notfound_regexp_limits_what_is_skipped(tmp_path: Path) -> None:
    files = {
        T: "classes:\n  - optional.x\n  - required\n",
        "inventory/reclass-config.yml": (
            "ignore_class_notfound: true\nignore_class_notfound_regexp:\n  - optional\\..*\n"
        ),
    }
    assert error(tmp_path, files).startswith(f"{T}:3:5  class 'required' not found")


def test_ignore_class_notfound_regexp_may_be_a_single_string(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            "inventory/reclass-config.yml": "ignore_class_notfound: true\n"
            "ignore_class_notfound_regexp: 'opt.*'\n"
        },
    )
    assert settings_for(tmp_path) == Settings(True, ("opt.*",))


def test_settings_default_without_config(tmp_path: Path) -> None:
    assert settings_for(tmp_path) == Settings(False, (".*",))


def test_ignore_class_notfound_must_be_a_boolean(tmp_path: Path) -> None:
    write_tree(tmp_path, {"inventory/reclass-config.yml": "ignore_class_notfound: 'yes'\n"})
    with pytest.raises(ProblemReport) as exc:
        settings_for(tmp_path)
    assert (
        str(exc.value)
        == "inventory/reclass-config.yml:1:1  ignore_class_notfound must be true or false"
    )


def test_ignore_class_notfound_regexp_must_be_strings(tmp_path: Path) -> None:
    write_tree(tmp_path, {"inventory/reclass-config.yml": "ignore_class_notfound_regexp: [1]\n"})
    with pytest.raises(ProblemReport) as exc:
        settings_for(tmp_path)
    assert str(exc.value) == "inventory/reclass-config.yml:1:1  must be a list of regexps"


# --------------------------------------------------------------------------------------------
# Merging


def test_dicts_merge_recursively(tmp_path: Path) -> None:
    t = load(
        tmp_path,
        {
            T: "classes: [a]\nparameters:\n  d: {e: {y: 2}, g: 3}\n",
            C + "a.yml": "parameters:\n  d: {e: {x: 1}, f: 1}\n",
        },
    )
    assert params(t) == {"d": {"e": {"x": 1, "y": 2}, "f": 1, "g": 3}}


def test_lists_extend_in_class_order(tmp_path: Path) -> None:
    t = load(
        tmp_path,
        {
            T: "classes: [a, b]\nparameters:\n  l: [site]\n",
            C + "a.yml": "parameters:\n  l: [a1, a2]\n",
            C + "b.yml": "parameters:\n  l: [b]\n",
        },
    )
    assert params(t) == {"l": ["a1", "a2", "b", "site"]}


def test_scalars_replace(tmp_path: Path) -> None:
    t = load(
        tmp_path,
        {
            T: "classes: [a]\nparameters: {i: 2, s: two, b: false, f: 2.5}\n",
            C + "a.yml": "parameters: {i: 1, s: one, b: true, f: 1.5}\n",
        },
    )
    assert params(t) == {"i": 2, "s": "two", "b": False, "f": 2.5}


def test_scalar_may_replace_scalar_of_another_type(tmp_path: Path) -> None:
    t = load(
        tmp_path, {T: "classes: [a]\nparameters: {x: '1'}\n", C + "a.yml": "parameters: {x: 1}\n"}
    )
    assert params(t) == {"x": "1"}


def test_tilde_key_replaces_dict_instead_of_merging(tmp_path: Path) -> None:
    t = load(
        tmp_path,
        {T: "classes: [a]\nparameters:\n  ~d: {y: 2}\n", C + "a.yml": "parameters:\n  d: {x: 1}\n"},
    )
    assert params(t) == {"d": {"y": 2}}


def test_tilde_key_replaces_list_instead_of_extending(tmp_path: Path) -> None:
    t = load(
        tmp_path,
        {T: "classes: [a]\nparameters:\n  ~l: [site]\n", C + "a.yml": "parameters:\n  l: [a]\n"},
    )
    assert params(t) == {"l": ["site"]}


def test_nested_tilde_key_replaces_only_that_key(tmp_path: Path) -> None:
    t = load(
        tmp_path,
        {
            T: "classes: [a]\nparameters:\n  d:\n    ~e: {y: 2}\n",
            C + "a.yml": "parameters:\n  d: {e: {x: 1}, f: 1}\n",
        },
    )
    assert params(t) == {"d": {"e": {"y": 2}, "f": 1}}


def test_tilde_key_allows_dict_over_scalar(tmp_path: Path) -> None:
    t = load(
        tmp_path,
        {T: "classes: [a]\nparameters:\n  ~x: {y: 2}\n", C + "a.yml": "parameters:\n  x: 1\n"},
    )
    assert params(t) == {"x": {"y": 2}}


def test_tilde_key_in_a_new_key_is_taken_off(tmp_path: Path) -> None:
    t = load(tmp_path, {T: "parameters:\n  ~d:\n    ~e: 1\n"})
    assert params(t) == {"d": {"e": 1}}


def test_tilde_key_inside_layer_merged_over_a_reference(tmp_path: Path) -> None:
    # d is a reference, so the target's layer is merged only once ${base} is resolved:
    # ~e still replaces
    t = load(
        tmp_path,
        {
            T: "classes: [a]\nparameters:\n  d:\n    ~e: {y: 2}\n    n: {~m: 1}\n",
            C + "a.yml": "parameters:\n  base: {e: {x: 1}}\n  d: ${base}\n",
        },
    )
    assert params(t) == {"base": {"e": {"x": 1}}, "d": {"e": {"y": 2}, "n": {"m": 1}}}


def test_dict_over_scalar_error_names_both_locations(tmp_path: Path) -> None:
    files = {T: "classes: [a]\nparameters:\n  x:\n    y: 1\n", C + "a.yml": "parameters:\n  x: 1\n"}
    assert error(tmp_path, files) == (
        f"{T}:3:3  $.x  cannot merge a mapping over an int (1) set at "
        f"{C}a.yml:2:3; write ~x to replace the value instead of merging"
    )


def test_scalar_over_dict_is_an_error(tmp_path: Path) -> None:
    files = {
        T: "classes: [a]\nparameters:\n  d:\n    e: x\n",
        C + "a.yml": "parameters:\n  d: {e: {k: 1}}\n",
    }
    assert error(tmp_path, files) == (
        f"{T}:4:5  $.d.e  cannot merge a str ('x') over a mapping set at "
        f"{C}a.yml:2:7; write ~e to replace the value instead of merging"
    )


def test_list_over_dict_is_an_error(tmp_path: Path) -> None:
    files = {T: "classes: [a]\nparameters:\n  x: [1]\n", C + "a.yml": "parameters:\n  x: {k: 1}\n"}
    assert error(tmp_path, files) == (
        f"{T}:3:3  $.x  cannot merge a list over a mapping set at "
        f"{C}a.yml:2:3; write ~x to replace the value instead of merging"
    )


def test_null_replaced_and_replacing(tmp_path: Path) -> None:
    t = load(
        tmp_path,
        {
            T: (
                "classes: [a]\nparameters:\n  was_null: {k: 1}\n  now_null: ~\n"
                "  list_was_null: [1]\n  scalar: null\n"
            ),
            C + "a.yml": (
                "parameters:\n  was_null: null\n  now_null: {k: 1}\n  list_was_null:\n  scalar: 5\n"
            ),
        },
    )
    assert params(t) == {
        "was_null": {"k": 1},
        "now_null": None,
        "list_was_null": [1],
        "scalar": None,
    }


def test_null_merged_over_a_reference_replaces_it(tmp_path: Path) -> None:
    t = load(
        tmp_path,
        {
            T: "classes: [a]\nparameters:\n  d: null\n",
            C + "a.yml": "parameters:\n  base: {k: 1}\n  d: ${base}\n",
        },
    )
    assert params(t)["d"] is None


# --------------------------------------------------------------------------------------------
# Constants


def test_constant_cannot_be_overridden(tmp_path: Path) -> None:
    files = {T: "classes: [a]\nparameters:\n  x: 2\n", C + "a.yml": "parameters:\n  =x: 1\n"}
    assert error(tmp_path, files) == (
        f"{T}:3:3  $.x  cannot change a constant set at {C}a.yml:2:3; "
        "remove this value or the = marker there"
    )


def test_constant_keeps_its_value_and_loses_its_marker(tmp_path: Path) -> None:
    t = load(
        tmp_path,
        {
            T: "classes: [a]\nparameters:\n  d: {y: 2}\n",
            C + "a.yml": "parameters:\n  d:\n    =x: 1\n",
        },
    )
    assert params(t) == {"d": {"x": 1, "y": 2}}


def test_nested_constant_cannot_be_overridden(tmp_path: Path) -> None:
    files = {
        T: "classes: [a]\nparameters:\n  d:\n    x: 2\n",
        C + "a.yml": "parameters:\n  d:\n    =x: 1\n",
    }
    assert error(tmp_path, files) == (
        f"{T}:4:5  $.d.x  cannot change a constant set at {C}a.yml:3:5; "
        "remove this value or the = marker there"
    )


def test_constant_dict_cannot_be_merged_into(tmp_path: Path) -> None:
    files = {
        T: "classes: [a]\nparameters:\n  d: {y: 2}\n",
        C + "a.yml": "parameters:\n  =d: {x: 1}\n",
    }
    assert error(tmp_path, files) == (
        f"{T}:3:3  $.d  cannot change a constant set at {C}a.yml:2:3; "
        "remove this value or the = marker there"
    )


def test_constant_cannot_be_changed_by_a_later_class(tmp_path: Path) -> None:
    files = {
        T: "classes: [a, b]\n",
        C + "a.yml": "parameters:\n  =x: 1\n",
        C + "b.yml": "parameters:\n  x: 1\n",
    }
    assert error(tmp_path, files).startswith(
        f"{C}b.yml:2:3  $.x  cannot change a constant set at {C}a.yml:2:3"
    )


def test_constant_cannot_be_replaced_through_its_parent(tmp_path: Path) -> None:
    files = {
        T: "classes: [a]\nparameters:\n  ~d: {x: 2}\n",
        C + "a.yml": "parameters:\n  d: {=x: 1}\n",
    }
    assert error(tmp_path, files) == (
        f"{T}:3:3  $.d  cannot replace this value: it holds the constant $.d.x "
        f"set at {C}a.yml:2:7; merge into it instead, or remove the = marker there"
    )


def test_constant_cannot_be_nulled_through_its_parent(tmp_path: Path) -> None:
    files = {
        T: "classes: [a]\nparameters:\n  d: null\n",
        C + "a.yml": "parameters:\n  d: {=x: 1}\n",
    }
    assert error(tmp_path, files).startswith(
        f"{T}:3:3  $.d  cannot replace this value: it holds the constant $.d.x"
    )


def test_tilde_and_equals_together(tmp_path: Path) -> None:
    files = {
        T: "classes: [a]\nparameters:\n  d: {y: 2}\n",
        C + "a.yml": "parameters:\n  d: {x: 0}\n  ~=d: {x: 1}\n",
    }
    assert error(tmp_path, files).startswith(
        f"{T}:3:3  $.d  cannot change a constant set at {C}a.yml:3:3"
    )


def test_constant_inside_a_reference_merge_cannot_be_overridden(tmp_path: Path) -> None:
    files = {
        T: "classes: [a, b]\nparameters:\n  d: {x: 2}\n",
        C + "a.yml": "parameters:\n  base: {x: 0}\n  d: ${base}\n",
        C + "b.yml": "parameters:\n  d:\n    =x: 1\n",
    }
    assert error(tmp_path, files) == (
        f"{T}:3:7  $.d.x  cannot change a constant set at {C}b.yml:3:5; "
        "remove this value or the = marker there"
    )


def test_constant_cannot_be_overridden_by_a_referenced_dict(tmp_path: Path) -> None:
    files = {
        T: "classes: [a, b]\n",
        C + "a.yml": "parameters:\n  d: {=x: 1}\n",
        C + "b.yml": "parameters:\n  base:\n    x: 0\n  d: ${base}\n",
    }
    # located at the value that would have changed it: base.x, which came in through ${base}
    assert error(tmp_path, files).startswith(
        f"{C}b.yml:3:5  $.d.x  cannot change a constant set at {C}a.yml:2:7"
    )


def test_constant_set_inside_a_reference_merge_holds_its_value(tmp_path: Path) -> None:
    t = load(
        tmp_path,
        {
            T: "classes: [a, b]\nparameters:\n  d: {y: 2}\n",
            C + "a.yml": "parameters:\n  base: {x: 0}\n  d: ${base}\n",
            C + "b.yml": "parameters:\n  d: {=x: 1}\n",
        },
    )
    assert params(t)["d"] == {"x": 1, "y": 2}


# --------------------------------------------------------------------------------------------
# References


def test_reference_keeps_the_type_of_a_whole_value(tmp_path: Path) -> None:
    t = load(
        tmp_path,
        {
            T: "parameters:\n  a: {i: 1, b: true, n: null, l: [1], f: 1.5}\n"
            "  i: ${a:i}\n  b: ${a:b}\n  n: ${a:n}\n  l: ${a:l}\n  f: ${a:f}\n  d: ${a}\n"
        },
    )
    p = params(t)
    assert (p["i"], p["b"], p["n"], p["l"], p["f"], p["d"]) == (1, True, None, [1], 1.5, p["a"])


def test_referenced_value_is_a_copy(tmp_path: Path) -> None:
    t = load(tmp_path, {T: "parameters:\n  a: {l: [1]}\n  b: ${a}\n"})
    t.parameters["b"]["l"].append(2)
    assert t.parameters["a"] == {"l": [1]}


def test_reference_inside_string_to_int(tmp_path: Path) -> None:
    t = load(tmp_path, {T: "parameters:\n  port: 8080\n  url: 'http://db:${port}/x'\n"})
    assert params(t)["url"] == "http://db:8080/x"


def test_reference_inside_string_to_bool_and_float(tmp_path: Path) -> None:
    t = load(tmp_path, {T: "parameters:\n  'on': true\n  v: 1.5\n  s: '${on}/${v}'\n"})
    assert params(t)["s"] == "True/1.5"  # Python's rendering, as Kapitan (with a warning)
    assert len(t.warnings) == 1


def test_several_references_in_one_string(tmp_path: Path) -> None:
    t = load(tmp_path, {T: "parameters:\n  a: x\n  b: y\n  s: '${a}-${b}-${a}'\n"})
    assert params(t)["s"] == "x-y-x"


def test_reference_resolves_after_all_merging(tmp_path: Path) -> None:
    t = load(
        tmp_path,
        {
            T: "classes: [a]\nparameters:\n  name: site\n",
            C + "a.yml": (
                "parameters:\n  name: default\n  greeting: 'hello ${name}'\n  copy: ${name}\n"
            ),
        },
    )
    assert params(t) == {"name": "site", "greeting": "hello site", "copy": "site"}


def test_reference_to_a_list_sees_every_class_extension(tmp_path: Path) -> None:
    t = load(
        tmp_path,
        {
            T: "classes: [a]\nparameters:\n  l: [site]\n",
            C + "a.yml": "parameters:\n  l: [a]\n  m: ${l}\n",
        },
    )
    assert params(t) == {"l": ["a", "site"], "m": ["a", "site"]}


def test_reference_to_dict_then_merged_with_later_layer(tmp_path: Path) -> None:
    t = load(
        tmp_path,
        {
            T: "classes: [a, b]\nparameters:\n  d: {z: 3}\n",
            C + "a.yml": "parameters:\n  base: {x: 1}\n  d: ${base}\n",
            C + "b.yml": "parameters:\n  d: {y: 2}\n",
        },
    )
    assert params(t) == {"base": {"x": 1}, "d": {"x": 1, "y": 2, "z": 3}}


def test_reference_merged_over_dict(tmp_path: Path) -> None:
    t = load(
        tmp_path,
        {
            T: "classes: [a]\nparameters:\n  d: ${base}\n",
            C + "a.yml": "parameters:\n  base: {x: 1}\n  d: {x: 0, y: 2}\n",
        },
    )
    assert params(t)["d"] == {"x": 1, "y": 2}


def test_reference_to_list_then_extended(tmp_path: Path) -> None:
    t = load(
        tmp_path,
        {
            T: "classes: [a]\nparameters:\n  m: [site]\n",
            C + "a.yml": "parameters:\n  l: [a]\n  m: ${l}\n",
        },
    )
    assert params(t) == {"l": ["a"], "m": ["a", "site"]}


def test_scalar_replaces_a_reference(tmp_path: Path) -> None:
    t = load(
        tmp_path,
        {T: "classes: [a]\nparameters:\n  x: 2\n", C + "a.yml": "parameters:\n  y: 1\n  x: ${y}\n"},
    )
    assert params(t) == {"y": 1, "x": 2}


def test_reference_result_that_cannot_merge_is_an_error(tmp_path: Path) -> None:
    files = {
        T: "classes: [a]\nparameters:\n  d: [1]\n",
        C + "a.yml": "parameters:\n  base: {k: 1}\n  d: ${base}\n",
    }
    assert error(tmp_path, files) == (
        f"{T}:3:3  $.d  cannot merge a list over a mapping set at {C}a.yml:3:3 "
        "(after resolving references)"
    )


def test_reference_inside_a_layer_merged_over_a_reference(tmp_path: Path) -> None:
    t = load(
        tmp_path,
        {
            T: "classes: [a]\nparameters:\n  other: {y: 2}\n  d:\n    e: ${other}\n",
            C + "a.yml": "parameters:\n  base: {e: {x: 1}}\n  d: ${base}\n",
        },
    )
    assert params(t)["d"] == {"e": {"x": 1, "y": 2}}


def test_reference_merge_nested_inside_a_reference_merge(tmp_path: Path) -> None:
    t = load(
        tmp_path,
        {
            T: "classes: [a, b, c]\n",
            C + "a.yml": "parameters:\n  other: {y: 2}\n  d: {e: '${other}'}\n",
            C + "b.yml": "parameters:\n  d: {e: {z: 3}}\n",
            C + "c.yml": "parameters:\n  base: {e: {x: 1}}\n  d: ${base}\n",
        },
    )
    assert params(t)["d"] == {"e": {"y": 2, "z": 3, "x": 1}}


def test_reference_to_a_sibling_inside_a_reference_merge(tmp_path: Path) -> None:
    t = load(
        tmp_path,
        {
            T: "classes: [a]\nparameters:\n  d:\n    url: 'http://${d:host}'\n",
            C + "a.yml": "parameters:\n  base: {host: h}\n  d: ${base}\n",
        },
    )
    assert params(t)["d"] == {"host": "h", "url": "http://h"}


def test_nested_reference(tmp_path: Path) -> None:
    t = load(
        tmp_path,
        {
            T: "parameters:\n  env: prod\n  db: {prod: {host: p}, dev: {host: d}}\n"
            "  host: ${db:${env}:host}\n  url: 'pg://${db:${env}:host}/x'\n"
        },
    )
    assert (params(t)["host"], params(t)["url"]) == ("p", "pg://p/x")


def test_reference_chain(tmp_path: Path) -> None:
    t = load(tmp_path, {T: "parameters:\n  a: ${b}\n  b: '${c}!'\n  c: ${d:k}\n  d: {k: 1}\n"})
    assert params(t) == {"a": "1!", "b": "1!", "c": 1, "d": {"k": 1}}


def test_reference_to_list_item_by_index(tmp_path: Path) -> None:
    t = load(tmp_path, {T: "parameters:\n  l: [a, {k: v}]\n  x: ${l:0}\n  y: ${l:1:k}\n"})
    assert (params(t)["x"], params(t)["y"]) == ("a", "v")


def test_reference_inside_list_items(tmp_path: Path) -> None:
    t = load(tmp_path, {T: "parameters:\n  x: 1\n  y: {k: v}\n  l: [a, '${x}', '${y}', 'n${x}']\n"})
    assert params(t)["l"] == ["a", 1, {"k": "v"}, "n1"]


def test_reference_to_reclass_name(tmp_path: Path) -> None:
    assert (
        params(load(tmp_path, {T: "parameters:\n  n: 'site-${_reclass_:name:short}'\n"}))["n"]
        == "site-site"
    )


def test_escaped_reference_is_literal(tmp_path: Path) -> None:
    t = load(tmp_path, {T: "parameters:\n  x: 1\n  a: \\${x}\n  b: 'pre \\${x:y} ${x}'\n"})
    assert params(t) == {"x": 1, "a": "${x}", "b": "pre ${x:y} 1"}


def test_double_backslash_escapes_the_escape(tmp_path: Path) -> None:
    t = load(tmp_path, {T: "parameters:\n  colour: Blue\n  s: The colour is \\\\${colour}\n"})
    assert params(t)["s"] == "The colour is \\Blue"


def test_escaped_reference_stays_literal_when_referenced(tmp_path: Path) -> None:
    t = load(
        tmp_path,
        {
            T: "classes: [a]\nparameters:\n  b: {j: 2}\n",
            C
            + "a.yml": "parameters:\n  VAR: 'no'\n  a: {k: '\\${VAR}', s: '\\${VAR}'}\n  b: ${a}\n"
            "  c: ${a}\n  s: ${a:s}\n  t: 'x${a:s}'\n",
        },
    )
    literal = "${VAR}"
    assert params(t) == {
        "VAR": "no",
        "a": {"k": literal, "s": literal},
        "b": {"k": literal, "s": literal, "j": 2},
        "c": {"k": literal, "s": literal},
        "s": literal,
        "t": "x" + literal,
    }


def test_resolved_strings_are_plain_str(tmp_path: Path) -> None:
    t = load(
        tmp_path,
        {
            T: "classes: [a]\nparameters:\n  d: {y: '${n}'}\n",
            C + "a.yml": "parameters:\n  n: x\n  base: {x: '${n}!', l: ['${n}', '\\${n}']}\n"
            "  d: ${base}\n  e: 'a${n}'\n",
        },
    )

    def strings(value: Any) -> list[Any]:
        if isinstance(value, dict):
            return [s for v in value.values() for s in strings(v)]
        if isinstance(value, list):
            return [s for v in value for s in strings(v)]
        return [value] if isinstance(value, str) else []

    found = strings(t.parameters)
    assert "${n}" in found and "x!" in found
    assert {type(s) for s in found} == {str}


def test_escaped_reference_does_not_defer_a_merge(tmp_path: Path) -> None:
    files = {
        T: "classes: [a]\nparameters:\n  d: {k: 1}\n",
        C + "a.yml": "parameters:\n  d: \\${x}\n",
    }
    assert error(tmp_path, files).startswith(
        f"{T}:3:3  $.d  cannot merge a mapping over a str ('\\\\${{x}}')"
    )


def test_lone_braces_are_literal(tmp_path: Path) -> None:
    t = load(tmp_path, {T: "parameters:\n  a: '{x} $x } $'\n"})
    assert params(t)["a"] == "{x} $x } $"


def test_reference_to_missing_key(tmp_path: Path) -> None:
    files = {T: "parameters:\n  a: {b: 1}\n  c: ${a:x}\n"}
    assert error(tmp_path, files) == (
        f"{T}:3:3  $.c  cannot resolve reference ${{a:x}}: key 'x' not found in "
        "$.a (write \\${ for a literal ${)"
    )


def test_reference_to_missing_top_level_key_in_string(tmp_path: Path) -> None:
    files = {T: "parameters:\n  c: 'x ${nope}'\n"}
    assert error(tmp_path, files) == (
        f"{T}:2:3  $.c  cannot resolve reference ${{nope}}: key 'nope' not found "
        "in $ (write \\${ for a literal ${)"
    )


def test_reference_through_a_scalar(tmp_path: Path) -> None:
    files = {T: "parameters:\n  a: {b: 1}\n  c: ${a:b:z}\n"}
    assert error(tmp_path, files) == (
        f"{T}:3:3  $.c  cannot resolve reference ${{a:b:z}}: $.a.b is an int (1), "
        "not a mapping (write \\${ for a literal ${)"
    )


def test_reference_error_in_an_earlier_layer_points_at_that_layer(tmp_path: Path) -> None:
    files = {
        T: "classes: [a]\nparameters:\n  d: {x: 1}\n",
        C + "a.yml": "parameters:\n  d: ${missing}\n",
    }
    assert error(tmp_path, files).startswith(
        f"{C}a.yml:2:3  $.d  cannot resolve reference ${{missing}}"
    )


def test_reference_to_dict_inside_string_renders_as_python_with_a_warning(
    tmp_path: Path,
) -> None:
    t = load(tmp_path, {T: "parameters:\n  d: {a: 1}\n  n: null\n  x: 'v=${d} ${n}'\n"})
    assert params(t)["x"] == "v={'a': 1} None"
    assert [w.format() for w in t.warnings] == [
        f"{T}:4:3  $.x  reference ${{d}} is a mapping and is rendered into this string as "
        "\"{'a': 1}\", as Kapitan does; reference it as the whole value, or quote it in the "
        "source if a string is meant",
        f"{T}:4:3  $.x  reference ${{n}} is None and is rendered into this string as 'None', as "
        "Kapitan does; reference it as the whole value, or quote it in the source if a string "
        "is meant",
    ]


def test_unterminated_reference_is_located(tmp_path: Path) -> None:
    files = {T: "parameters:\n  x: '${a'\n"}
    assert (
        error(tmp_path, files)
        == f"{T}:2:3  $.x  unterminated reference in '${{a'; close it with '}}'"
    )


def test_empty_reference_is_an_error(tmp_path: Path) -> None:
    assert (
        error(tmp_path, {T: "parameters:\n  n: ${a::b}\n"})
        == f"{T}:2:3  $.n  empty key in reference ${{a::b}}"
    )


def test_reference_cycle_is_reported_with_the_chain(tmp_path: Path) -> None:
    files = {T: "parameters:\n  a: ${b}\n  b: 'x${c:k}'\n  c: {k: '${a}'}\n"}
    assert error(tmp_path, files) == f"{T}:2:3  $.a  reference cycle: $.a -> $.b -> $.c.k -> $.a"


def test_self_reference_is_a_cycle(tmp_path: Path) -> None:
    assert (
        error(tmp_path, {T: "parameters:\n  a: x${a}\n"})
        == f"{T}:2:3  $.a  reference cycle: $.a -> $.a"
    )


def test_reference_to_own_parent_is_a_cycle(tmp_path: Path) -> None:
    files = {T: "parameters:\n  d:\n    k: ${d}\n"}
    assert error(tmp_path, files) == f"{T}:2:3  $.d  reference cycle: $.d -> $.d.k -> $.d"


# --------------------------------------------------------------------------------------------
# Reading YAML


def test_duplicate_key_keeps_the_last_with_a_located_warning(tmp_path: Path) -> None:
    files = {T: "parameters:\n  d:\n    a: 1\n    b: 2\n    a: 3\n"}
    t = load(tmp_path, files)
    assert params(t) == {"d": {"a": 3, "b": 2}}
    assert [w.format() for w in t.warnings] == [
        f"{T}:5:5  $.parameters.d.a  duplicate key 'a' (also at line 3): Kapitan keeps this last "
        "value; remove the other one"
    ]


def test_duplicate_key_in_a_class_inside_a_list_is_an_error_when_strict(tmp_path: Path) -> None:
    files = {T: "classes: [a]\n", C + "a.yml": "parameters:\n  l:\n    - {n: 1, n: 2}\n"}
    write_tree(tmp_path, files)
    with pytest.raises(ProblemReport) as exc:
        Inventory(tmp_path, settings_for(tmp_path, strict=True)).target("site")
    assert str(exc.value).splitlines()[0] == (
        f"{C}a.yml:3:14  $.parameters.l[0].n  duplicate key 'n' (also at line 3): Kapitan keeps "
        "this last value; remove the other one"
    )


def test_malformed_yaml_is_located(tmp_path: Path) -> None:
    files = {T: "parameters:\n  a: [1, 2\n  b: 2\n"}
    assert error(tmp_path, files) == (
        f"{T}:3:4  invalid YAML: while parsing a flow sequence did not find expected ',' or ']'"
    )


def test_malformed_yaml_in_a_class_is_located(tmp_path: Path) -> None:
    files = {T: "classes: [a]\n", C + "a.yml": "parameters:\n  a: 'open\n"}
    assert error(tmp_path, files).startswith(
        f"{C}a.yml:3:1  invalid YAML: while scanning a quoted scalar"
    )


def test_timestamp_stays_string(tmp_path: Path) -> None:
    t = load(tmp_path, {T: "parameters:\n  day: 2024-01-01\n  at: 2024-01-01T10:00:00Z\n"})
    assert params(t) == {"day": "2024-01-01", "at": "2024-01-01T10:00:00Z"}


def test_yaml_1_1_scalars_as_kapitan_reads_them_with_warnings(tmp_path: Path) -> None:
    t = load(
        tmp_path,
        {
            T: "parameters:\n  yes_: yes\n  off_: off\n  v: 1.25\n  oct: 0o17\n  t: true\n"
            "  mode: 0550\n  q: '0550'\n  s: 1:30\n  d: 2024-01-31\n"
        },
    )
    assert params(t) == {
        "yes_": True,
        "off_": False,
        "v": 1.25,
        "oct": "0o17",
        "t": True,
        "mode": 360,
        "q": "0550",
        "s": 90,
        "d": "2024-01-31",
    }
    assert [(w.location.line if w.location else 0, w.path) for w in t.warnings] == [
        (2, "$.parameters.yes_"),
        (3, "$.parameters.off_"),
        (5, "$.parameters.oct"),
        (7, "$.parameters.mode"),
        (9, "$.parameters.s"),
        (10, "$.parameters.d"),
    ]
    assert t.warnings[3].message == (
        "0550 reads as the int 360 in YAML 1.1 (Kapitan's reading, which gen follows) but as the "
        "int 550 in YAML 1.2; quote it or write it so both agree"
    )


def test_integer_keys_become_strings_as_in_kapitan(tmp_path: Path) -> None:
    t = load(tmp_path, {T: "parameters:\n  ports: {80: http}\n  p: ${ports:80}\n"})
    assert params(t) == {"ports": {"80": "http"}, "p": "http"}


def test_boolean_key_is_an_error(tmp_path: Path) -> None:
    assert error(tmp_path, {T: "parameters:\n  on: x\n"}) == (
        f"{T}:2:3  $.parameters  mapping key 'on' is read as the boolean true by YAML 1.1 (as "
        "Kapitan reads it), not as a string; quote it: 'on'"
    )


def test_unknown_top_level_key_is_a_warning(tmp_path: Path) -> None:
    t = load(tmp_path, {T: "params: {}\n"})
    assert [w.format() for w in t.warnings] == [
        f"{T}:1:1  unknown top-level key 'params' is ignored (as reclass does); expected one of "
        "applications, classes, environment, exports, parameters"
    ]


def test_unknown_top_level_key_is_an_error_when_strict(tmp_path: Path) -> None:
    write_tree(tmp_path, {T: "params: {}\n"})
    with pytest.raises(ProblemReport) as exc:
        Inventory(tmp_path, settings_for(tmp_path, strict=True)).target("site")
    assert str(exc.value).splitlines()[0] == (
        f"{T}:1:1  unknown top-level key 'params' is ignored (as reclass does); expected one of "
        "applications, classes, environment, exports, parameters"
    )


def test_classes_must_be_a_list_of_names(tmp_path: Path) -> None:
    assert (
        error(tmp_path, {T: "classes: a\n"})
        == f"{T}:1:1  $.classes  classes: must be a list of class names"
    )


def test_parameters_must_be_a_mapping(tmp_path: Path) -> None:
    files = {T: "classes: [a]\n", C + "a.yml": "parameters: [1]\n"}
    assert error(tmp_path, files) == f"{C}a.yml:1:1  $.parameters  parameters: must be a mapping"


def test_target_must_be_a_mapping(tmp_path: Path) -> None:
    assert error(tmp_path, {T: "- a\n"}) == (
        f"{T}:1:1  a class or target must be a mapping with classes: and parameters:"
    )


# --------------------------------------------------------------------------------------------
# Locations


def test_location_points_at_the_file_that_set_the_value(tmp_path: Path) -> None:
    t = load(
        tmp_path,
        {
            T: (
                "classes: [a, b]\nparameters:\n  l: [site]\n  s: 3\n"
                "  copy: ${d}\n  lcopy: ${l}\n  text: 'x${s}'\n"
            ),
            C + "a.yml": "parameters:\n  l:\n    - a\n  d:\n    k: 1\n  s: 1\n",
            C + "b.yml": "parameters:\n  l: [b]\n  d:\n    j: 2\n",
        },
    )
    a, b = C + "a.yml", C + "b.yml"
    # a scalar: the last layer that set it
    assert t.location(("s",)) == loc(T, 4, 3)
    # list items extended from several classes: each item where it was written
    assert [t.location(("l", i)) for i in range(3)] == [loc(a, 3, 7), loc(b, 2, 7), loc(T, 3, 7)]
    # merged dict: each key where it was written, the dict itself at its last layer
    assert (t.location(("d",)), t.location(("d", "k")), t.location(("d", "j"))) == (
        loc(b, 3, 3),
        loc(a, 5, 5),
        loc(b, 4, 5),
    )
    # values that came through a reference: the reference, and inside it where each part was written
    assert (t.location(("copy",)), t.location(("copy", "k")), t.location(("copy", "j"))) == (
        loc(T, 5, 3),
        loc(a, 5, 5),
        loc(b, 4, 5),
    )
    assert [t.location(("lcopy", i)) for i in range(3)] == [
        loc(a, 3, 7),
        loc(b, 2, 7),
        loc(T, 3, 7),
    ]
    # an interpolated string: where the string was written
    assert t.location(("text",)) == loc(T, 7, 3)


def test_location_of_unknown_path_is_the_nearest_ancestor(tmp_path: Path) -> None:
    t = load(tmp_path, {T: "parameters:\n  d:\n    k: 1\n"})
    assert t.location(("d", "k", "deeper")) == loc(T, 3, 5)
    assert t.location(("nope",)) == loc(T, 1, 1)


def test_location_after_a_reference_merge_points_at_each_layer(tmp_path: Path) -> None:
    t = load(
        tmp_path,
        {
            T: "classes: [a]\nparameters:\n  d:\n    z: 3\n    l: [t]\n",
            C + "a.yml": "parameters:\n  base:\n    x: 1\n    l: [a]\n  d: ${base}\n",
        },
    )
    a = C + "a.yml"
    assert params(t)["d"] == {"x": 1, "l": ["a", "t"], "z": 3}
    assert (t.location(("d",)), t.location(("d", "x")), t.location(("d", "z"))) == (
        loc(T, 3, 3),
        loc(a, 3, 5),
        loc(T, 4, 5),
    )
    assert (t.location(("d", "l", 0)), t.location(("d", "l", 1))) == (loc(a, 4, 9), loc(T, 5, 9))


def test_location_of_tilde_replaced_value(tmp_path: Path) -> None:
    t = load(
        tmp_path,
        {
            T: "classes: [a]\nparameters:\n  ~d:\n    y: 2\n",
            C + "a.yml": "parameters:\n  d: {x: 1}\n",
        },
    )
    assert (t.location(("d",)), t.location(("d", "y")), t.location(("d", "x"))) == (
        loc(T, 3, 3),
        loc(T, 4, 5),
        loc(T, 3, 3),
    )


def test_location_of_reference_to_list_item(tmp_path: Path) -> None:
    t = load(tmp_path, {T: "parameters:\n  l:\n    - {k: 1}\n  x: ${l:0}\n"})
    assert (t.location(("x",)), t.location(("x", "k"))) == (loc(T, 4, 3), loc(T, 3, 8))


# --------------------------------------------------------------------------------------------
# Inputs and probes (what a cache must watch)


def test_inputs_are_the_target_then_classes_as_read_then_config(tmp_path: Path) -> None:
    t = load(
        tmp_path,
        {
            T: "classes: [svc.web, common]\n",
            C + "svc/web/init.yml": "classes: [.db, common]\n",
            C + "svc/db.yml": "",
            C + "common.yaml": "",
            "inventory/reclass-config.yml": "ignore_class_notfound: false\n",
        },
    )
    assert t.inputs == (
        T,
        C + "svc/web/init.yml",
        C + "svc/db.yml",
        C + "common.yaml",
        "inventory/reclass-config.yml",
    )
    assert t.classes == ("svc.db", "common", "svc.web")


def test_probes_are_the_candidate_files_not_found(tmp_path: Path) -> None:
    t = load(tmp_path, {T: "classes: [a.b]\n", C + "a/b.yml": ""})
    assert t.inputs == (T, C + "a/b.yml")
    assert t.probes == (
        C + "a/b.yaml",
        C + "a/b/init.yml",
        C + "a/b/init.yaml",
        C + "a.b.yml",
        C + "a.b.yaml",
        C + "a.b/init.yml",
        C + "a.b/init.yaml",
        "inventory/reclass-config.yml",
    )


def test_probes_include_every_candidate_of_an_ignored_class(tmp_path: Path) -> None:
    t = load(
        tmp_path,
        {T: "classes: [x]\n", "inventory/reclass-config.yml": "ignore_class_notfound: true\n"},
    )
    assert t.inputs == (T, "inventory/reclass-config.yml")
    assert t.probes == (C + "x.yml", C + "x.yaml", C + "x/init.yml", C + "x/init.yaml")


def test_inputs_list_a_diamond_class_once(tmp_path: Path) -> None:
    t = load(
        tmp_path,
        {
            T: "classes: [b, c]\n",
            C + "base.yml": "",
            C + "b.yml": "classes: [base]\n",
            C + "c.yml": "classes: [base]\n",
        },
    )
    assert t.inputs == (T, C + "b.yml", C + "base.yml", C + "c.yml")


def test_each_file_is_parsed_once_per_inventory(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            "inventory/targets/x.yml": "classes: [a]\n",
            "inventory/targets/y.yml": "classes: [a]\n",
            C + "a.yml": "parameters: {l: [a]}\n",
        },
    )
    inv = Inventory(tmp_path)
    x, y = inv.target("x"), inv.target("y")
    assert inv.document(tmp_path / C / "a.yml") is inv.document(tmp_path / C / "a.yml")
    # merging one target does not leak into the shared parsed class
    assert params(x) == params(y) == {"l": ["a"]}


# --------------------------------------------------------------------------------------------
# Kapitan compatibility (issue #12): located where values come from, refusals located


def test_merge_key_values_are_located_where_the_anchor_wrote_them(tmp_path: Path) -> None:
    t = load(
        tmp_path,
        {T: "parameters:\n  base: &b\n    image: nginx\n  svc:\n    <<: *b\n    port: 80\n"},
    )
    assert params(t)["svc"] == {"image": "nginx", "port": 80}
    assert t.location(("svc", "image")) == loc(T, 3, 5)
    assert t.location(("svc", "port")) == loc(T, 6, 5)


def test_merge_key_over_a_scalar_is_located(tmp_path: Path) -> None:
    assert error(tmp_path, {T: "parameters:\n  a: &x 1\n  b:\n    <<: *x\n"}) == (
        f"{T}:2:6  $.parameters.b  a merge key << takes a mapping (<<: *anchor) or a list of them"
    )


def test_class_name_with_an_unresolvable_reference_is_located(tmp_path: Path) -> None:
    files = {T: "classes:\n  - site.${nowhere}\n"}
    assert error(tmp_path, files) == (
        f"{T}:2:5  cannot resolve the class name 'site.${{nowhere}}' from the parameters of the "
        "classes before it: cannot resolve reference ${nowhere}: key 'nowhere' not found in $ "
        "(write \\${ for a literal ${)"
    )


def test_class_mappings_apply_before_the_targets_classes(tmp_path: Path) -> None:
    t = load(
        tmp_path,
        {
            "inventory/reclass-config.yml": (
                "class_mappings:\n  - 'si* base'\n  - '/(s)ite/ x.\\\\1'\n"
            ),
            T: "classes: [own]\n",
            C + "base.yml": "parameters:\n  l: [base]\n",
            C + "x/s.yml": "parameters:\n  l: [x.s]\n",
            C + "own.yml": "parameters:\n  l: [own]\n",
        },
    )
    assert t.classes == ("base", "x.s", "own")
    assert params(t) == {"l": ["base", "x.s", "own"]}


def test_config_value_gen_does_not_support_is_located(tmp_path: Path) -> None:
    write_tree(tmp_path, {"inventory/reclass-config.yml": "a: 1\nnodes_uri: nodes\n"})
    with pytest.raises(ProblemReport) as exc:
        settings_for(tmp_path)
    assert str(exc.value).startswith("inventory/reclass-config.yml:1:1  unknown key 'a' in ")
    write_tree(tmp_path, {"inventory/reclass-config.yml": "nodes_uri: nodes\n"})
    with pytest.raises(ProblemReport) as exc:
        settings_for(tmp_path)
    assert str(exc.value) == (
        "inventory/reclass-config.yml:1:1  nodes_uri: 'nodes' is not supported by gen (only "
        "'targets', the default): remove the key or set it to the default"
    )


def test_inventory_query_inside_a_string_is_refused_with_its_location(tmp_path: Path) -> None:
    assert error(tmp_path, {T: "parameters:\n  a:\n    - x $[ exports:x ]\n"}) == (
        f"{T}:3:7  $.a[0]  inventory query $[ exports:x ] inside a string: Kapitan (reclass) "
        "fails on it; make the query the whole value and reference that"
    )


def test_inventory_query_reads_every_targets_exports(tmp_path: Path) -> None:
    files = {
        T: "parameters:\n  n: 1\n  all: $[ exports:n ]\n  mine: $[ if exports:n == self:n ]\n"
        "exports:\n  n: ${n}\n",
        "inventory/targets/other.yml": "parameters:\n  n: 2\nexports:\n  n: ${n}\n",
    }
    t = load(tmp_path, files)
    assert params(t) == {"n": 1, "all": {"other": 2, "site": 1}, "mine": ["site"]}


def test_unsupported_inventory_query_is_located(tmp_path: Path) -> None:
    assert error(tmp_path, {T: "parameters:\n  a: $[ if self:x == 1 ]\n"}) == (
        f"{T}:2:3  $.a  inventory query $[ if self:x == 1 ]: 'self:x' is not an exported path "
        "(exports:<key>:...)"
    )


def test_inventory_query_in_exports_is_refused(tmp_path: Path) -> None:
    files = {T: "parameters:\n  a: $[ exports:b ]\nexports:\n  b: $[ exports:c ]\n"}
    assert error(tmp_path, files).startswith(
        f"{T}:4:3  $.exports.b  inventory query $[ exports:c ] here: gen evaluates queries in "
        "parameters only"
    )


def test_escaped_inventory_query_is_literal(tmp_path: Path) -> None:
    assert params(load(tmp_path, {T: "parameters:\n  a: '\\$[ x ]'\n"})) == {"a": "$[ x ]"}


def test_overwritten_unresolvable_reference_is_ignored(tmp_path: Path) -> None:
    files = {
        T: "classes: [a]\nparameters:\n  v: 1\n",
        C + "a.yml": "parameters:\n  v: ${missing}\n",
    }
    assert params(load(tmp_path, files)) == {"v": 1}


def test_unresolvable_reference_not_overwritten_is_still_an_error(tmp_path: Path) -> None:
    files = {T: "classes: [a]\n", C + "a.yml": "parameters:\n  v: ${missing}\n"}
    assert error(tmp_path, files).startswith(
        f"{C}a.yml:2:3  $.v  cannot resolve reference ${{missing}}"
    )


def test_tabs_in_strings_with_references_become_spaces(tmp_path: Path) -> None:
    t = load(tmp_path, {T: 'parameters:\n  n: x\n  s: "a\\t${n}"\n  p: "a\\tb"\n'})
    assert params(t) == {"n": "x", "s": "a       x", "p": "a\tb"}


def test_hidden_folders_hold_no_classes_as_in_reclass(tmp_path: Path) -> None:
    files = {T: "classes: [a]\n", C + "a.yml": "", C + ".git/a.yml": "", C + ".old/b.yml": ""}
    write_tree(tmp_path, files)
    inv = Inventory(tmp_path, settings_for(tmp_path))
    assert list(inv.class_files()) == ["a"]
