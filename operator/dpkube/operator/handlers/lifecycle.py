"""Operator start-up and shutdown: the API client, a full listing before any handler runs, the scheduler."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf

from dpkube.k8s.client import KubeClient, KubeConfig
from dpkube.models.crd import GROUP, VERSION
from dpkube.models.kinds import DPQUERY, QUEUE
from dpkube.operator.events import EventRecorder
from dpkube.operator.experiments import ExperimentCascade
from dpkube.operator.reconciler import Reconciler
from dpkube.operator.registry import Registry
from dpkube.operator.scheduler import Scheduler
from dpkube.operator.settings import OperatorSettings
from dpkube.operator.warm import WarmPools


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


@kopf.on.startup()
async def start(settings: kopf.OperatorSettings, memo: kopf.Memo, logger: logging.Logger, **_: Any) -> None:
    config: OperatorSettings = memo.config
    settings.posting.enabled = False  # our own Events say what happened; kopf's would double them
    settings.scanning.disabled = True  # the CRDs come before the operator; no need to watch (or read) all CRDs
    settings.watching.server_timeout = config.watch_timeout_seconds
    settings.watching.client_timeout = config.watch_timeout_seconds + 30
    settings.networking.request_timeout = 60
    settings.batching.worker_limit = 256
    client = KubeClient(KubeConfig.load(), max_connections=100)
    registry = Registry()
    # Only the served namespaces: the scheduler acts on every query it knows of.
    paths = [DPQUERY.api_path(ns) for ns in config.namespaces] or [f"/apis/{GROUP}/{VERSION}/{DPQUERY.plural}"]
    for path in paths:
        for item in await client.list_all(path):
            registry.observe(item)
    warm = WarmPools(client, config)
    reconciler = Reconciler(client, config, registry, EventRecorder(client), warm)
    warm.input_for = reconciler.runner_input_for
    warm.ensure_access = reconciler.ensure_runner_access
    cascade = ExperimentCascade(client, registry)
    scheduler = Scheduler(client, registry, reconciler, config.system_namespace, cascade,
                          audit_interval=config.ledger_audit_seconds, warm=warm,
                          warm_namespaces=set(config.warm_namespaces))
    for item in await client.list_all(QUEUE.api_path(config.system_namespace)):
        scheduler.queues[item["metadata"]["name"]] = item.get("spec") or {}
    memo.client, memo.registry, memo.reconciler, memo.scheduler = client, registry, reconciler, scheduler
    memo.cascade = cascade
    memo.scheduler_task = asyncio.create_task(scheduler.run(config.sweep_interval_seconds))
    memo.claim_server = await warm.serve(healthy=scheduler.healthy)
    logger.info("dpkube operator started with %d known queries", len(registry.entries))


@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_: Any) -> None:
    task = getattr(memo, "scheduler_task", None)
    if task is not None:
        task.cancel()
    if getattr(memo, "claim_server", None) is not None:
        await memo.claim_server.cleanup()
    if getattr(memo, "reconciler", None) is not None:
        await memo.reconciler.events.drain()
    if getattr(memo, "client", None) is not None:
        await memo.client.close()
