"""Render reuse: a template's output is remembered by the values it read, and reused only when
every value it would read is the same (byte-identical to rendering every time)."""

from __future__ import annotations

import copy
import itertools
from pathlib import Path
from typing import Any

import pytest

from generator.build import render
from generator.core import errors

HEAD = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: '{{ name }}-x'}\ndata:\n"

# Every way a template can read a value: attribute and item access, iteration (keys, items,
# values, lists, reversed), membership, length and truth, tests, filters (dictsort, tojson, string,
# join, length, first, last, sort, map, default, list), comparisons, concatenation, dict(),
# macros, includes, set, helpers (image_ref, port_name, probe, ingress_host, kube_at_least).
EVERYTHING = (
    HEAD
    + """\
  a: {{ service.image | tojson }}
  b: {{ service["tag"] | string | tojson }}
  c: {{ (service.replicas ~ "") | tojson }}
  d: {{ service.env | dictsort | tojson }}
  e: {{ (service.env | length) | string | tojson }}
  f: {{ ("LOG" in service.env) | string | tojson }}
  g: {{ (service.config is defined) | string | tojson }}
  h: {{ service.missing | default("none") | tojson }}
  i: {{ service.ports | map(attribute="port") | list | tojson }}
  j: {{ service.ports | first | tojson }}
  k: {{ service.ports | last | string | tojson }}
  l: {{ service.ports | length | string | tojson }}
  m: {{ service.labels | string | tojson }}
  n: {{ (service.labels == {"tier": "web"}) | string | tojson }}
  o: {{ image_ref(service) | tojson }}
  p: {{ service.ports | map("tojson") | join(",") | tojson }}
  q: {{ (service.tags | sort) | tojson }}
  r: {{ (service.tags + ["z"]) | tojson }}
  s: {{ dict(service.labels, extra="1") | tojson }}
  t: {{ service.labels.keys() | list | tojson }}
  u: {{ service.labels.values() | list | tojson }}
  v: {{ service.labels.items() | list | tojson }}
  w: {{ (service.tags | reverse | list) | tojson }}
  x: {{ (service.tags[1:]) | tojson }}
  y: {{ kube_at_least("1.29") | string | tojson }}
  z: {{ (service.flag if service.flag is defined else "unset") | string | tojson }}
  aa: {{ (service.env.get("LOG", "-")) | tojson }}
  ab: {{ ("yes" if service.env else "no") | tojson }}
  ac: {{ service.tags | join("/") | tojson }}
  ad: {{ (service.tags[0] if service.tags else "") | tojson }}
  ae: {{ service | dictsort | map(attribute=0) | join(",") | tojson }}
{% for key in service.env %}
  env-{{ key }}: {{ service.env[key] | tojson }}
{% endfor %}
{% for key, value in service.env.items() %}
  item-{{ key }}: {{ value | tojson }}
{% endfor %}
{% for port in service.ports %}
  port-{{ loop.index }}: {{ port_name(port) | tojson }}
{% endfor %}
{% for kind in ["readiness", "liveness"] if kind in service.probes %}
  probe-{{ kind }}: {{ probe(service.probes[kind]) | tojson }}
{% endfor %}
{% from "c/macros.j2" import show %}
  macro: {{ show(service.labels) | tojson }}
{% set total = namespace(n=0) %}
{% for port in service.ports %}{% set total.n = total.n + port.port %}{% endfor %}
  total: {{ total.n | string | tojson }}
{% include "c/part.j2" %}
"""
)
MACROS = "{% macro show(m) %}{% for k in m %}{{ k }}={{ m[k] }};{% endfor %}{% endmacro %}\n"
PART = "  part: {{ site.registry | tojson }}\n"


def project(tmp_path: Path, template: str) -> Path:
    component = tmp_path / "components" / "c"
    component.mkdir(parents=True, exist_ok=True)
    (component / "t.yml.j2").write_text(template)
    (component / "macros.j2").write_text(MACROS)
    (component / "part.j2").write_text(PART)
    return tmp_path


def params(site: str, **service: Any) -> dict[str, Any]:
    svc: dict[str, Any] = {
        "component": "c",
        "image": "app",
        "tag": "1.0",
        "replicas": 1,
        "env": {"LOG": "info", "MODE": "a"},
        "ports": [{"port": 80}, {"port": 81, "name": "metrics"}],
        "labels": {"tier": "web"},
        "tags": ["b", "a"],
        "probes": {"readiness": {"tcp_port": 80}},
        **service,
    }
    return {
        "site": {
            "name": site,
            "namespace": f"ns-{site}",
            "registry": "registry.local",
            "kubernetes_version": "1.29.9",
            "ingress": {"ips": ["10.0.0.1"]},
        },
        "services": {"web": svc},
    }


VARIANTS: list[dict[str, Any]] = [
    {},
    {"tag": 1.0},
    {"tag": 1},
    {"tag": True},
    {"tag": "-0.0"},
    {"replicas": 1.0},
    {"replicas": -0.0},
    {"replicas": 0.0},
    {"env": {"MODE": "a", "LOG": "info"}},  # same items, another order
    {"env": {}},
    {"env": {"LOG": {"secretKeyRef": {"name": "s", "key": "k"}}}},
    {"ports": [{"port": 80}]},
    {"ports": [{"port": 81, "name": "metrics"}, {"port": 80}]},
    {"labels": {"tier": "web", "x": "1"}},
    {"labels": {"tier": "web"}, "flag": None},
    {"flag": False},
    {"flag": 0},
    {"tags": []},
    {"tags": ["a", "b"]},
    {"config": {}},
    {"probes": {"liveness": {"http_path": "/", "http_port": 80}}},
    {"image": "other"},
]


def texts(renderer: render.Renderer, p: dict[str, Any]) -> list[str]:
    return [r.key[0] for r in renderer.site(p["site"]["name"], p) if r.key]


def test_reused_output_is_byte_identical_to_rendering_every_time(tmp_path: Path) -> None:
    root = project(tmp_path, EVERYTHING)
    reusing, plain = render.Renderer(root), render.Renderer(root, reuse=False)
    cases = [params(site, **v) for site, v in itertools.product(("s1", "s2"), VARIANTS)]
    for p in [*cases, *cases]:  # the second round is served from what the first remembered
        before = copy.deepcopy(p)
        assert texts(reusing, p) == texts(plain, p), p
        assert p == before  # the proxies never change the values they read
    memo = next(iter(reusing._memos.values()))
    assert memo.size < len(cases)  # some contexts shared an output


def test_a_template_is_rendered_once_for_sites_that_differ_only_in_what_it_does_not_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = project(tmp_path, HEAD + "  image: {{ service.image | tojson }}\n")
    renderer = render.Renderer(root)
    template = renderer.env.get_template("c/t.yml.j2")
    real = template.render
    calls = []

    def counting(*args: Any, **kwargs: Any) -> str:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(template, "render", counting)
    outs = [texts(renderer, params(f"site-{i}", replicas=i)) for i in range(5)]
    assert outs == [outs[0]] * 5
    assert len(calls) == 1
    assert texts(renderer, params("site-9", image="other")) != outs[0]
    assert len(calls) == 2


def test_a_value_read_only_on_one_branch_is_still_part_of_the_key(tmp_path: Path) -> None:
    template = HEAD + (
        "{% if service.flag is defined and service.flag %}\n"
        "  r: {{ service.replicas | string | tojson }}\n{% endif %}\n"
    )
    root = project(tmp_path, template)
    reusing, plain = render.Renderer(root), render.Renderer(root, reuse=False)
    for p in (
        params("a"),
        params("a", flag=True, replicas=2),
        params("a", flag=True, replicas=3),
        params("a", flag=False, replicas=4),
        params("a", flag=1, replicas=3),
    ):
        assert texts(reusing, p) == texts(plain, p)


def test_a_failing_template_reports_exactly_as_without_reuse(tmp_path: Path) -> None:
    template = HEAD + "  a: {{ service.nope.deeper }}\n"
    root = project(tmp_path, template)
    messages = []
    for renderer in (render.Renderer(root), render.Renderer(root, reuse=False)):
        with pytest.raises(errors.ProblemReport) as e:
            renderer.site("s", params("s"))
        messages.append([str(p) for p in e.value.problems])
    assert messages[0] == messages[1]
    assert "undefined value" in messages[0][0]


def test_a_template_mutating_its_input_is_not_remembered(tmp_path: Path) -> None:
    template = HEAD + "  a: {{ service.tags.append('x') or service.tags | tojson }}\n"
    root = project(tmp_path, template)
    reusing, plain = render.Renderer(root), render.Renderer(root, reuse=False)
    for _ in range(2):
        assert texts(reusing, params("s")) == texts(plain, params("s"))
    assert next(iter(reusing._memos.values())).size == 0


BASE = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: one
  namespace: ns-a
  labels: {"app": "x"}
data:
  image: registry.a:5000/app:v1
  quoted: "value a"
  number: 1
  list:
  - first
  - "second"
  base: {k: v}
  merged:
    <<: {k: v}
    own: mine
  plain: continued
    on the next line
  commented: value # note
---
apiVersion: v1
kind: Service
metadata:
  name: two
  namespace: ns-a
"""

LINE_CHANGES = [
    ("  namespace: ns-a", "  namespace: ns-b"),
    ("  image: registry.a:5000/app:v1", "  image: harbor.b:5000/paas/app:v2"),
    ('  quoted: "value a"', '  quoted: "value \\u00e9 b"'),
    ('  quoted: "value a"', "  quoted: plain"),
    ("  number: 1", "  number: 1.0"),
    ("  number: 1", "  number: yes"),
    ("  number: 1", "  number: null"),
    ("  number: 1", "  number: ~"),
    ("  number: 1", "  number: 0o17"),
    ("  number: 1", "  number: 1:30"),
    ("  number: 1", "  number: 2001-12-14"),
    ("  number: 1", "  number: |"),
    ("  number: 1", "  number: a:"),
    ("  number: 1", "  number: -1"),
    ("  number: 1", '  number: "unterminated'),
    ("  number: 1", "  number: {k: v}"),
    ("  number: 1", "  number: [1]"),
    ("  number: 1", "  number: x # y"),
    ("  number: 1", "  number: =x"),
    ("  - first", "  - changed"),
    ('  - "second"', "  - 2"),
    ("  base: {k: v}", "  base: {k: w}"),
    ("    own: mine", "    own: yours"),
    ("  plain: continued", "  plain: other"),
    ("  commented: value # note", "  commented: other # note"),
    ('  labels: {"app": "x"}', '  labels: {"app": "y"}'),
    ("  name: two", "  name: three"),
]


@pytest.mark.parametrize(("old", "new"), LINE_CHANGES)
def test_a_patched_parse_equals_a_full_parse_or_is_refused(old: str, new: str) -> None:
    from generator.core import yamlio

    base_docs, lines = yamlio.load_rendered_lines(BASE, "base")
    assert lines
    text = BASE.replace(old, new, 1)
    assert text != BASE
    base = (BASE.split("\n"), base_docs, lines)
    patched = render._patch(base, text, {})
    try:
        expected: Any = yamlio.load_rendered(text, "new")
    except errors.GenError:
        expected = None
    assert patched is None or patched == expected
    if patched is not None:  # the same types too (1 == 1.0 == True in Python)
        assert repr(patched) == repr(expected)
    assert base_docs == yamlio.load_rendered(BASE, "base")  # the base is never modified


def test_lines_of_a_text_with_an_alias_are_never_patched() -> None:
    from generator.core import yamlio

    aliased = BASE.replace("  base: {k: v}\n", "  base: &b {k: v}\n  again: *b\n")
    docs, lines = yamlio.load_rendered_lines(aliased, "base")
    assert lines == {}  # an alias anywhere in the text: no line may be patched
    text = aliased.replace("image: registry.a:5000/app:v1", "image: other:v2")
    assert render._patch((aliased.split("\n"), docs, lines), text, {}) is None
    docs, lines = yamlio.load_rendered_lines(BASE, "base")
    patched = render._patch(
        (BASE.split("\n"), docs, lines),
        BASE.replace("image: registry.a:5000/app:v1", "image: other:v2"),
        {},
    )
    assert patched is not None and patched[0]["data"]["image"] == "other:v2"
