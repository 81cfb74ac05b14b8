"""The cleartext KubeKey config of a compiled site, for ``kk create cluster -f`` inside the site.

``compiled/<site>/kubekey-cluster.yaml`` holds ``?{age:<path>}`` references where KubeKey wants
host passwords, private keys and registry passwords; ``kubekey-secrets.json`` beside it holds their
ciphertexts. ``cleartext`` decrypts them with the site's key and puts each value in place of its
reference; ``write`` stores the result where only the operator can read it (mode 0600, replaced
atomically), since it is the one file of the flow with passwords in plain text.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from generator.core import errors, layout, yamlio
from generator.core.errors import GenError, Problem
from generator.core.fsutil import write_atomic
from generator.core.jsonpath import format_path
from generator.core.location import Location
from generator.formats import age as crypto
from generator.formats import secret_refs as refs


def cleartext(root: Path, site: str, keys: crypto.Identities) -> bytes:
    """The site's Cluster with every reference replaced by its decrypted value (YAML bytes).

    GenError when the site has no compiled Cluster; ProblemReport, located at the compiled file and
    JSON path, for every reference without a ciphertext or that ``keys`` cannot open.
    """
    directory = root / "compiled" / site
    cluster_file = directory / layout.KUBEKEY_CLUSTER
    if not cluster_file.is_file():
        raise GenError(
            f"no compiled/{site}/{layout.KUBEKEY_CLUSTER}: give the site site.kubekey "
            f"(docs/kubekey.md) and run `gen compile -t {site}`"
        )
    rel = f"compiled/{site}/{layout.KUBEKEY_CLUSTER}"
    [cluster] = yamlio.load_rendered(cluster_file.read_text(encoding="utf-8"), rel)
    sealed = _sealed(
        directory / layout.KUBEKEY_SECRETS, f"compiled/{site}/{layout.KUBEKEY_SECRETS}"
    )
    values: dict[str, str] = {}
    problems, tried = [], set()
    for path, text in refs.find(cluster):
        if text in tried:  # one problem per secret, at its first use
            continue
        tried.add(text)
        problem = _open(text, sealed, keys, values)
        if problem:
            problems.append(Problem(Location(rel), format_path(path), problem))
    if problems:
        raise errors.ProblemReport(problems, f"the KubeKey config of {site} cannot be decrypted")
    return yamlio.dump(_replaced(cluster, values)).encode()


def write(root: Path, site: str, keys: crypto.Identities, out: Path) -> None:
    """``cleartext`` into ``out``, mode 0600, atomically; nothing is written after a problem."""
    data = cleartext(root, site, keys)
    try:
        write_atomic(out, data, durable=True)
        out.chmod(0o600)  # the temporary file is 0600 already; said again for the reader
    except OSError as e:
        raise GenError(f"cannot write {out}: {e.strerror or e}") from e


def _sealed(path: Path, rel: str) -> dict[str, str]:
    """Secret path -> ciphertext from ``kubekey-secrets.json`` ({} when the Cluster has none)."""
    if not path.is_file():
        return {}
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
        secrets = body["secrets"]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise errors.located(
            Location(rel), f"not a KubeKey secrets file ({e}); compile again"
        ) from e
    if not isinstance(secrets, dict):
        raise errors.located(Location(rel), "not a KubeKey secrets file; compile again")
    return {str(k): str(v) for k, v in secrets.items()}


def _open(
    text: str, sealed: dict[str, str], keys: crypto.Identities, values: dict[str, str]
) -> str:
    """Decrypt one reference into ``values``; the problem (never the value) or ""."""
    try:
        ref = refs.parse(text)
    except refs.RefError as e:
        return str(e)
    if ref.path not in sealed:
        return f"{ref}: no ciphertext in {layout.KUBEKEY_SECRETS}; compile the site again"
    try:
        plain = crypto.decrypt(sealed[ref.path].encode("ascii", "replace"), keys, str(ref))
        values[ref.path] = plain.decode("utf-8")
    except crypto.CryptoError as e:
        return str(e)
    except UnicodeDecodeError:
        return f"{ref}: the value is not UTF-8 text; KubeKey reads passwords and keys as text"
    return ""


def _replaced(value: Any, values: dict[str, str]) -> Any:
    """``value`` with each reference string replaced by its cleartext."""
    if isinstance(value, dict):
        return {k: _replaced(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [_replaced(v, values) for v in value]
    if refs.looks_like_ref(value):
        return values[refs.parse(value).path]
    return value
