"""A real control plane, real signed deploy branches, and agents pointed at them.

The control plane (etcd + kube-apiserver, ``tests.support.servers.kube``) starts once per session;
each test works in namespaces of its own (envtest never finishes deleting a namespace). Deploy
branches are real git repositories whose commits are SSH-signed by ``ssh-keygen`` keys made for the
session.
"""

from __future__ import annotations

import itertools
import os
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Self

import pytest

from generator.core import layout, objects, yamlio
from generator.deliver.git import plumbing
from generator.deliver.git.repo import open_repo
from generator.run.agent import kube, plan
from generator.run.agent.loop import Agent
from generator.run.agent.metrics import Metrics
from generator.run.agent.settings import GitSource, PruneSettings, Settings
from tests.support.ferry import IDENTITY, Key, Keys, make_key, write_allowed_signers

_counter = itertools.count(1)


def unique(prefix: str) -> str:
    """A name no other test in this session uses (also across xdist-free reruns of one process)."""
    return f"{prefix}-{os.getpid() % 10000}-{next(_counter)}"


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """etcd + kube-apiserver for the whole session
    (skipped with the reason if they cannot start)."""
    try:
        from tests.support.servers.kube import start_control_plane
    except ImportError as e:  # pragma: no cover - cryptography missing
        pytest.skip(f"control plane launcher unavailable: {e}")
    try:
        with start_control_plane(tmp_path_factory.mktemp("envtest")) as cp:
            yield cp
    except Exception as e:
        if os.environ.get("GEN_REQUIRE_ENVTEST"):
            raise
        pytest.skip(f"no control plane: {e}")


@pytest.fixture(scope="session")
def admin(control_plane: Any) -> kube.Client:
    """A client with cluster-admin rights (the test plays operator and controllers)."""
    return kube.connect(control_plane.kubeconfig)


@pytest.fixture(scope="session")
def agent_keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    """A release key the agent trusts and a stranger's key it does not."""
    directory = tmp_path_factory.mktemp("agent-keys")
    release = make_key(directory, "release", IDENTITY.email)
    stranger = make_key(directory, "stranger", "mallory@example.com")
    return Keys(release, stranger, write_allowed_signers(directory / "allowed_signers", release))


def site_files(objs: list[dict[str, Any]]) -> dict[str, bytes]:
    """A compiled-site tree for ``objs``:
    one file per object plus an ``index.json`` that matches."""
    files = {layout.manifest_path(o): yamlio.dump(objects.canonical(o)).encode() for o in objs}
    files[layout.INDEX] = layout.Index.build("test", "1.33.4", files, {}).dumps()
    return files


@dataclass
class Branch:
    """A deploy repository whose ``deploy/<site>`` branch the test moves commit by commit."""

    path: Path
    site: str
    keys: Keys
    tip: str | None = None

    @property
    def ref(self) -> str:
        return f"refs/heads/deploy/{self.site}"

    def commit(
        self,
        objs: list[dict[str, Any]] | None = None,
        files: dict[str, bytes] | None = None,
        key: Key | None = None,
        signed: bool = True,
        message: str = "",
    ) -> str:
        """Commit ``objs`` (or raw ``files``) on top of the branch, signed by ``key``
        (default: release), with ``message`` (default ``deploy <site>``)."""
        repo = open_repo(self.path, create=True)
        content = files if files is not None else site_files(objs or [])
        tree = plumbing.write_tree(
            repo, {p: plumbing.hash_bytes(repo, c) for p, c in content.items()}
        )
        signer = (key or self.keys.release).private if signed else None
        commit = plumbing.commit_tree(
            repo,
            tree,
            [self.tip] if self.tip else [],
            message or f"deploy {self.site}",
            IDENTITY,
            signer,
        )
        repo.run("update-ref", self.ref, commit)
        self.tip = commit
        return commit


@dataclass
class Site:
    """One test's world: its namespaces, its branch, and settings for an agent of its own."""

    namespace: str
    agent_namespace: str
    branch: Branch
    settings: Settings
    admin: kube.Client
    metrics: list[Metrics] = field(default_factory=list)
    agents: list[Agent] = field(default_factory=list)

    def agent(self, client: kube.Kube | None = None, **changes: Any) -> Agent:
        """An agent for this site (the admin client unless another is given)."""
        m = Metrics(self.settings.interval)
        self.metrics.append(m)
        self.agents.append(Agent(replace(self.settings, **changes), client or self.admin, m))
        return self.agents[-1]

    @property
    def set_id(self) -> str:
        return plan.applyset_id(self.settings.parent_name, self.settings.namespace)

    def get(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> dict[str, Any] | None:
        res = self.admin.resource(api_version, kind)
        return self.admin.get(
            res, self.namespace if namespace is None and res.namespaced else namespace or "", name
        )

    def status(self) -> dict[str, str]:
        cm = self.get("v1", "ConfigMap", self.settings.status_name, self.agent_namespace)
        return (cm or {}).get("data") or {}


@pytest.fixture
def site(tmp_path: Path, admin: kube.Client, agent_keys: Keys) -> Iterator[Site]:
    """A fresh site: an application namespace and an agent namespace (created), an empty branch;
    the agents made for it are closed afterwards."""
    namespace, agent_ns = unique("app"), unique("agent")
    ns_res = admin.resource("v1", "Namespace")
    for ns in (namespace, agent_ns):
        admin.apply(
            ns_res,
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
            "test-setup",
        )
    branch = Branch(tmp_path / "deploy.git", "test", agent_keys)
    settings = Settings(
        site="test",
        source=GitSource(str(branch.path)),
        allowed_signers=agent_keys.allowed_signers,
        state_dir=tmp_path / "state",
        namespace=agent_ns,
        interval=60,
        health_timeout=0.5,
        health_poll=0.1,
        prune=PruneSettings(),
        metrics_port=-1,
        workers=4,
    )
    made = Site(namespace, agent_ns, branch, settings, admin)
    yield made
    for agent in made.agents:
        agent.close()


def configmap(name: str, namespace: str, **data: str) -> dict[str, Any]:
    """A ConfigMap object."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        "data": dict(data),
    }


def deployment(
    name: str, namespace: str, replicas: int = 1, image: str = "registry.local/app:1"
) -> dict[str, Any]:
    """A small Deployment (envtest never runs its pods: tests write its /status)."""
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": image,
                            "resources": {"limits": {"cpu": "0.5", "memory": "64Mi"}},
                        }
                    ]
                },
            },
        },
    }


def service(name: str, namespace: str, port: int = 80) -> dict[str, Any]:
    """A ClusterIP Service."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "selector": {"app": name},
            "ports": [{"name": "http", "port": port, "targetPort": port}],
        },
    }


class Counting:
    """A Kube that counts requests by kind (and can crash after a number of real applies)."""

    def __init__(self, inner: kube.Kube, crash_after: int | None = None) -> None:
        self.inner = inner
        self.calls: dict[str, int] = {}
        self.crash_after = crash_after

    def _count(self, what: str) -> None:
        self.calls[what] = self.calls.get(what, 0) + 1

    @property
    def writes(self) -> int:
        return sum(n for what, n in self.calls.items() if what in ("apply", "delete", "create"))

    def resource(self, api_version: str, kind: str) -> kube.Resource:
        return self.inner.resource(api_version, kind)

    def forget(self) -> None:
        self.inner.forget()

    def get(self, res: kube.Resource, namespace: str, name: str) -> dict[str, Any] | None:
        self._count("get")
        return self.inner.get(res, namespace, name)

    def list(self, res: kube.Resource, namespace: str, selector: str = "") -> list[dict[str, Any]]:
        self._count("list")
        return self.inner.list(res, namespace, selector)

    def apply(
        self, res: kube.Resource, obj: dict[str, Any], manager: str, dry_run: bool = False
    ) -> dict[str, Any]:
        if (
            not dry_run
            and self.crash_after is not None
            and self.calls.get("apply", 0) >= self.crash_after
        ):
            raise Crash(f"simulated crash before applying {obj['kind']} {obj['metadata']['name']}")
        self._count("dry-run" if dry_run else "apply")
        return self.inner.apply(res, obj, manager, dry_run)

    def delete(
        self,
        res: kube.Resource,
        namespace: str,
        name: str,
        uid: str,
        resource_version: str,
        propagation: str = "Background",
    ) -> None:
        self._count("delete")
        self.inner.delete(res, namespace, name, uid, resource_version, propagation)

    def create(self, res: kube.Resource, namespace: str, obj: dict[str, Any]) -> dict[str, Any]:
        self._count("create")
        return self.inner.create(res, namespace, obj)


class Crash(BaseException):
    """Stands for the process dying: not an Exception, so nothing in the agent catches it."""


def unreachable_kubeconfig(control_plane: Any, directory: Path) -> Path:
    """A copy of the admin kubeconfig naming a loopback port where no server listens."""
    with socket.socket() as s:  # a port the kernel just handed out and nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    text = Path(control_plane.kubeconfig).read_text()
    path = directory / "kubeconfig-unreachable"
    path.write_text(text.replace(control_plane.url.rstrip("/"), f"https://127.0.0.1:{port}"))
    assert path.read_text() != text
    return path


class Severed(Counting):
    """A Kube whose line to the API server is cut once the agent has listed what is live: every
    later request goes to ``dead``, a real client of a port where nothing listens."""

    def __init__(self, inner: kube.Kube, dead: kube.Kube) -> None:
        super().__init__(inner)
        self.dead = dead

    def _line(self) -> kube.Kube:
        return self.dead if self.calls.get("list") else self.inner

    def get(self, res: kube.Resource, namespace: str, name: str) -> dict[str, Any] | None:
        self._count("get")
        return self._line().get(res, namespace, name)

    def apply(
        self, res: kube.Resource, obj: dict[str, Any], manager: str, dry_run: bool = False
    ) -> dict[str, Any]:
        self._count("dry-run" if dry_run else "apply")
        return self._line().apply(res, obj, manager, dry_run)

    def delete(
        self,
        res: kube.Resource,
        namespace: str,
        name: str,
        uid: str,
        resource_version: str,
        propagation: str = "Background",
    ) -> None:
        self._count("delete")
        self._line().delete(res, namespace, name, uid, resource_version, propagation)

    def create(self, res: kube.Resource, namespace: str, obj: dict[str, Any]) -> dict[str, Any]:
        self._count("create")
        return self._line().create(res, namespace, obj)


def metric(agent: Agent, name: str) -> float:
    """The value of an unlabelled metric the agent exposes (AssertionError if there is none)."""
    for line in agent.metrics.text().decode().splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    raise AssertionError(f"no metric {name}")


class Poller:
    """A thread that calls ``tick`` every 50 ms while the ``with`` block runs (a stand-in for a
    controller envtest does not run)."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join()

    def _run(self) -> None:
        while not self.stop.wait(0.05):
            self.tick()

    def tick(self) -> None:
        raise NotImplementedError
