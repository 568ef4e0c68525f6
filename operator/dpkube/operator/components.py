"""The operator's parts, built once at start-up and wired to each other: one function to read, not a handler.

The DP libraries are imported only by the pricing pool's worker processes, never by the operator
itself, so its memory stays that of a controller.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from dpkube.engine.libraries import MODULES
from dpkube.engine.pool import WorkerPool
from dpkube.k8s.budgets import Budgets
from dpkube.k8s.caps import ExperimentCaps
from dpkube.k8s.client import KubeClient, KubeConfig
from dpkube.k8s.datasets import Datasets
from dpkube.k8s.events import EventRecorder
from dpkube.k8s.informer import Informer
from dpkube.k8s.snapshots import Snapshots
from dpkube.models.kinds import DATASET, QUEUE
from dpkube.operator.admission import Admission
from dpkube.operator.channel import Channel
from dpkube.operator.endings import Endings
from dpkube.operator.experiments import ExperimentCascade
from dpkube.operator.launcher import Launcher
from dpkube.operator.metrics import count_request
from dpkube.operator.pod_feed import PodFeed
from dpkube.operator.podkeys import PodKeys
from dpkube.operator.query_feed import QueryFeed
from dpkube.operator.reconciler import Reconciler, utc_now
from dpkube.operator.registry import Registry
from dpkube.operator.scheduler import Scheduler
from dpkube.operator.settings import OperatorSettings
from dpkube.operator.warm import WarmPools

COMPONENT = "dpkube-operator"
PRICING_QUEUE = 100_000
"""A burst waits its turn for a pricing worker rather than being turned away: each waiting job is a few
hundred bytes, and a time limit still bounds every job."""
API_CONNECTIONS = 8
"""Connections to the API server (one holds the Dataset watch). `bench.kube_client` with 32 requests in
flight: a pool of 32 costs a GET 0.8x the CPU of a pool of 8, but serves PATCHes of one object
at 0.44x the rate (more writes collide in the API server at once)."""
BACKGROUND_REQUESTS = 2
"""Connections that Events and the answers to waiting queries (their reason, their place in line) may hold at
once: a backlog of thousands arriving in a locked queue is answered at that pace, while a lone query elsewhere
finds the other connections free instead of queueing behind the backlog's writes."""


@dataclass
class Components:
    client: KubeClient
    registry: Registry
    reconciler: Reconciler
    scheduler: Scheduler
    cascade: ExperimentCascade
    events: EventRecorder
    pricing: WorkerPool
    dataset_feed: Informer
    watches: KubeClient
    """The feeds' connections, one per watch."""
    query_feed: QueryFeed
    pod_feed: PodFeed
    warm: WarmPools
    scheduler_task: asyncio.Task[Any] | None = None
    channel: web.AppRunner | None = None


async def assemble(config: OperatorSettings) -> Components:
    """Every part, the registry filled by a full listing of the served namespaces (the DPQuery feed's first),
    the channel serving."""
    client = KubeClient(KubeConfig.load(), max_connections=API_CONNECTIONS, user_agent=COMPONENT, observe=count_request)
    registry = Registry()
    pricing = WorkerPool(workers=config.pricing_workers, timeout=config.pricing_timeout_seconds,
                         max_queued=PRICING_QUEUE, preload=("dpkube.engine.cost", *MODULES.values()))
    await pricing.start()
    background = client.lane(BACKGROUND_REQUESTS)
    events = EventRecorder(background, COMPONENT)
    budgets = Budgets(client, config.system_namespace)
    dataset_feed = Informer(client, DATASET.api_path(config.system_namespace))
    dataset_feed.start()
    await dataset_feed.wait_synced(30.0)
    datasets = Datasets(client, config.system_namespace, dataset_feed)
    snapshots = Snapshots(client, config.system_namespace)
    keys = PodKeys()
    warm = WarmPools(client, config, keys)
    launcher = Launcher(client, config, datasets, snapshots, registry, keys, warm)
    warm.isolate = launcher.isolate
    endings = Endings(client, budgets, events, registry, utc_now, config.result_inline_max_bytes,
                      on_cleaned=launcher.forget_copies)
    admission = Admission(client, config.system_namespace, registry, datasets, snapshots, budgets, pricing)
    reconciler = Reconciler(client, registry, events, admission, launcher, endings, background=background)
    cascade = ExperimentCascade(client, registry, ExperimentCaps(budgets))
    scheduler = Scheduler(client, registry, reconciler, budgets, config.system_namespace, cascade,
                          audit_interval=config.ledger_audit_seconds, warm=warm,
                          warm_namespaces=set(config.warm_namespaces))
    for item in await client.list_all(QUEUE.api_path(config.system_namespace)):
        scheduler.queues[item["metadata"]["name"]] = item.get("spec") or {}
    watches = KubeClient(KubeConfig.load(), max_connections=2 * max(1, len(config.namespaces)), user_agent=COMPONENT,
                         observe=count_request)
    query_feed = QueryFeed(watches, config.namespaces, registry, reconciler, config.watch_timeout_seconds)
    query_feed.start()
    await query_feed.wait_listed()
    pod_feed = PodFeed(watches, config.namespaces, reconciler, config.watch_timeout_seconds)
    pod_feed.start()
    parts = Components(client, registry, reconciler, scheduler, cascade, events, pricing, dataset_feed, watches,
                       query_feed, pod_feed, warm)
    parts.scheduler_task = asyncio.create_task(scheduler.run(config.sweep_interval_seconds))
    channel = Channel(client, reconciler, warm, keys, config.result_max_bytes)
    parts.channel = await channel.serve(config.claim_listen, healthy=scheduler.healthy)
    return parts


async def shutdown(parts: Components) -> None:
    if parts.scheduler_task is not None:
        parts.scheduler_task.cancel()
    await parts.warm.stop()  # before the channel closes: it waits for the requests it holds, warm pods' polls too
    if parts.channel is not None:
        await parts.channel.cleanup()
    await parts.pod_feed.stop()
    await parts.query_feed.stop()
    await parts.watches.close()
    await parts.reconciler.stop()
    await parts.events.drain()
    await parts.dataset_feed.stop()
    await parts.pricing.close()
    await parts.client.close()
