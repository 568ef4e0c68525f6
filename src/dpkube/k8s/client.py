"""A thin asynchronous Kubernetes API client over aiohttp: REST verbs, typed API errors, watches.

aiohttp, not httpx: a request costs this process about a fifth of the CPU here (`python -m bench.kube_client`),
and the operator's rate is bound by its CPU per API call.

It knows paths and JSON, not kinds: callers build paths (see `dpkube.models.crd.Kind.api_path`).
Conflicts surface as `Conflict`, so resourceVersion-conditioned updates can retry explicitly.
"""

from __future__ import annotations

import asyncio
import base64
import builtins
import copy
import json
import os
import ssl
import tempfile
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
# A pod run as a local process by the node agent cannot see /var/run/secrets: the agent names its folder here.
SERVICE_ACCOUNT_DIR_ENV = "DPKUBE_SERVICEACCOUNT_DIR"


def service_account_dir() -> Path:
    """Where this pod's service-account token, CA and namespace are: the agent's folder, else the standard one."""
    override = os.environ.get(SERVICE_ACCOUNT_DIR_ENV)
    return Path(override) if override else SERVICE_ACCOUNT_DIR


class ApiError(Exception):
    """The API server refused a request; `status`, `reason` and `message` come from its Status body."""

    def __init__(self, status: int, reason: str, message: str, body: Mapping[str, Any] | None = None):
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message
        self.body = dict(body or {})


class NotFound(ApiError):
    pass


class Conflict(ApiError):
    """A resourceVersion precondition failed (or, with reason AlreadyExists, the name is taken)."""

    @property
    def already_exists(self) -> bool:
        return self.reason == "AlreadyExists"


class Forbidden(ApiError):
    pass


class Invalid(ApiError):
    """The object failed validation (schema, CEL rule or admission policy)."""


class Gone(ApiError):
    """A watch's resourceVersion is too old; list again."""


class Unreachable(Exception):
    """No answer: the API server could not be reached, timed out, or dropped the connection."""


_ERRORS: dict[int, type[ApiError]] = {404: NotFound, 409: Conflict, 403: Forbidden, 422: Invalid, 410: Gone}
TRANSPORT_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError)


def _error(status: int, content: bytes) -> ApiError:
    try:
        body = json.loads(content)
        if not isinstance(body, dict):
            raise ValueError(body)
    except ValueError:
        body = {"message": content[:1000].decode(errors="replace")}
    cls = _ERRORS.get(status, ApiError)
    return cls(status, body.get("reason", ""), body.get("message", ""), body)


@dataclass(frozen=True)
class KubeConfig:
    """How to reach and authenticate to one API server."""

    server: str
    ca_file: str | None = None
    token: str | None = None
    token_file: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    insecure: bool = False
    namespace: str = "default"

    @classmethod
    def from_kubeconfig(cls, path: str | Path, context: str | None = None) -> KubeConfig:
        """Read a kubeconfig file (token or client-certificate users; file or inline data)."""
        config = yaml.safe_load(Path(path).read_text())
        ctx_name = context or config.get("current-context")
        ctx = next(c["context"] for c in config["contexts"] if c["name"] == ctx_name)
        cluster = next(c["cluster"] for c in config["clusters"] if c["name"] == ctx["cluster"])
        user: dict[str, Any] = next((u["user"] for u in config.get("users", []) if u["name"] == ctx.get("user")), {})
        base = Path(path).parent

        def materialise(file_key: str, data_key: str, section: Mapping[str, Any]) -> str | None:
            if section.get(data_key):
                with tempfile.NamedTemporaryFile(delete=False, prefix="dpkube-kubeconfig-") as handle:
                    handle.write(base64.b64decode(section[data_key]))
                return handle.name
            if section.get(file_key):
                return str(base / section[file_key])
            return None

        return cls(
            server=cluster["server"],
            ca_file=materialise("certificate-authority", "certificate-authority-data", cluster),
            token=user.get("token"),
            token_file=user.get("tokenFile"),
            client_cert=materialise("client-certificate", "client-certificate-data", user),
            client_key=materialise("client-key", "client-key-data", user),
            insecure=bool(cluster.get("insecure-skip-tls-verify")),
            namespace=ctx.get("namespace", "default"),
        )

    @classmethod
    def in_cluster(cls) -> KubeConfig:
        """The pod's own service account (token re-read on each client start: it rotates)."""
        host, port = os.environ["KUBERNETES_SERVICE_HOST"], os.environ["KUBERNETES_SERVICE_PORT"]
        folder = service_account_dir()
        return cls(
            server=f"https://{host}:{port}",
            ca_file=str(folder / "ca.crt"),
            token_file=str(folder / "token"),
            namespace=(folder / "namespace").read_text().strip(),
        )

    @classmethod
    def load(cls, kubeconfig: str | None = None) -> KubeConfig:
        """From an explicit file, $KUBECONFIG, the in-cluster account, or ~/.kube/config, in that order."""
        if kubeconfig or os.environ.get("KUBECONFIG"):
            return cls.from_kubeconfig(kubeconfig or os.environ["KUBECONFIG"].split(os.pathsep)[0])
        if os.environ.get("KUBERNETES_SERVICE_HOST") and service_account_dir().exists():
            return cls.in_cluster()
        return cls.from_kubeconfig(Path.home() / ".kube" / "config")

    def with_token(self, token: str) -> KubeConfig:
        """The same server, authenticated as someone else (tests acting as distinct users)."""
        return KubeConfig(self.server, self.ca_file, token, None, None, None, self.insecure, self.namespace)

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.ca_file)
        if self.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if self.client_cert and self.client_key:
            context.load_cert_chain(self.client_cert, self.client_key)
        return context

    def bearer(self) -> str | None:
        if self.token:
            return self.token
        if self.token_file:
            return Path(self.token_file).read_text().strip()
        return None


CONNECT_SECONDS = 10.0
"""How long a new connection to the API server may take. A request waiting for a pooled connection has no
time limit (aiohttp's `connect` and `total` would count that wait): under a burst the pool is a queue, and
its requests must wait their turn, not fail; a server that stops answering is caught by `sock_read`."""


class KubeClient:
    """REST verbs on API paths; one connection pool per client, opened on its first request."""

    def __init__(self, config: KubeConfig, *, timeout: float = 30.0, max_connections: int = 50,
                 user_agent: str = "dpkube", observe: Callable[[str, str], None] | None = None):
        self.config = config
        self.observe = observe
        """Called with (method, path) before every request (a component counting its API calls)."""
        self._server = config.server.rstrip("/")
        self._headers = {"Accept": "application/json", "User-Agent": user_agent}
        if token := config.bearer():
            self._headers["Authorization"] = f"Bearer {token}"
        self._timeout = timeout
        self._pool = _Pool(max_connections, config.ssl_context() if self._server.startswith("https:") else False)
        self._turns: asyncio.Semaphore | None = None
        """A lane's turns (see `lane`); None for the client itself."""

    def lane(self, concurrency: int) -> KubeClient:
        """This client's connections, of which the lane's requests hold at most `concurrency` at once (waiting
        for a turn outside the pool). Background work sent through a lane (Events, answers to queries that
        wait) then never queues ahead of the foreground by more than that. Closing the client closes it."""
        lane = copy.copy(self)
        lane._turns = asyncio.Semaphore(concurrency)
        return lane

    def _http(self) -> aiohttp.ClientSession:
        """The session, made inside the running event loop (aiohttp binds it to that loop)."""
        if self._pool.session is None:
            self._pool.session = aiohttp.ClientSession(
                headers=self._headers,
                connector=aiohttp.TCPConnector(limit=self._pool.connections, ssl=self._pool.ssl),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_SECONDS, sock_read=self._timeout),
                raise_for_status=False,
            )
        return self._pool.session

    async def __aenter__(self) -> KubeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._pool.session is not None:
            await self._pool.session.close()
            self._pool.session = None

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, Any] | None = None,
        content_type: str = "application/json",
        answer: bool = True,
    ) -> dict[str, Any]:
        """The response's object; with `answer=False` it is not parsed (`{}`): a caller that ignores it saves
        decoding it (a created pod comes back whole, several KiB)."""
        if self.observe is not None:
            self.observe(method, path)
        if self._turns is not None:
            async with self._turns:
                return await self._send(method, path, body, params, content_type, answer)
        return await self._send(method, path, body, params, content_type, answer)

    async def _send(self, method: str, path: str, body: Any, params: Mapping[str, Any] | None,
                    content_type: str, answer: bool = True) -> dict[str, Any]:
        try:
            async with self._http().request(
                method,
                self._server + path,
                data=None if body is None else json.dumps(body),
                params=_query(params),
                headers={"Content-Type": content_type} if body is not None else None,
            ) as response:
                content = await response.read()
        except TRANSPORT_ERRORS as exc:
            raise Unreachable(f"{method} {path}: {exc!r}") from exc
        if response.status >= 400:
            raise _error(response.status, content)
        return json.loads(content) if content and answer else {}

    async def get(self, path: str) -> dict[str, Any]:
        return await self.request("GET", path)

    async def list(
        self, path: str, *, label_selector: str | None = None, field_selector: str | None = None,
        limit: int | None = None, continue_token: str | None = None,
    ) -> dict[str, Any]:
        return await self.request("GET", path, params={
            "labelSelector": label_selector, "fieldSelector": field_selector,
            "limit": limit, "continue": continue_token,
        })

    async def list_all(self, path: str, **selectors: str | None) -> builtins.list[dict[str, Any]]:
        """Every item of a collection, following `continue` pages."""
        items: builtins.list[dict[str, Any]] = []
        token: str | None = None
        while True:
            page = await self.list(path, limit=500, continue_token=token, **selectors)
            items += page.get("items", [])
            token = page.get("metadata", {}).get("continue")
            if not token:
                return items

    async def create(self, path: str, body: Mapping[str, Any], *, answer: bool = True) -> dict[str, Any]:
        return await self.request("POST", path, body=body, answer=answer)

    async def replace(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """PUT; with `metadata.resourceVersion` set it succeeds only if nobody wrote in between."""
        return await self.request("PUT", path, body=body)

    async def patch(self, path: str, body: Any, *, kind: str = "merge") -> dict[str, Any]:
        content_type = {
            "merge": "application/merge-patch+json",
            "json": "application/json-patch+json",
            "strategic": "application/strategic-merge-patch+json",
        }[kind]
        return await self.request("PATCH", path, body=body, content_type=content_type)

    async def delete(
        self, path: str, *, uid: str | None = None, grace_seconds: int | None = None,
        propagation: str | None = None,
    ) -> dict[str, Any]:
        options: dict[str, Any] = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if uid:
            options["preconditions"] = {"uid": uid}
        if grace_seconds is not None:
            options["gracePeriodSeconds"] = grace_seconds
        if propagation:
            options["propagationPolicy"] = propagation
        return await self.request("DELETE", path, body=options)

    async def watch(
        self, path: str, *, resource_version: str | None = None, label_selector: str | None = None,
        field_selector: str | None = None, timeout_seconds: int = 300,
    ) -> AsyncIterator[dict[str, Any]]:
        """Yield watch events ({type, object}) until the server closes the stream."""
        params = {
            "watch": "1", "resourceVersion": resource_version, "labelSelector": label_selector,
            "fieldSelector": field_selector, "timeoutSeconds": timeout_seconds,
            "allowWatchBookmarks": "true",
        }
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_SECONDS, sock_read=timeout_seconds + 30)
        try:
            async with self._http().get(self._server + path, params=_query(params), timeout=timeout) as response:
                if response.status >= 400:
                    raise _error(response.status, await response.read())
                async for line in _lines(response.content):
                    event = json.loads(line)
                    if event.get("type") == "ERROR":
                        status = event.get("object", {})
                        code = int(status.get("code", 500))
                        raise _ERRORS.get(code, ApiError)(code, status.get("reason", ""), status.get("message", ""),
                                                         status)
                    yield event
        except TRANSPORT_ERRORS as exc:
            raise Unreachable(f"watch {path}: {exc!r}") from exc


@dataclass
class _Pool:
    """The connections a client and its lanes share."""

    connections: int
    ssl: ssl.SSLContext | bool
    session: aiohttp.ClientSession | None = None


def _query(params: Mapping[str, Any] | None) -> dict[str, str]:
    return {key: (str(value).lower() if isinstance(value, bool) else str(value))
            for key, value in (params or {}).items() if value is not None}


async def _lines(stream: aiohttp.StreamReader) -> AsyncIterator[bytes]:
    """The stream's non-empty lines, however long (an event of a large ConfigMap is longer than aiohttp's line
    limit)."""
    pending = b""
    async for chunk in stream.iter_any():
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if line.strip():
                yield line
    if pending.strip():
        yield pending


def core_path(resource: str, namespace: str | None = None, name: str | None = None) -> str:
    """Path of a core (v1) resource: configmaps, pods, secrets, events, namespaces, ..."""
    base = f"/api/v1/namespaces/{namespace}/{resource}" if namespace else f"/api/v1/{resource}"
    return f"{base}/{name}" if name else base
