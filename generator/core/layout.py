"""The compiled-site contract: what ``compiled/<site>/`` holds and its ``index.json``.

This is what crosses the air gap, so it has one owner. A site's directory holds:

- ``manifests/<namespace or _cluster>/<kind>-<name>.yaml``: one Kubernetes object per file;
- ``n9e/``: the site's Nightingale files (``N9E_FILES``), when it has monitoring;
- ``images.txt``: the images its pods run;
- ``kubekey-manifest.yaml``: KubeKey's artifact Manifest (``kk artifact export -m``), those images
  and, for a site with ``site.kubekey``, its OS packages and component versions;
- ``kubekey-cluster.yaml``: KubeKey's Cluster (``kk create cluster -f``), its secrets as
  ``?{age:<path>}`` references, and ``kubekey-secrets.json``: their ciphertexts (path -> age armor),
  for ``gen secrets kubekey-config`` inside the site;
- ``index.json``: the layout format (``LAYOUT``), every other file with its sha256 and size, and
  for a manifest the object and the template that produced it.

``LAYOUT`` numbers this contract. It goes up when a change to it means an older gen (or agent)
could no longer read a site right; ``READABLE`` are the formats this gen reads. An index without
the key was written before formats were numbered, by a gen whose layout is format 1. ``gen
rollback`` refuses a release whose index this gen cannot read, and the agent refuses such a commit.

The compiler builds and serializes the index (``Index.build``, ``Index.dumps``); publish, the agent
and ``gen diff`` read it back with ``parse`` and check files against it with ``mismatches``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from generator.core.errors import GenError
from generator.core.objects import ObjectId, identity

MANIFESTS = "manifests"
"""Directory of the Kubernetes objects."""
CLUSTER_SCOPE = "_cluster"
"""Sub-directory of ``manifests/`` for cluster-scoped objects."""
N9E = "n9e"
"""Directory of the Nightingale files."""
IMAGES = "images.txt"
KUBEKEY_MANIFEST = "kubekey-manifest.yaml"
KUBEKEY_CLUSTER = "kubekey-cluster.yaml"
KUBEKEY_SECRETS = "kubekey-secrets.json"
INDEX = "index.json"
LAYOUT = 1
"""The compiled-site layout format this gen writes (``index.json`` key ``layout``)."""
READABLE = frozenset({1})
"""The layout formats this gen (and its agent) can read: an older release is compatible when its
format is one of them."""

N9E_ALERT_RULES = f"{N9E}/alert-rules.json"
N9E_CHANNELS = f"{N9E}/notify-channels.json"
N9E_TEMPLATES = f"{N9E}/message-templates.json"
N9E_NOTIFY_RULES = f"{N9E}/notify-rules.json"
N9E_PROMETHEUS_RULES = f"{N9E}/prometheus-rules.yaml"
N9E_SITE = f"{N9E}/site.json"
"""The site's business group, team and name, for ``gen n9e apply``."""
N9E_FILES = (
    N9E_ALERT_RULES,
    N9E_CHANNELS,
    N9E_TEMPLATES,
    N9E_NOTIFY_RULES,
    N9E_PROMETHEUS_RULES,
    N9E_SITE,
)

DERIVED = frozenset({INDEX, KUBEKEY_MANIFEST, KUBEKEY_SECRETS})
"""Files computed from the others: a review lists them as changed but does not detail them."""

_SHA256 = re.compile(r"[0-9a-f]{64}")
_OBJECT_KEYS = ("group", "kind", "namespace", "name")


class LayoutError(GenError):
    """An ``index.json`` that is not a compiled-site index."""


def manifest_path(obj: dict[str, Any]) -> str:
    """``manifests/<namespace or _cluster>/<kind>-<name>.yaml``, kind in lower case."""
    oid = identity(obj)
    return f"{MANIFESTS}/{oid.namespace or CLUSTER_SCOPE}/{oid.kind.lower()}-{oid.name}.yaml"


def is_manifest(path: str) -> bool:
    """Whether ``path`` (relative to the site) is an object file."""
    return path.startswith(f"{MANIFESTS}/")


def is_n9e(path: str) -> bool:
    """Whether ``path`` (relative to the site) is a Nightingale file."""
    return path.startswith(f"{N9E}/")


@dataclass(frozen=True)
class Entry:
    """One file listed in the index."""

    path: str
    sha256: str
    size: int
    object: ObjectId | None = None
    """The object a manifest holds."""
    source: str | None = None
    """What produced the object: ``<template> (<unit>)``."""


@dataclass(frozen=True)
class Origin:
    """What a manifest holds and what produced it, for its index entry."""

    object: ObjectId
    source: str


@dataclass(frozen=True)
class Index:
    """A site's ``index.json``: its name, Kubernetes version and files (``build`` sorts them)."""

    site: str
    kubernetes_version: str
    files: tuple[Entry, ...]
    layout: int = LAYOUT
    """The layout format of the tree (``LAYOUT`` for what this gen writes)."""

    @classmethod
    def build(
        cls,
        site: str,
        kubernetes_version: str,
        files: Mapping[str, bytes],
        origins: Mapping[str, Origin],
    ) -> Index:
        """The index of ``files`` (which must not include the index itself)."""
        entries = []
        for rel, content in sorted(files.items()):
            origin = origins.get(rel)
            digest = hashlib.sha256(content).hexdigest()
            entries.append(
                Entry(rel, digest, len(content), origin.object, origin.source)
                if origin
                else Entry(rel, digest, len(content))
            )
        return cls(site, kubernetes_version, tuple(entries))

    def dumps(self) -> bytes:
        """The file's bytes: JSON, one-space indent, keys in this order, UTF-8, trailing newline.

        The same bytes as ``json.dumps(..., indent=1, ensure_ascii=False)`` of the index as a dict
        (which the pure-Python encoder writes, ~2 ms a site), put together from the C encoder's
        strings: an index lists every file of a site."""
        out = [
            '{\n "site": ',
            _json(self.site),
            ',\n "kubernetes_version": ',
            _json(self.kubernetes_version),
            ',\n "layout": ',
            _json(self.layout),
            ',\n "files": [',
        ]
        sep = "\n"
        for e in self.files:
            out += [sep, '  {\n   "path": ', _json(e.path), ',\n   "sha256": ', _json(e.sha256)]
            out += [',\n   "size": ', _json(e.size)]
            if e.object is not None:
                out.append(',\n   "object": {')
                inner = "\n"
                for k in _OBJECT_KEYS:
                    out += [inner, '    "', k, '": ', _json(getattr(e.object, k))]
                    inner = ",\n"
                out.append("\n   }")
            if e.source is not None:
                out += [',\n   "source": ', _json(e.source)]
            out.append("\n  }")
            sep = ",\n"
        out.append("\n ]\n}\n" if self.files else "]\n}\n")
        return "".join(out).encode()

    def digests(self) -> dict[str, str]:
        """Path -> sha256 of every listed file."""
        return {e.path: e.sha256 for e in self.files}


def _json(value: Any) -> str:
    """``json.dumps(value, ensure_ascii=False)`` of a scalar (a string through the C encoder)."""
    if type(value) is str:
        return _encode_string(value)
    return json.dumps(value, ensure_ascii=False)


_encode_string: Callable[[str], str] = (
    json.encoder.encode_basestring
)  # what json.dumps(ensure_ascii=False) uses


def parse(data: bytes, where: str) -> Index:
    """The index in ``data``; ``LayoutError`` naming ``where`` (site or commit) and the fault."""
    try:
        raw = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise _error(where, f"not JSON ({e})") from e
    if not isinstance(raw, dict):
        raise _error(where, "not a JSON object")
    for key in ("site", "kubernetes_version"):
        if not isinstance(raw.get(key), str):
            raise _error(where, f"{key} must be a string")
    number = _layout(raw.get("layout", 1), where)
    files = raw.get("files")
    if not isinstance(files, list):
        raise _error(where, "files must be a list")
    entries = tuple(_entry(item, f"files[{i}]", where) for i, item in enumerate(files))
    seen: set[str] = set()
    for entry in entries:
        if entry.path in seen or entry.path == INDEX:
            raise _error(
                where,
                f"{entry.path} is listed twice" if entry.path in seen else f"{INDEX} lists itself",
            )
        seen.add(entry.path)
    return Index(raw["site"], raw["kubernetes_version"], entries, number)


def _layout(value: Any, where: str) -> int:
    """The layout format of an index; a LayoutError saying which gen can read it otherwise."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise _error(where, f"layout must be a positive integer, not {value!r}")
    if value not in READABLE:
        newer = value > max(READABLE)
        raise LayoutError(
            f"{where}: {INDEX} has layout format {value}, which this gen cannot read "
            f"(it reads {', '.join(map(str, sorted(READABLE)))}): "
            + (
                "it was compiled by a newer gen; upgrade gen"
                if newer
                else "it was compiled by an older gen; compile it again with this one"
            )
        )
    return value


def _entry(raw: Any, at: str, where: str) -> Entry:
    if not isinstance(raw, dict):
        raise _error(where, f"{at} must be an object")
    path, digest, size = raw.get("path"), raw.get("sha256"), raw.get("size")
    if not isinstance(path, str) or not path or path.startswith("/") or ".." in path.split("/"):
        raise _error(where, f"{at}.path must be a relative path inside the site")
    if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
        raise _error(where, f"{at}.sha256 must be 64 lower-case hex digits")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise _error(where, f"{at}.size must be a non-negative integer")
    obj, source = raw.get("object"), raw.get("source")
    if obj is not None and not (
        isinstance(obj, dict) and all(isinstance(obj.get(k), str) for k in _OBJECT_KEYS)
    ):
        raise _error(where, f"{at}.object must hold the strings {', '.join(_OBJECT_KEYS)}")
    if source is not None and not isinstance(source, str):
        raise _error(where, f"{at}.source must be a string")
    oid = ObjectId(*(obj[k] for k in _OBJECT_KEYS)) if obj is not None else None
    return Entry(path, digest, size, oid, source)


def _error(where: str, detail: str) -> LayoutError:
    return LayoutError(f"{where}: {INDEX} is not a compiled-site index: {detail}")


def mismatches(index: Index, digests: Mapping[str, str], prefix: str = "") -> list[str]:
    """How the files (path -> sha256) disagree with the index, one sentence per file: files
    missing or not listed first, then files with another sha256, each group in path order.

    Only paths starting with ``prefix`` are compared (the agent reads ``manifests/`` only); the
    index file itself is never listed.
    """
    listed = {p: d for p, d in index.digests().items() if p.startswith(prefix)}
    present = {p: d for p, d in digests.items() if p.startswith(prefix) and p != INDEX}
    out = [
        f"{p} is not listed in {INDEX}" if p in present else f"{p} is listed in {INDEX} but missing"
        for p in sorted(set(listed) ^ set(present))
    ]
    changed = sorted(p for p in set(listed) & set(present) if listed[p] != present[p])
    return out + [f"{p} does not match its sha256 in {INDEX}" for p in changed]
