"""The facade served over real HTTP on loopback, in a thread with its own event loop.

Synchronous clients (the Python client, the CLI, schemathesis) need a socket to talk to, and must
not block the test's event loop, which the session's API-server client lives on.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from dpkube.api.main import create_app
from dpkube.api.settings import ApiSettings
from dpkube.controlplane.local import free_port

START_SECONDS = 30.0


@contextmanager
def served_facade(settings: ApiSettings) -> Iterator[str]:
    """Serve `create_app(settings)` (its own API-server client, from settings.kubeconfig); yield its URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning",
                                           access_log=False, lifespan="on"))
    thread = threading.Thread(target=server.run, name=f"facade-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_SECONDS
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the served facade did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def served_settings(query_namespace: str, system_namespace: str, kubeconfig: str) -> ApiSettings:
    """Settings of a served facade on the session's API server, with waits short enough for tests. Its one
    worker imports a library when a job first needs it (most tests need none), so its time limit allows for
    that; the request rate allows a property-based test's bursts."""
    return ApiSettings(query_namespace=query_namespace, system_namespace=system_namespace, query_wait_seconds=120,
                       kubeconfig=kubeconfig, pool_workers=1, pool_preload=[], pool_timeout_seconds=120,
                       requests_per_second=1000, request_burst=1000)
