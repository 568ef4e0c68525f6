"""Operator start-up and shutdown: kopf's settings, then every part assembled before any handler runs."""

from __future__ import annotations

import logging
from typing import Any

import kopf

from dpkube.k8s.client import KubeConfig
from dpkube.operator.components import assemble, shutdown
from dpkube.operator.settings import OperatorSettings


@kopf.on.login()
def login(**_: Any) -> kopf.ConnectionInfo:
    """Authenticate kopf exactly as our own client does (kubeconfig or in-cluster account)."""
    config = KubeConfig.load()
    return kopf.ConnectionInfo(
        server=config.server,
        ca_path=config.ca_file,
        insecure=config.insecure,
        token=config.bearer(),
        certificate_path=config.client_cert,
        private_key_path=config.client_key,
        default_namespace=config.namespace,
    )


class NoDiffBase(kopf.DiffBaseStorage):
    """Every handler here is an event handler, so kopf's diff base (a deep copy of each body, built on every
    event, to detect changes for change handlers) is never read: none is built or stored."""

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> kopf.BodyEssence | None:  # type: ignore[override]
        return None

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None


WORKER_IDLE_SECONDS = 0.5
"""How long an object's kopf worker waits for its next event before it exits (kopf's default is 5 s)."""


@kopf.on.startup()
async def start(settings: kopf.OperatorSettings, memo: kopf.Memo, logger: logging.Logger | logging.LoggerAdapter[Any],
                **_: Any) -> None:
    config: OperatorSettings = memo.config
    settings.posting.enabled = False  # our own Events say what happened; kopf's would double them
    settings.scanning.disabled = True  # the CRDs come before the operator; no need to watch (or read) all CRDs
    settings.watching.server_timeout = config.watch_timeout_seconds
    settings.watching.client_timeout = config.watch_timeout_seconds + 30
    settings.networking.request_timeout = 60
    settings.persistence.diffbase_storage = NoDiffBase()
    # A worker per object, unbounded: with a bound, a backlog arriving at once takes every worker, each
    # lingering idle_timeout after its event, and a lone query elsewhere waits for one (kopf's default
    # 5 s idle with 256 workers held a lone query 19 s behind 1000 arrivals). Waiting queries' writes go
    # through a narrow lane of the API client, so many workers do not mean many requests at once.
    settings.batching.worker_limit = None
    settings.batching.idle_timeout = WORKER_IDLE_SECONDS
    memo.parts = await assemble(config)
    memo.client, memo.registry, memo.reconciler = memo.parts.client, memo.parts.registry, memo.parts.reconciler
    memo.scheduler, memo.cascade = memo.parts.scheduler, memo.parts.cascade
    logger.info("dpkube operator started with %d known queries", len(memo.registry.entries))


@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_: Any) -> None:
    if getattr(memo, "parts", None) is not None:
        await shutdown(memo.parts)
