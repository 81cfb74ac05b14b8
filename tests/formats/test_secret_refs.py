"""``?{age:<path>}`` references: what they may look like and which file of which site they name."""

from __future__ import annotations

import re
from typing import Any

import pytest

from generator.formats import secret_refs as refs


def test_a_whole_value_reference_names_a_file_of_its_own_site() -> None:
    ref = refs.parse("?{age:redis/password}")
    assert ref.path == "redis/password" and str(ref) == "?{age:redis/password}"
    assert ref.file("cn-east-1") == "secrets/cn-east-1/redis/password.age"
    assert ref.file("cn-north-2") == "secrets/cn-north-2/redis/password.age"


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("", "empty secret path"),
        ("/etc/shadow", "must be relative"),
        ("../cn-north-2/redis/password", "'..'"),
        ("redis/../../cn-north-2/x", "'..'"),
        ("redis//password", "empty"),
        ("./redis", "'.'"),
        ("redis/password.age", "leave out the .age"),
        ("redis/.hidden", "not starting with '.'"),
        ("redis pass", "letters, digits"),
    ],
)
def test_paths_are_relative_without_dot_dot_or_odd_characters(path: str, why: str) -> None:
    with pytest.raises(refs.RefError, match=re.escape(why)):
        refs.parse(f"?{{age:{path}}}")


def test_a_reference_inside_a_longer_string_is_refused() -> None:
    with pytest.raises(refs.RefError, match="must be the whole value"):
        refs.parse("redis://:?{age:redis/password}@redis:6379")


def test_other_backends_are_refused_by_name() -> None:
    with pytest.raises(refs.RefError, match="unknown secret backend 'gpg'"):
        refs.parse("?{gpg:redis/password}")


def test_find_reports_every_reference_like_string_with_its_key_path() -> None:
    params = {
        "site": {"registry_auth": {"password": "?{age:registry/password}"}},
        "services": {"a": {"env": {"X": "plain", "Y": "?{age:y}"}, "args": ["--pw=?{age:z}"]}},
        "free": "${not:a:secret}",
    }
    assert list(refs.find(params)) == [
        (("site", "registry_auth", "password"), "?{age:registry/password}"),
        (("services", "a", "env", "Y"), "?{age:y}"),
        (("services", "a", "args", 0), "--pw=?{age:z}"),
    ]


def test_path_of_inverts_file_for_only_inside_the_sites_directory() -> None:
    assert refs.path_of("s", refs.file_for("s", "a/b")) == "a/b"
    assert refs.path_of("s", "secrets/other/a.age") is None
    assert refs.path_of("s", "secrets/s/a.txt") is None


def test_find_skips_a_tree_without_references_and_still_finds_one_deep_down() -> None:
    assert list(refs.find({"a": [{"b": "plain ?{ text"}], "c": 1})) == []
    deep = {"a": [1, {"b": ["x", "?{age:db/password}"]}], "c": None}
    assert list(refs.find(deep)) == [(("a", 1, "b", 1), "?{age:db/password}")]


def test_find_walks_a_tree_json_cannot_hold() -> None:
    odd = {(1, 2): "?{age:x}", "s": {"?{age:y}"}, "l": ("?{age:z}",)}
    # A tuple key and a set are no JSON; the walk decides (and, as before, enters dicts and
    # lists only).
    found: list[Any] = list(refs.find(odd))
    assert found == [(((1, 2),), "?{age:x}")]
