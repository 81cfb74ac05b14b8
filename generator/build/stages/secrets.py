"""The compile stage for secrets: references in the parameters -> rewritten parameters +
EncryptedSecrets.

``seal`` runs before rendering. It finds every ``?{age:<path>}`` under ``site`` and ``services``,
reads the site's secret files (their ciphertext, as it is: compile never encrypts, so output stays
byte-for-byte stable) and rewrites the parameters so templates stay simple:

- ``services.<name>.env.<VAR>: ?{age:p}`` becomes
  ``{secretKeyRef: {name: <name>-secrets, key: VAR}}`` (a template renders a mapping as
  ``valueFrom``), and the service gets ``secrets_checksum`` (the pods roll when a secret is
  rotated);
- ``site.registry_auth`` (username + password reference, or a dockerconfigjson reference) adds its
  Secret (``registry-pull``) to ``site.image_pull_secrets``, which every pod lists;
- ``site.monitoring-stack.database.password`` and ``.redis.password`` become secretKeyRefs into
  ``n9e-secrets`` (keys ``DB_PASSWORD``, ``REDIS_PASSWORD``) that components/monitoring-stack
  renders as ``valueFrom``, and the stack gets ``secrets_checksum``;
- the SSH password or private key of KubeKey's hosts (``site.kubekey.ssh``, ``site.nodes[]``) stay
  references; their ciphertexts (and the registry password's) are noted under ``KUBEKEY_KEY`` for
  the KubeKey stage, which ships them beside the Cluster;
- a reference anywhere else under ``site`` or ``services`` is a located error (other top-level keys
  are free: they may hold references that ``${...}`` copies into env values).

``place`` runs after rendering: one EncryptedSecret per secret and per namespace whose pods use it.
The description of each secret travels in the parameters (``PARAMS_KEY``), so ``objects`` is a pure
function of the parameters and the rendered objects. ``sealing`` and ``placing`` are the two compile
stages.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from generator.build.stages import Item, SiteBuild
from generator.core import errors
from generator.core.errors import Problem
from generator.core.jsonpath import format_path
from generator.core.location import Location
from generator.core.objects import containers, identity, pod_specs
from generator.formats import age as crypto
from generator.formats import encrypted_secret as encrypted
from generator.formats import secret_refs as refs
from generator.formats.secret_refs import KeyPath

if TYPE_CHECKING:
    from generator.build.pipeline import Context

PARAMS_KEY = "_gen_secrets"
"""Key of the rewritten parameters describing each secret to place (name -> description)."""
KUBEKEY_KEY = "_gen_kubekey_secrets"
"""Key of the rewritten parameters holding the KubeKey references' ciphertexts (path -> armor)."""
REGISTRY_SECRET = "registry-pull"
ALLOWED = (
    "services.<name>.env values, site.registry_auth (password or dockerconfigjson), "
    "site.monitoring-stack.database.password and .redis.password, and the SSH "
    "password or private_key of site.kubekey.ssh and site.nodes[]"
)
STACK = "monitoring-stack"
STACK_SECRET = "n9e-secrets"
"""The Secret of the monitoring stack's passwords (components/monitoring-stack)."""
STACK_KEYS = {("database", "password"): "DB_PASSWORD", ("redis", "password"): "REDIS_PASSWORD"}
_SSH_KEYS = ("password", "private_key")

Locate = Callable[[KeyPath], Location | None]


@dataclass(frozen=True)
class Placed:
    """An EncryptedSecret for the site's files, with what produced it (like ``render.Rendered``)."""

    obj: dict[str, Any]
    template: str
    """The secret files it carries, e.g. ``secrets/cn-east-1/redis/password.age``."""
    unit: str
    key: tuple[str, int] | None = None
    """Not from a template: never memoized by text."""


@dataclass(frozen=True)
class Sealed:
    """Parameters with references replaced, the secret files read, and where each secret was
    declared."""

    params: dict[str, Any]
    inputs: tuple[str, ...] = ()
    """Secret files read (relative to the root): the compile cache watches them."""
    where: dict[str, tuple[KeyPath, Location | None]] = field(default_factory=dict)
    """Secret name -> the key path and location of its first reference."""
    any_refs: bool = True
    """Whether the parameters hold any reference at all (else ``place`` has nothing to check)."""


SEALED = "secrets.sealed"
"""Note key of the ``Sealed`` value ``placing`` needs."""


def sealing(ctx: Context, build: SiteBuild) -> SiteBuild:
    """Stage before rendering: references sealed in the parameters, the secret files as inputs."""
    sealed = seal(ctx.root, build.name, build.params, build.target.location)
    inputs = (*build.inputs, *sealed.inputs)
    return replace(build, params=sealed.params, inputs=inputs).note(SEALED, sealed)


def placing(ctx: Context, build: SiteBuild) -> SiteBuild:
    """Stage after rendering: the site's EncryptedSecrets added to its objects."""
    placed = place(build.noted(SEALED, Sealed), build.rendered)
    return replace(build, rendered=(*build.rendered, *placed)) if placed else build


def seal(root: Path, site: str, params: dict[str, Any], locate: Locate) -> Sealed:
    """Rewrite the references of one site's (defaulted) parameters; ProblemReport with every
    problem."""
    found = list(refs.find({"site": params["site"], "services": params["services"]}))
    ssh = [*_ssh_secrets(params["site"]), *_stack_secrets(params["site"])]
    if not found and not ssh and not params["site"].get("registry_auth"):
        free = {k: v for k, v in params.items() if k not in ("site", "services")}
        return Sealed(params, any_refs=next(refs.find(free), None) is not None)
    sealer = _Sealer(root, site, copy.deepcopy(params), locate)
    for path, text in found:
        sealer.reference(path, text)
    sealer.registry()
    for path, value in ssh:
        if not refs.looks_like_ref(value):
            sealer.ciphertext(path, value)  # a plain-text password: refused, never echoed
    if sealer.problems:
        raise errors.ProblemReport(sealer.problems)
    return Sealed(sealer.params, tuple(sealer.files), sealer.where)


def place(sealed: Sealed, rendered: Sequence[Item]) -> list[Placed]:
    """The EncryptedSecrets of a sealed site; ProblemReport for a secret no pod uses or a stray
    reference."""
    if not sealed.any_refs:
        return []
    problems = list(_stray(rendered))
    placed, unused = objects(sealed.params, [item.obj for item in rendered])
    for name in unused:
        path, where = sealed.where[name]
        problems.append(
            Problem(
                where,
                format_path(path),
                f"the secret {name} is used by no pod: the service's "
                "component must render env values that are mappings as valueFrom, as "
                "components/stateful-service does",
            )
        )
    if problems:
        raise errors.ProblemReport(problems)
    return placed


def objects(
    params: dict[str, Any], rendered: Iterable[dict[str, Any]]
) -> tuple[list[Placed], list[str]]:
    """EncryptedSecrets for the secrets described in ``params`` (pure), and the names no pod uses.

    Each secret goes to every namespace whose pods reference it by name; the registry pull secret
    also always goes to the site's namespace.
    """
    described: dict[str, Any] = params.get(PARAMS_KEY) or {}
    if not described:
        return [], []
    default_ns = params["site"]["namespace"]
    used = _used(rendered, default_ns)
    placed, unused = [], []
    for name, spec in sorted(described.items()):
        namespaces = set(used.get(name, ()))
        if spec["registry"]:
            namespaces.add(default_ns)
        if not namespaces:
            unused.append(name)
        for namespace in sorted(namespaces):
            obj = encrypted.build(
                name,
                namespace,
                spec["labels"],
                spec["type"],
                spec["encryptedData"],
                spec.get("dockerConfig"),
            )
            placed.append(Placed(obj, ", ".join(spec["sources"]), spec["unit"]))
    return placed, unused


# --------------------------------------------------------------------------------------------
# seal


class _Sealer:
    """Collects rewritten parameters, secret descriptions and problems for one site."""

    def __init__(self, root: Path, site: str, params: dict[str, Any], locate: Locate) -> None:
        self.root, self.site, self.params, self.locate = root, site, params, locate
        self.described: dict[str, dict[str, Any]] = {}
        self.where: dict[str, tuple[KeyPath, Location | None]] = {}
        self.files: list[str] = []
        self.problems: list[Problem] = []
        self._texts: dict[str, str | None] = {}

    def problem(self, path: KeyPath, message: str) -> None:
        self.problems.append(Problem(self.locate(path), format_path(path), message))

    def reference(self, path: KeyPath, text: str) -> None:
        """One reference found in the parameters: an env value, registry auth (done later), or an
        error."""
        if path[:2] == ("site", "registry_auth") and path[2:] in (
            ("password",),
            ("dockerconfigjson",),
        ):
            return
        if _is_ssh_secret(path):
            self.kubekey(path, text)
            return
        if path[:2] == ("site", STACK) and tuple(path[2:]) in STACK_KEYS:
            self.stack(path, text)
            return
        service = (
            self.params["services"].get(path[1])
            if path[0] == "services" and len(path) > 1
            else None
        )
        if isinstance(service, dict) and not service.get("enabled", True):
            return
        if service is not None and len(path) == 4 and path[2] == "env":
            self.env(str(path[1]), str(path[3]), path, text)
        else:
            self.problem(path, f"secret references are allowed in {ALLOWED} only")

    def kubekey(self, path: KeyPath, text: str) -> None:
        """An SSH secret of KubeKey's hosts: its ciphertext noted for the KubeKey stage."""
        ciphertext, _ = self.ciphertext(path, text)
        if ciphertext is not None:
            self.params.setdefault(KUBEKEY_KEY, {})[refs.parse(text).path] = ciphertext

    def stack(self, path: KeyPath, text: str) -> None:
        """A password of the monitoring stack: a key of ``n9e-secrets``, when the site runs it."""
        if not _stack_uses(self.params["site"], str(path[2])):
            return  # not rendered (no stack, or sqlite / miniredis): the reference is not needed
        stack = self.params["site"][STACK]
        ciphertext, source = self.ciphertext(path, text)
        if ciphertext is None:
            return
        key = STACK_KEYS[(str(path[2]), str(path[3]))]
        labels = {"app.kubernetes.io/part-of": STACK, "app.kubernetes.io/managed-by": "gen"}
        spec = self.describe(STACK_SECRET, path, labels, "Opaque", "site")
        spec["encryptedData"][key] = ciphertext
        _add_source(spec, source)
        stack[path[2]][path[3]] = {"secretKeyRef": {"name": STACK_SECRET, "key": key}}
        stack["secrets_checksum"] = _checksum(spec)

    def env(self, name: str, var: str, path: KeyPath, text: str) -> None:
        ciphertext, source = self.ciphertext(path, text)
        if ciphertext is None:
            return
        service = self.params["services"][name]
        secret = f"{name}-secrets"
        labels = {
            "app": name,
            "app.kubernetes.io/name": name,
            "app.kubernetes.io/managed-by": "gen",
            **(service.get("labels") or {}),
        }
        spec = self.describe(secret, path, labels, "Opaque", f"service {name}")
        spec["encryptedData"][var] = ciphertext
        _add_source(spec, source)
        service["env"][var] = {"secretKeyRef": {"name": secret, "key": var}}
        service["secrets_checksum"] = _checksum(spec)

    def registry(self) -> None:
        """``site.registry_auth`` -> the pull secret, listed in ``site.image_pull_secrets``."""
        site = self.params["site"]
        auth = site.get("registry_auth")
        if not auth:
            return
        base: KeyPath = ("site", "registry_auth")
        if "dockerconfigjson" in auth and {"username", "password", "server"} & set(auth):
            self.problem(
                base, "give either username and password (and server) or dockerconfigjson, not both"
            )
            return
        form = "dockerconfigjson" if "dockerconfigjson" in auth else "password"
        ciphertext, source = self.ciphertext((*base, form), auth.get(form))
        if ciphertext is None:
            return
        name = auth.get("secret_name", REGISTRY_SECRET)
        spec = self.describe(
            name,
            (*base, form),
            {"app.kubernetes.io/managed-by": "gen"},
            encrypted.DOCKER_CONFIG_TYPE,
            "site",
            registry=True,
        )
        if form == "dockerconfigjson":
            spec["encryptedData"][encrypted.DOCKER_CONFIG_KEY] = ciphertext
        else:
            # KubeKey's Cluster lists the same credentials for the registry it installs.
            self.params.setdefault(KUBEKEY_KEY, {})[refs.parse(auth[form]).path] = ciphertext
            spec["dockerConfig"] = {
                "server": auth.get("server") or site["registry"].split("/", 1)[0],
                "username": auth["username"],
                "encryptedPassword": ciphertext,
            }
        _add_source(spec, source)
        site["image_pull_secrets"] = [
            *[s for s in site.get("image_pull_secrets", []) if s != name],
            name,
        ]

    def describe(
        self,
        name: str,
        path: KeyPath,
        labels: dict[str, str],
        secret_type: str,
        unit: str,
        registry: bool = False,
    ) -> dict[str, Any]:
        """The description of secret ``name`` (created on first use) in the parameters."""
        described = self.params.setdefault(PARAMS_KEY, {})
        if name not in described:
            described[name] = {
                "type": secret_type,
                "labels": labels,
                "encryptedData": {},
                "sources": [],
                "unit": unit,
                "registry": registry,
            }
            self.where[name] = (path, self.locate(path))
        spec: dict[str, Any] = described[name]
        return spec

    def ciphertext(self, path: KeyPath, text: Any) -> tuple[str | None, str]:
        """The armored ciphertext a reference points at, and its file; (None, file) after a
        problem."""
        if not refs.looks_like_ref(text):
            self.problem(
                path,
                "must be a secret reference ?{age:<path>}: passwords never appear in plain text "
                f"in the inventory; store it with `gen secrets set -t {self.site} <path>`",
            )
            return None, ""
        try:
            ref = refs.parse(text)
        except refs.RefError as e:
            self.problem(path, str(e))
            return None, ""
        file = ref.file(self.site)
        content = self.read(file)
        if content is None:
            self.problem(
                path,
                f"{ref}: the secret file {file} does not exist; create it with "
                f"`gen secrets set -t {self.site} {ref.path}` (the value is read from stdin)",
            )
            return None, file
        try:
            crypto.inspect(content.encode("ascii", "replace"))
        except crypto.CryptoError as e:
            self.problem(
                path,
                f"{ref}: the secret file {file} is {e}; restore it from git or set it again "
                f"with `gen secrets rotate -t {self.site} {ref.path}`",
            )
            return None, file
        return content, file

    def read(self, file: str) -> str | None:
        """The text of a secret file (read once), or None when it does not exist."""
        if file not in self._texts:
            try:
                self._texts[file] = (self.root / file).read_text(encoding="ascii", errors="replace")
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                self._texts[file] = None
            self.files.append(file)
        return self._texts[file]


def _ssh_secrets(site: dict[str, Any]) -> Iterator[tuple[KeyPath, Any]]:
    """The SSH passwords and private keys of KubeKey's hosts, with their key paths."""
    ssh = (site.get("kubekey") or {}).get("ssh") or {}
    for key in _SSH_KEYS:
        if key in ssh:
            yield ("site", "kubekey", "ssh", key), ssh[key]
    for i, node in enumerate(site.get("nodes") or []):
        for key in _SSH_KEYS:
            if key in node:
                yield ("site", "nodes", i, key), node[key]


def _stack_secrets(site: dict[str, Any]) -> Iterator[tuple[KeyPath, Any]]:
    """The monitoring stack's passwords, with their key paths, where the site's stack uses them."""
    for part, key in STACK_KEYS:
        value = ((site.get(STACK) or {}).get(part) or {}).get(key)
        if value is not None and _stack_uses(site, part):
            yield ("site", STACK, part, key), value


def _stack_uses(site: dict[str, Any], part: str) -> bool:
    """Whether the site runs the monitoring stack with an in-cluster ``database`` or ``redis``
    (the ones whose password the stack renders)."""
    stack = site.get(STACK) or {}
    if STACK not in (site.get("components") or []) or not stack.get("enabled", True):
        return False
    kind = (stack.get(part) or {}).get("type")
    return kind != "sqlite" if part == "database" else kind in (None, "standalone")


def _is_ssh_secret(path: KeyPath) -> bool:
    """``site.kubekey.ssh.<password|private_key>`` or ``site.nodes[i].<password|private_key>``."""
    return (path[:3] == ("site", "kubekey", "ssh") and path[3:] in [(k,) for k in _SSH_KEYS]) or (
        len(path) == 4 and path[:2] == ("site", "nodes") and path[3] in _SSH_KEYS
    )


def _add_source(spec: dict[str, Any], source: str) -> None:
    if source not in spec["sources"]:
        spec["sources"] = sorted([*spec["sources"], source])


def _checksum(spec: dict[str, Any]) -> str:
    """sha256 of a secret's ciphertexts: changes exactly when one of its files is rotated."""
    return hashlib.sha256(json.dumps(spec["encryptedData"], sort_keys=True).encode()).hexdigest()


# --------------------------------------------------------------------------------------------
# place


def _used(rendered: Iterable[dict[str, Any]], default_ns: str) -> dict[str, set[str]]:
    """Secret name -> namespaces whose pods reference it (env, envFrom, volumes,
    imagePullSecrets)."""
    used: dict[str, set[str]] = {}
    for obj in rendered:
        namespace = (obj.get("metadata") or {}).get("namespace") or default_ns
        for pod in pod_specs(obj):
            for name in _secret_names(pod):
                used.setdefault(name, set()).add(namespace)
    return used


def _secret_names(pod: dict[str, Any]) -> Iterator[str]:
    for ref in pod.get("imagePullSecrets") or []:
        yield ref.get("name", "")
    for volume in pod.get("volumes") or []:
        yield (volume.get("secret") or {}).get("secretName", "")
    for container in containers(pod):
        for env in container.get("env") or []:
            yield ((env.get("valueFrom") or {}).get("secretKeyRef") or {}).get("name", "")
        for source in container.get("envFrom") or []:
            yield (source.get("secretRef") or {}).get("name", "")


def _stray(rendered: Sequence[Item]) -> Iterator[Problem]:
    """A reference that reached a rendered object (through a free top-level key) is an error at its
    template."""
    for item in rendered:
        for path, _ in refs.find(item.obj):
            yield Problem(
                Location(item.template),
                "",
                f"{item.unit}: {identity(item.obj)}: a secret reference "
                f"reached the output at {format_path(path)}; secret references are allowed in "
                f"{ALLOWED} only",
            )
