"""The compiled-site layout: paths, and index.json built, serialized, parsed and checked."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from generator.core import layout
from generator.core.objects import ObjectId

FILES = {
    "manifests/app/deployment-web.yaml": b"kind: Deployment\n",
    "manifests/_cluster/namespace-app.yaml": b"kind: Namespace\n",
    "images.txt": b"registry.local/web:1\n",
    "n9e/site.json": '{"site": "café"}\n'.encode(),
}
ORIGINS = {
    "manifests/app/deployment-web.yaml": layout.Origin(
        ObjectId("apps", "Deployment", "app", "web"), "components/web/d.yml.j2 (site)"
    )
}


def index() -> layout.Index:
    return layout.Index.build("east", "1.33.4", FILES, ORIGINS)


def digests(files: dict[str, bytes]) -> dict[str, str]:
    return {rel: hashlib.sha256(content).hexdigest() for rel, content in files.items()}


def raw(**changes: Any) -> bytes:
    data = json.loads(index().dumps())
    data.update(changes)
    return json.dumps(data).encode()


def test_manifest_paths_are_by_namespace_or_cluster_and_lower_case_kind() -> None:
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "app"}}
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "app"}}
    assert layout.manifest_path(svc) == "manifests/app/service-web.yaml"
    assert layout.manifest_path(ns) == "manifests/_cluster/namespace-app.yaml"
    assert layout.is_manifest("manifests/app/service-web.yaml") and not layout.is_manifest(
        "images.txt"
    )
    assert all(layout.is_n9e(name) for name in layout.N9E_FILES)


def test_index_round_trips_through_its_bytes() -> None:
    built = index()
    assert layout.parse(built.dumps(), "compiled/east") == built
    assert [e.path for e in built.files] == sorted(FILES)
    web = built.files[[e.path for e in built.files].index("manifests/app/deployment-web.yaml")]
    assert web.object == ObjectId("apps", "Deployment", "app", "web") and web.size == 17


def test_index_bytes_keep_the_committed_format() -> None:
    text = index().dumps().decode()
    assert text.startswith(
        '{\n "site": "east",\n "kubernetes_version": "1.33.4",\n "layout": 1,\n "files": [\n'
    )
    assert text.endswith("\n") and '"source": "components/web/d.yml.j2 (site)"' in text
    entry = json.loads(text)["files"][2]
    assert list(entry) == ["path", "sha256", "size", "object", "source"]
    assert list(entry["object"]) == ["group", "kind", "namespace", "name"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"{not json", "not JSON"),
        (b"[]", "not a JSON object"),
        (raw(site=1), "site must be a string"),
        (raw(kubernetes_version=None), "kubernetes_version must be a string"),
        (raw(files={}), "files must be a list"),
        (raw(files=[{"path": "a", "sha256": "0" * 64}]), r"files\[0\].size must be"),
        (raw(files=[{"path": "../a", "sha256": "0" * 64, "size": 1}]), r"files\[0\].path must be"),
        (raw(files=[{"path": "a", "sha256": "XYZ", "size": 1}]), r"files\[0\].sha256 must be"),
        (
            raw(files=[{"path": "a", "sha256": "0" * 64, "size": 1, "object": {"kind": "X"}}]),
            r"files\[0\].object must hold",
        ),
        (raw(files=[{"path": "a", "sha256": "0" * 64, "size": 1}] * 2), "a is listed twice"),
        (
            raw(files=[{"path": "index.json", "sha256": "0" * 64, "size": 1}]),
            "index.json lists itself",
        ),
    ],
)
def test_a_malformed_index_is_an_error_naming_the_site_and_the_problem(
    data: bytes, message: str
) -> None:
    with pytest.raises(
        layout.LayoutError,
        match=rf"^compiled/east: index.json is not a compiled-site "
        rf"index: .*{message}",
    ):
        layout.parse(data, "compiled/east")


def test_files_that_agree_with_the_index_have_no_mismatch() -> None:
    assert layout.mismatches(index(), {**digests(FILES), "index.json": "anything"}) == []


def test_a_missing_file_is_named() -> None:
    files = {k: v for k, v in FILES.items() if k != "images.txt"}
    assert layout.mismatches(index(), digests(files)) == [
        "images.txt is listed in index.json but missing"
    ]


def test_an_extra_file_is_named() -> None:
    files = {**FILES, "manifests/app/stray.yaml": b"x"}
    assert layout.mismatches(index(), digests(files)) == [
        "manifests/app/stray.yaml is not listed in index.json"
    ]


def test_a_file_with_another_hash_is_named() -> None:
    files = {**FILES, "images.txt": b"registry.local/web:2\n"}
    assert layout.mismatches(index(), digests(files)) == [
        "images.txt does not match its sha256 in index.json"
    ]


def test_a_prefix_limits_the_check_to_those_files() -> None:
    files = {**FILES, "images.txt": b"changed\n", "manifests/app/stray.yaml": b"x"}
    assert layout.mismatches(index(), digests(files), "manifests/") == [
        "manifests/app/stray.yaml is not listed in index.json"
    ]


def test_an_index_records_its_layout_format_and_one_without_it_is_format_1() -> None:
    assert json.loads(index().dumps())["layout"] == layout.LAYOUT
    data = json.loads(index().dumps())
    del data["layout"]
    assert layout.parse(json.dumps(data).encode(), "compiled/east").layout == 1


@pytest.mark.parametrize(
    ("number", "why"),
    [(max(layout.READABLE) + 1, "compiled by a newer gen; upgrade gen")],
)
def test_a_layout_format_this_gen_cannot_read_is_refused_saying_which_gen_made_it(
    number: int, why: str
) -> None:
    with pytest.raises(layout.LayoutError, match=rf"layout format {number}, .*{why}"):
        layout.parse(raw(layout=number), "compiled/east")


def test_a_malformed_layout_format_is_refused() -> None:
    with pytest.raises(layout.LayoutError, match="layout must be a positive integer"):
        layout.parse(raw(layout="1"), "compiled/east")


def _reference_dumps(index: layout.Index) -> bytes:
    """What Index.dumps wrote before it was assembled from the C encoder's strings."""
    entries = []
    for e in index.files:
        entry: dict[str, Any] = {"path": e.path, "sha256": e.sha256, "size": e.size}
        if e.object is not None:
            entry["object"] = {
                k: getattr(e.object, k) for k in ("group", "kind", "namespace", "name")
            }
        if e.source is not None:
            entry["source"] = e.source
        entries.append(entry)
    data = {
        "site": index.site,
        "kubernetes_version": index.kubernetes_version,
        "layout": index.layout,
        "files": entries,
    }
    return (json.dumps(data, indent=1, ensure_ascii=False) + "\n").encode()


@pytest.mark.parametrize("seed", range(40))
def test_index_bytes_are_those_of_indented_json_dumps(seed: int) -> None:
    import random

    rng = random.Random(seed)
    words = ["a", 'é\u2028"x\\', "\x00\t", "日本", "", "manifests/app/service-x.yaml"]
    files = tuple(
        layout.Entry(
            rng.choice(words),
            rng.choice(words),
            rng.randrange(10**7),
            ObjectId(*(rng.choice(words) for _ in range(4))) if rng.random() < 0.5 else None,
            rng.choice(words) if rng.random() < 0.5 else None,
        )
        for _ in range(rng.randrange(4))
    )
    index = layout.Index(rng.choice(words), rng.choice(words), files, rng.choice([1, 2]))
    assert index.dumps() == _reference_dumps(index)
