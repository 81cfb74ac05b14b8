"""generator.core.yamlio: canonical dump that YAML 1.1 and 1.2 readers agree on; strict loader."""

from __future__ import annotations

import collections
import datetime
import enum
import io
import math
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from generator.core import yamlio
from generator.core.errors import GenError, ProblemReport
from generator.core.location import Location

# --------------------------------------------------------------------------------------------------
# Readers the output must satisfy
# --------------------------------------------------------------------------------------------------


def _ruamel_load(text: str, typ: str = "safe") -> Any:
    return YAML(typ=typ, pure=True).load(io.StringIO(text))


READERS: dict[str, Callable[[str], Any]] = {
    "ruamel-1.2": _ruamel_load,
    "ruamel-1.2-roundtrip": lambda text: _ruamel_load(text, "rt"),
    "pyyaml-1.1": yaml.safe_load,
    "libyaml-1.1": lambda text: yaml.load(text, Loader=yaml.CSafeLoader),
}


def _assert_reads_back(obj: Any, text: str) -> None:
    for name, load in READERS.items():
        assert load(text) == obj, f"{name} misread:\n{text}"


# --------------------------------------------------------------------------------------------------
# Property tests
# --------------------------------------------------------------------------------------------------

NASTY = [
    "yes",
    "NO",
    "y",
    "Y",
    "n",
    "On",
    "off",
    "True",
    "FALSE",
    "null",
    "Null",
    "~",
    "",
    "1e3",
    "1E3",
    "0x1F",
    "0o17",
    "0b101",
    "017",
    "1_000",
    "12:30",
    "190:20:30.15",
    ".5",
    "+1",
    "-1",
    "5.",
    "1.2.3",
    ".",
    "..",
    ".inf",
    "-.Inf",
    "+.inf",
    ".NaN",
    "inf",
    "-inf",
    "+Infinity",
    "nan",
    "2024-01-01",
    "2001-12-14t21:59:43.10-05:00",
    "2001-12-14 21:59:43.10 -5",
    "-_",
    "+_",
    "._",
    "-__1",
    "_",
    "=",
    "<<",
    "-",
    "--",
    "---",
    "--- a",
    "...",
    "- a",
    "-a",
    "? a",
    "?",
    ":",
    "a:",
    "a: b",
    "a:b",
    "#x",
    "a #b",
    "a#b",
    " lead",
    "trail ",
    "a  b",
    "!tag",
    "&a",
    "*a",
    "|",
    ">",
    "'",
    '"',
    "%x",
    "@x",
    "`x",
    "{}",
    "[]",
    "{a: 1}",
    "a, b",
    ",",
    "a\tb",
    "\t",
    "\n",
    "\n\n",
    "a\n",
    "a\n\n",
    "\na",
    "a\n b",
    " a\nb",
    "a\n b\n",
    "a \nb",
    "a\n\tb",
    "\ta\nb",
    "a\r\nb",
    "#c\n- x\n",
    "a\n---\nb",
    "a\n...\n",
    "\x00",
    "\x07",
    "\x1b",
    "\x7f",
    "\x85",
    "\xa0",
    "\u2028",
    "\u2029",
    "\ufeff",
    "\ufffe",
    "é",
    "日本語",
    "😀",
    "a\x85b\nc",
    "nginx:1.25",
    "100m",
    "--port=80",
]
FRAGMENTS = st.sampled_from([*NASTY, "a", "0", " ", ":", "-", "#", "\n", ".", "e", "x"])
STRINGS = st.one_of(
    st.sampled_from(NASTY),
    st.lists(FRAGMENTS, max_size=4).map("".join),
    st.text(alphabet=" \n\t\r-:#?!&*|>'\"%@`,[]{}~=<._/01abeEoxyn\x85\u2028é😀", max_size=12),
    st.text(max_size=20),
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    STRINGS,
)
JSON = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(STRINGS, children, max_size=4)
    ),
    max_leaves=24,
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(JSON)
def test_dump_reads_back_equal_under_yaml_1_1_and_1_2(obj: Any) -> None:
    _assert_reads_back(obj, yamlio.dump(obj))


@settings(max_examples=200, deadline=None)
@given(STRINGS)
def test_every_string_reads_back_as_key_value_and_item(s: str) -> None:
    for obj in ({s: s}, [s], {"k": [s, {s: [s]}]}, s):
        _assert_reads_back(obj, yamlio.dump(obj))


@settings(max_examples=150, deadline=None)
@given(st.lists(JSON, max_size=4))
def test_dump_all_reads_back_as_a_stream(objs: list[Any]) -> None:
    text = yamlio.dump_all(objs)
    assert list(yaml.safe_load_all(text)) == objs
    assert list(YAML(typ="safe", pure=True).load_all(io.StringIO(text))) == objs


@settings(max_examples=150, deadline=None)
@given(JSON)
def test_dump_is_deterministic(obj: Any) -> None:
    first = yamlio.dump(obj)
    assert yamlio.dump(obj) == first
    yamlio._flat.cache_clear()
    yamlio._key.cache_clear()
    assert yamlio.dump(obj) == first


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(STRINGS, JSON, min_size=1, max_size=4))
def test_load_rendered_reads_dump_output(obj: dict[str, Any]) -> None:
    assert yamlio.load_rendered(yamlio.dump(obj), "x.yaml") == [obj]


# --------------------------------------------------------------------------------------------------
# dump: examples
# --------------------------------------------------------------------------------------------------


def test_dump_small_kubernetes_object_exactly() -> None:
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "labels": {"app.kubernetes.io/name": "web", "tier": "on"},
            "annotations": {"prometheus.io/scrape": "true", "note": "a: b"},
        },
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app.kubernetes.io/name": "web"}},
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "web",
                            "image": "registry.local/web:1.25",
                            "args": ["--port=8080", "-v"],
                            "env": [
                                {"name": "RATIO", "value": "0.5"},
                                {"name": "EMPTY", "value": ""},
                            ],
                            "ports": [{"containerPort": 8080}],
                            "resources": {"limits": {"cpu": "500m", "memory": "1Gi"}},
                            "volumeMounts": [],
                        }
                    ],
                    "nodeSelector": {},
                    "hostNetwork": False,
                    "priority": None,
                }
            },
        },
    }
    assert (
        yamlio.dump(deployment)
        == """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels:
    app.kubernetes.io/name: web
    tier: "on"
  annotations:
    prometheus.io/scrape: "true"
    note: "a: b"
spec:
  replicas: 2
  selector:
    matchLabels:
      app.kubernetes.io/name: web
  template:
    spec:
      containers:
      - name: web
        image: registry.local/web:1.25
        args:
        - --port=8080
        - -v
        env:
        - name: RATIO
          value: "0.5"
        - name: EMPTY
          value: ""
        ports:
        - containerPort: 8080
        resources:
          limits:
            cpu: 500m
            memory: 1Gi
        volumeMounts: []
      nodeSelector: {}
      hostNetwork: false
      priority: null
"""
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("a\nb", "k: |-\n  a\n  b\n"),
        ("a\nb\n", "k: |\n  a\n  b\n"),
        ("a\nb\n\n", "k: |+\n  a\n  b\n\n"),
        ("a\n\nb\n", "k: |\n  a\n\n  b\n"),
        (" a\nb", "k: |2-\n   a\n  b\n"),
        ("\na\n", "k: |2\n\n  a\n"),
        ("a\n  b\tc\n", "k: |\n  a\n    b\tc\n"),
        ("#!/bin/sh\nexec app --flag: x\n", "k: |\n  #!/bin/sh\n  exec app --flag: x\n"),
        # not literal-safe: double-quoted on one line
        ("a \nb", 'k: "a \\nb"\n'),
        ("a\n\tb", 'k: "a\\n\\tb"\n'),
        ("a\r\nb", 'k: "a\\r\\nb"\n'),
        ("a\x85b\nc", 'k: "a\\u0085b\\nc"\n'),
        ("\n", 'k: "\\n"\n'),
        ("\n\n", 'k: "\\n\\n"\n'),
    ],
)
def test_multiline_string_style(value: str, expected: str) -> None:
    assert yamlio.dump({"k": value}) == expected
    _assert_reads_back({"k": value}, expected)


def test_literal_blocks_indent_from_their_collection() -> None:
    obj = {"a": [" x\ny", [" x\ny"], {"b": " x\ny"}]}
    text = yamlio.dump(obj)
    assert text == ("a:\n- |2-\n   x\n  y\n- - |2-\n     x\n    y\n- b: |2-\n     x\n    y\n")
    _assert_reads_back(obj, text)


PLAIN = [
    "web",
    "_",
    "nginx:1.25",
    "app.kubernetes.io/name",
    "100m",
    "10Gi",
    "--port=80",
    "--",
    "-a",
    "-Xmx512m",
    "hello world",
    "a  b",
    "a, b",
    "http://host:8080/path",
    "/var/lib/data",
    "a:b",
    "x-1.2",
]


@pytest.mark.parametrize("s", PLAIN)
def test_ordinary_strings_stay_plain(s: str) -> None:
    assert yamlio.dump(s) == f"{s}\n"
    assert yamlio.dump({s: s}) == f"{s}: {s}\n"


@pytest.mark.parametrize("s", [s for s in NASTY if "\n" not in s and s not in PLAIN])
def test_ambiguous_strings_are_quoted(s: str) -> None:
    text = yamlio.dump({s: s})
    assert text.startswith('"'), text
    _assert_reads_back({s: s}, text)


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (None, "null\n"),
        (True, "true\n"),
        (0, "0\n"),
        (-12, "-12\n"),
        (1.5, "1.5\n"),
        (1e16, "1.0e+16\n"),
        (1e-05, "1.0e-05\n"),
        (-0.0, "-0.0\n"),
        (float("inf"), ".inf\n"),
        (float("-inf"), "-.inf\n"),
        (float("nan"), ".nan\n"),
        ({}, "{}\n"),
        ([], "[]\n"),
        ("", '""\n'),
        ("a\nb", '"a\\nb"\n'),
        ("😀\x00\ud800", '"😀\\u0000\\ud800"\n'),
        ([[], {}, [[]]], "- []\n- {}\n- - []\n"),
    ],
)
def test_scalars_and_empty_collections(obj: Any, expected: str) -> None:
    assert yamlio.dump(obj) == expected


def test_nan_reads_back_as_nan() -> None:
    for load in READERS.values():
        assert math.isnan(load(yamlio.dump({"x": float("nan")}))["x"])


def test_key_order_is_kept() -> None:
    assert yamlio.dump({"b": 1, "a": 2}) == "b: 1\na: 2\n"


def test_dump_all_separates_documents() -> None:
    assert yamlio.dump_all([{"a": 1}, "x", []]) == "a: 1\n---\nx\n---\n[]\n"
    assert yamlio.dump_all([]) == ""
    assert yamlio.dump_all(iter([{"a": 1}])) == "a: 1\n"


def test_overlong_keys_use_explicit_key_syntax() -> None:
    long_key = "k" * 1100
    wide_key = "é" * 600  # short in characters, long in UTF-8 bytes (what libyaml counts)
    obj = {long_key: {"a": [1, " x\ny"]}, wide_key: ["a"], "z" * 2000: "v", "short": 1}
    text = yamlio.dump(obj)
    assert f"? {long_key}\n:\n  a:\n" in text
    _assert_reads_back(obj, text)
    assert yamlio.load_rendered(text, "x") == [obj]


class Color(enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


class Mode(str, enum.Enum):
    FAST = "yes"


def test_subclasses_are_written_as_their_base_type() -> None:
    obj = collections.OrderedDict([("level", Level.HIGH), ("mode", Mode.FAST), ("l", [Mode.FAST])])
    assert yamlio.dump(obj) == 'level: 3\nmode: "yes"\nl:\n- "yes"\n'
    assert yamlio.dump({Mode.FAST: 1}) == '"yes": 1\n'


@pytest.mark.parametrize(
    ("obj", "type_name"),
    [
        ({"a": (1, 2)}, "tuple"),
        ([{1, 2}], "set"),
        ({"a": Color.RED}, "Color"),
        (b"bytes", "bytes"),
        ({"when": datetime.date(2024, 1, 1)}, "date"),
        ({1: "a"}, "int"),
        ({None: "a"}, "NoneType"),
    ],
)
def test_other_types_are_rejected_by_name(obj: Any, type_name: str) -> None:
    with pytest.raises(TypeError, match=rf"\b{type_name}\b"):
        yamlio.dump(obj)


def _statefulset() -> dict[str, Any]:
    labels = {"app.kubernetes.io/name": "gatekeeper", "app.kubernetes.io/instance": "prod"}
    container = {
        "name": "gatekeeper",
        "image": "registry.local/gatekeeper:1.4.2",
        "imagePullPolicy": "IfNotPresent",
        "args": ["--port=8443", "--log-level=info", "--config=/etc/gatekeeper/config.yaml"],
        "ports": [
            {"name": "https", "containerPort": 8443, "protocol": "TCP"},
            {"name": "metrics", "containerPort": 9090, "protocol": "TCP"},
        ],
        "env": [
            {"name": "JAVA_OPTS", "value": "-Xmx512m -Xms256m"},
            {"name": "ENABLED", "value": "yes"},
            {"name": "RATIO", "value": "0.75"},
        ],
        "resources": {
            "requests": {"cpu": "100m", "memory": "256Mi"},
            "limits": {"cpu": "1", "memory": "512Mi"},
        },
        "volumeMounts": [
            {"name": "config", "mountPath": "/etc/gatekeeper", "readOnly": True},
            {"name": "data", "mountPath": "/var/lib/gatekeeper"},
        ],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "gatekeeper", "namespace": "platform", "labels": labels},
        "spec": {
            "replicas": 3,
            "serviceName": "gatekeeper",
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"serviceAccountName": "gatekeeper", "containers": [container]},
            },
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "data"},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "10Gi"}},
                    },
                }
            ],
        },
    }


# --------------------------------------------------------------------------------------------------
# load_rendered
# --------------------------------------------------------------------------------------------------

LOADERS = pytest.mark.parametrize(
    "loader", [yamlio._Loader, yamlio._PyLoader], ids=["libyaml", "pure"]
)


@LOADERS
def test_load_returns_non_empty_documents(loader: Any) -> None:
    text = "---\n---\na: 1\n---\n# only a comment\n...\n---\nb: [x, 2]\n"
    assert yamlio._load(loader, text, "t.yaml") == [{"a": 1}, {"b": ["x", 2]}]
    assert yamlio._load(loader, "", "t.yaml") == []


@LOADERS
def test_duplicate_key_is_a_located_error(loader: Any) -> None:
    text = "kind: ConfigMap\ndata:\n  a: 1\n  b: 2\n  a: 3\n"
    with pytest.raises(ProblemReport) as info:
        yamlio._load(loader, text, "out/cm.yaml")
    [problem] = info.value.problems
    assert problem.location == Location("out/cm.yaml", 5, 3)
    assert (
        str(info.value) == "out/cm.yaml:5:3  duplicate key 'a' in mapping (first defined at line 3)"
    )


@LOADERS
def test_duplicate_key_lines_count_across_documents(loader: Any) -> None:
    with pytest.raises(ProblemReport) as info:
        yamlio._load(loader, "x: 1\n---\nx: 2\ny: 3\nx: 4\n", "s.yaml")
    assert info.value.problems[0].location == Location("s.yaml", 5, 1)


@LOADERS
def test_merge_keys_may_be_overridden(loader: Any) -> None:
    text = "base: &b {x: 1, y: 2}\nd:\n  <<: *b\n  x: 3\n"
    assert yamlio._load(loader, text, "t.yaml") == [
        {"base": {"x": 1, "y": 2}, "d": {"x": 3, "y": 2}}
    ]


@LOADERS
def test_syntax_error_is_located_and_quotes_the_line(loader: Any) -> None:
    with pytest.raises(GenError) as info:
        yamlio._load(loader, "a: b\nc: d: e\n", "out/x.yaml")
    assert isinstance(info.value, ProblemReport)
    [problem] = info.value.problems
    assert problem.location == Location("out/x.yaml", 2, 5)
    assert problem.message.startswith("invalid YAML: mapping values are not allowed")
    assert problem.message.endswith("; line 2: 'c: d: e'")


@LOADERS
def test_tab_indentation_error_shows_the_tab(loader: Any) -> None:
    with pytest.raises(ProblemReport) as info:
        yamlio._load(loader, "a:\n\tb: 1\n", "t.yaml")
    assert info.value.problems[0].location == Location("t.yaml", 2, 1)
    assert "'\\tb: 1'" in str(info.value)


@LOADERS
def test_unprintable_character_is_located_after_multibyte_text(loader: Any) -> None:
    with pytest.raises(ProblemReport) as info:
        yamlio._load(loader, "a: 1\nb: é😀\x01\n", "t.yaml")
    [problem] = info.value.problems
    assert problem.location == Location("t.yaml", 2, 6)
    assert "#x0001" in problem.message


@LOADERS
def test_lone_surrogate_is_a_located_error(loader: Any) -> None:
    with pytest.raises(ProblemReport) as info:
        yamlio._load(loader, "a: 1\nb: \ud800\n", "t.yaml")
    assert info.value.problems[0].location == Location("t.yaml", 2, 4)
    assert "#xd800" in str(info.value)


@LOADERS
def test_document_that_is_not_a_mapping_is_rejected(loader: Any) -> None:
    with pytest.raises(ProblemReport) as info:
        yamlio._load(loader, "a: 1\n---\n- x\n", "t.yaml")
    assert (
        str(info.value) == "t.yaml:3:1  expected a mapping at the top of the document, found list"
    )


@LOADERS
def test_timestamps_and_equals_stay_strings(loader: Any) -> None:
    text = "date: 2024-01-01\nts: 2001-12-14t21:59:43.10-05:00\nop: =\nn: 1\nb: yes\n"
    assert yamlio._load(loader, text, "t.yaml") == [
        {"date": "2024-01-01", "ts": "2001-12-14t21:59:43.10-05:00", "op": "=", "n": 1, "b": True}
    ]


def test_pyyaml_global_resolvers_are_untouched() -> None:
    yamlio.load_rendered("d: 2024-01-01\n", "t.yaml")
    assert yaml.safe_load("d: 2024-01-01\n") == {"d": datetime.date(2024, 1, 1)}
    assert yaml.load("d: 2024-01-01\n", Loader=yaml.CSafeLoader) == {"d": datetime.date(2024, 1, 1)}


def test_load_rendered_uses_libyaml_when_available() -> None:
    assert yaml.__with_libyaml__
    assert yamlio._Loader is not yamlio._PyLoader
