"""The Kubernetes API as the agent uses it: the only module that imports the ``kubernetes`` package.

The package is used for what it does well (kubeconfig and in-cluster credentials, token refresh,
TLS, the connection pool); requests are plain JSON over its REST client, so an object is a dict
both ways and nothing is converted into generated model classes. Errors are wrapped where they
enter, as ``KubeError`` subclasses carrying the HTTP status and the server's own message:

    KubeError
      ├── NotFound        404 (and 410)
      ├── Conflict        409
      ├── Forbidden       401/403: RBAC; the message names the verb, resource and namespace
      ├── Invalid         400/422: the server refused the object (validation, webhook)
      ├── UnknownKind     the kind is not served by this cluster (yet: a CRD not established)
      └── Unavailable     429/5xx/connection problems: retried with backoff, then raised

Transient failures and conflicts are retried (exponential backoff, a few attempts) before they
are raised, so one overloaded moment of the API server does not fail a reconcile.
"""

from __future__ import annotations

import builtins
import json
import os
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import urllib3
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes.config.config_exception import ConfigException

from generator.core.errors import GenError

Obj = dict[str, Any]

RETRIES = 5
"""Attempts for a request that meets a transient failure or a conflict."""
BACKOFF = 0.2
"""Seconds before the first retry; doubled each time."""
CONNECT_TIMEOUT = 5.0
"""Seconds to wait for a TCP connection. A server that drops packets (a blackholed address, a
firewall) would otherwise hold every attempt for the whole request timeout."""


class KubeError(GenError):
    """An API request failed; ``status`` is the HTTP status (0 when no answer came)."""

    def __init__(self, message: str, status: int = 0, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


class NotFound(KubeError):
    """The object (or the resource) does not exist."""


class Conflict(KubeError):
    """A precondition or resourceVersion did not hold (or the object is being changed)."""


class Forbidden(KubeError):
    """RBAC refused the request."""


class Invalid(KubeError):
    """The server refused the object (schema validation, admission webhook, immutable field);
    ``causes`` are the server's ``details.causes`` as (field, message)."""

    def __init__(
        self, message: str, status: int = 0, reason: str = "", causes: tuple[Cause, ...] = ()
    ) -> None:
        super().__init__(message, status, reason)
        self.causes = causes


Cause = tuple[str, str]


class UnknownKind(KubeError):
    """The cluster does not serve this apiVersion/kind."""


class Unavailable(KubeError):
    """The API server did not answer usefully (overloaded, restarting, unreachable)."""


@dataclass(frozen=True)
class Resource:
    """A served kind: where its objects live in the API."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str = "", name: str = "", subresource: str = "") -> str:
        """``/api/v1/namespaces/ns/configmaps/name`` and the like."""
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{urllib.parse.quote(namespace)}"
        base += f"/{self.plural}"
        if name:
            base += f"/{urllib.parse.quote(name)}"
        return f"{base}/{subresource}" if subresource else base


class Kube(Protocol):
    """What the agent needs of the API server (``Client`` is the real one; tests wrap it)."""

    def resource(self, api_version: str, kind: str) -> Resource: ...

    def forget(self) -> None: ...

    def get(self, res: Resource, namespace: str, name: str) -> Obj | None: ...

    def list(self, res: Resource, namespace: str, selector: str = "") -> list[Obj]: ...

    def apply(self, res: Resource, obj: Obj, manager: str, dry_run: bool = False) -> Obj: ...

    def delete(
        self,
        res: Resource,
        namespace: str,
        name: str,
        uid: str,
        resource_version: str,
        propagation: str = "Background",
    ) -> None: ...

    def create(self, res: Resource, namespace: str, obj: Obj) -> Obj: ...


class Client:
    """A thread-safe client: discovery cached per group-version, retries with backoff."""

    def __init__(
        self, api: Any, timeout: float = 30.0, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self._api = api
        self._timeout = timeout
        self._sleep = sleep
        self._lock = threading.Lock()
        self._discovered: dict[str, dict[str, Resource]] = {}

    # -- discovery ---------------------------------------------------------------------------------

    def resource(self, api_version: str, kind: str) -> Resource:
        """The resource serving ``kind`` in ``api_version``; UnknownKind if the cluster has none."""
        found = self._group_version(api_version).get(kind)
        if found is None:
            self._forget(api_version)
            found = self._group_version(api_version).get(kind)
        if found is None:
            raise UnknownKind(
                f"the cluster serves no kind {kind} in {api_version} (a CRD not installed or "
                "not established yet?)",
                404,
            )
        return found

    def forget(self) -> None:
        """Drop cached discovery (after CRDs were applied)."""
        with self._lock:
            self._discovered.clear()

    def _forget(self, api_version: str) -> None:
        with self._lock:
            self._discovered.pop(api_version, None)

    def _group_version(self, api_version: str) -> dict[str, Resource]:
        with self._lock:
            cached = self._discovered.get(api_version)
        if cached is not None:
            return cached
        group, _, version = api_version.rpartition("/")
        try:
            body = self._request("GET", f"/apis/{api_version}" if group else f"/api/{version}")
        except NotFound:
            body = {"resources": []}
        found = {
            r["kind"]: Resource(group, version, r["kind"], r["name"], bool(r.get("namespaced")))
            for r in body.get("resources", [])
            if "/" not in r.get("name", "/")
        }
        with self._lock:
            self._discovered[api_version] = found
        return found

    # -- objects -----------------------------------------------------------------------------------

    def get(self, res: Resource, namespace: str, name: str) -> Obj | None:
        """The object, or None if it does not exist."""
        try:
            return self._request("GET", res.path(namespace, name))
        except NotFound:
            return None

    def list(self, res: Resource, namespace: str, selector: str = "") -> builtins.list[Obj]:
        """Every object of ``res`` in ``namespace``
        (all namespaces if empty) matching ``selector``."""
        query = [("labelSelector", selector)] if selector else []
        items: builtins.list[Obj] = []
        while True:
            body = self._request("GET", res.path(namespace), [*query, ("limit", "500")])
            for item in body.get("items", []):
                items.append({"apiVersion": res.api_version, "kind": res.kind, **item})
            token = (body.get("metadata") or {}).get("continue")
            if not token:
                return items
            query = [q for q in query if q[0] != "continue"] + [("continue", token)]

    def apply(self, res: Resource, obj: Obj, manager: str, dry_run: bool = False) -> Obj:
        """Server-side apply ``obj`` (forcing conflicts) as ``manager``;
        the object the server holds after."""
        meta = obj["metadata"]
        query = [("fieldManager", manager), ("force", "true")] + (
            [("dryRun", "All")] if dry_run else []
        )
        return self._request(
            "PATCH",
            res.path(meta.get("namespace", ""), meta["name"]),
            query,
            obj,
            "application/apply-patch+yaml",
        )

    def delete(
        self,
        res: Resource,
        namespace: str,
        name: str,
        uid: str,
        resource_version: str,
        propagation: str = "Background",
    ) -> None:
        """Delete exactly the object that was read (uid and resourceVersion preconditions);
        its dependents go in the background, or stay (``propagation="Orphan"``)."""
        preconditions = {
            k: v for k, v in (("uid", uid), ("resourceVersion", resource_version)) if v
        }
        body = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "propagationPolicy": propagation,
            "preconditions": preconditions,
        }
        try:
            self._request("DELETE", res.path(namespace, name), body=body, retry_conflicts=False)
        except NotFound:
            return

    def create(self, res: Resource, namespace: str, obj: Obj) -> Obj:
        """POST a new object (Events)."""
        return self._request("POST", res.path(namespace), body=obj)

    def update_status(self, res: Resource, obj: Obj) -> Obj:
        """PUT the ``/status`` subresource (tests play the controllers envtest lacks)."""
        meta = obj["metadata"]
        return self._request(
            "PUT", res.path(meta.get("namespace", ""), meta["name"], "status"), body=obj
        )

    # -- transport ---------------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        query: Iterable[tuple[str, str]] = (),
        body: Any = None,
        content_type: str = "application/json",
        retry_conflicts: bool = True,
    ) -> Obj:
        delay = BACKOFF
        for attempt in range(1, RETRIES + 1):
            try:
                return self._once(method, path, list(query), body, content_type)
            except (Unavailable, Conflict) as e:
                if attempt == RETRIES or (isinstance(e, Conflict) and not retry_conflicts):
                    raise
                self._sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")

    def _once(
        self,
        method: str,
        path: str,
        query: builtins.list[tuple[str, str]],
        body: Any,
        content_type: str,
    ) -> Obj:
        _, url, headers, _, _ = self._api.param_serialize(
            method,
            path,
            query_params=query or None,
            header_params={"Accept": "application/json", "Content-Type": content_type},
            auth_settings=["BearerToken"],
        )
        try:
            response = self._api.call_api(
                method,
                url,
                header_params=headers,
                body=body,
                _request_timeout=(min(CONNECT_TIMEOUT, self._timeout), self._timeout),
            )
            data = response.read()
        except (urllib3.exceptions.HTTPError, OSError, k8s_client.ApiException) as e:
            raise Unavailable(f"{method} {path}: the API server cannot be reached: {e}") from e
        if 200 <= response.status < 300:
            answer: Obj = json.loads(data) if data else {}  # the API server answers with objects
            return answer
        raise _error(method, path, response.status, data)


def _error(method: str, path: str, status: int, data: bytes) -> KubeError:
    causes: tuple[Cause, ...] = ()
    try:
        body = json.loads(data)
        message, reason = str(body.get("message", "")), str(body.get("reason", ""))
        causes = tuple(
            (str(c.get("field", "")), str(c.get("message", "")))
            for c in (body.get("details") or {}).get("causes") or []
            if isinstance(c, dict)
        )
    except (ValueError, AttributeError):
        message, reason = data[:300].decode("utf-8", "replace"), ""
    text = f"{method} {path}: {status} {reason}: {message}".replace(": : ", ": ")
    kind: type[KubeError]
    if status in (404, 410):
        kind = NotFound
    elif status == 409:
        kind = Conflict
    elif status in (401, 403):
        kind = Forbidden
    elif status in (400, 422):
        return Invalid(text, status, reason, causes)
    elif status == 429 or status >= 500:
        kind = Unavailable
    else:
        kind = KubeError
    return kind(text, status, reason)


def connect(
    kubeconfig: Path | None = None, context: str | None = None, timeout: float = 30.0
) -> Client:
    """A client with the given kubeconfig, else in-cluster credentials in a pod,
    else the default kubeconfig."""
    configuration = k8s_client.Configuration()
    try:
        if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
            # (here and below) kubernetes' config loaders carry no annotations
            k8s_config.load_incluster_config(  # type: ignore[no-untyped-call]
                client_configuration=configuration
            )
        else:
            k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=str(kubeconfig) if kubeconfig else None,
                context=context,
                client_configuration=configuration,
                persist_config=False,
            )
    except (ConfigException, OSError, ValueError, TypeError) as e:
        where = kubeconfig or "in-cluster credentials / the default kubeconfig"
        raise KubeError(f"cannot load Kubernetes credentials from {where}: {e}") from e
    configuration.connection_pool_maxsize = 32
    # Client retries requests itself (RETRIES, with backoff); urllib3's own retries (3 by default)
    # would multiply every attempt against a server that does not answer by four.
    configuration.retries = 0
    return Client(k8s_client.ApiClient(configuration), timeout)
