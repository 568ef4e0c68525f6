"""The app factory: wires settings, the Kubernetes client, caches and services into one FastAPI app.

Run with `uvicorn --factory dpkube.api.main:app_from_env`; every piece of state lives in the API server.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from dpkube.api import logs
from dpkube.api.auth import Authenticator
from dpkube.api.errors import UI_PREFIX, install_error_handlers
from dpkube.api.limits import BodyLimitMiddleware
from dpkube.api.metrics import ApiMetrics, MetricsMiddleware
from dpkube.api.routes import dioptra, health, lomas, ui
from dpkube.api.services.budgets import BudgetView
from dpkube.api.services.compute import Compute
from dpkube.api.services.dashboard import Dashboard
from dpkube.api.services.datasets import Datasets
from dpkube.api.services.dioptra import Dioptra
from dpkube.api.services.endings import Endings
from dpkube.api.services.feed import query_feed
from dpkube.api.services.history import History
from dpkube.api.services.lomas import Lomas
from dpkube.api.services.lomas_queue import LomasQueue
from dpkube.api.services.queries import Queries
from dpkube.api.services.quotas import InFlight, RateLimiter
from dpkube.api.settings import ApiSettings
from dpkube.api.ui.pages import STATIC
from dpkube.engine.pool import WorkerPool
from dpkube.k8s.budgets import GRANT_SELECTOR
from dpkube.k8s.client import KubeClient, KubeConfig, core_path
from dpkube.k8s.informer import Informer
from dpkube.models.kinds import DATASET, QUEUE

CACHE_SYNC_SECONDS = 10.0
JOB_MODULES = ("dpkube.api.services.compute", "dpkube.api.services.dioptra.workflows",
               "dpkube.api.services.dioptra.plugins")
"""Modules of the facade's pool jobs: preloaded too, so that no first job waits for them."""


def worker_pool(settings: ApiSettings) -> WorkerPool:
    """The pool that prices and validates requests, as the settings size it."""
    return WorkerPool(workers=settings.pool_workers, timeout=settings.pool_timeout_seconds,
                      max_queued=settings.pool_max_queued, preload=[*settings.pool_preload, *JOB_MODULES])


def create_app(settings: ApiSettings, client: KubeClient | None = None, pool: WorkerPool | None = None) -> FastAPI:
    """The facade for one API server; `client` and `pool` are owned (started and closed) by the app only when
    created here."""
    owned_client, owned_pool = client is None, pool is None
    kube = client or KubeClient(KubeConfig.load(settings.kubeconfig))
    workers = pool or worker_pool(settings)
    informers: list[Informer] = []
    grants = datasets = dpqueries = queues = None
    if settings.cache:
        grants = Informer(kube, core_path("configmaps", settings.system_namespace), label_selector=GRANT_SELECTOR,
                          watch_timeout_seconds=settings.watch_timeout_seconds)
        datasets = Informer(kube, DATASET.api_path(settings.system_namespace),
                            watch_timeout_seconds=settings.watch_timeout_seconds)
        dpqueries = query_feed(kube, settings.query_namespace, settings.watch_timeout_seconds)
        informers = [grants, datasets, dpqueries]
        if settings.lomas_queue:
            queues = Informer(kube, QUEUE.api_path(settings.system_namespace),
                              watch_timeout_seconds=settings.watch_timeout_seconds)
            informers.append(queues)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if owned_pool:
            await workers.start()
        for informer in informers:
            informer.start()
        for informer in informers:
            await informer.wait_synced(CACHE_SYNC_SECONDS)
        try:
            yield
        finally:
            for informer in informers:
                await informer.stop()
            if owned_pool:
                await workers.close()
            if owned_client:
                await kube.close()

    app = FastAPI(
        title="dpkube",
        summary="Differentially private queries on Kubernetes, through the Lomas 0.3 API.",
        version="0.1.0",
        lifespan=lifespan,
    )
    metrics = ApiMetrics()
    dataset_view = Datasets(kube, settings.system_namespace, datasets)
    budget_view = BudgetView(kube, settings.system_namespace, grants)
    compute = Compute(workers, settings.pool_jobs_per_user)
    in_flight = InFlight(kube, settings.query_namespace, settings.max_queries_in_flight, dpqueries)
    lomas_queue = LomasQueue(kube, settings.system_namespace, settings.lomas_queue, queues) \
        if settings.lomas_queue else None
    queries = Queries(kube, settings.query_namespace, dataset_view, budget_view, settings.query_wait_seconds,
                      on_end=metrics.query_ended, in_flight=in_flight,
                      endings=Endings(kube, settings.query_namespace, dpqueries), queue=lomas_queue)
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.informers = informers
    app.state.pool = workers
    app.state.authenticator = Authenticator(kube, settings)
    app.state.rates = RateLimiter(settings.requests_per_second, settings.request_burst)
    app.state.lomas = Lomas(dataset_view, budget_view, queries, History(kube, settings.query_namespace, dpqueries),
                            compute, settings.max_dummy_rows)
    app.state.dioptra = Dioptra.over(kube, settings.query_namespace, settings.system_namespace, compute, in_flight)
    app.state.dashboard = Dashboard(kube, settings.query_namespace, settings.system_namespace, app.state.dioptra,
                                    feed=dpqueries, grants=grants)
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(lomas.router)
    app.include_router(dioptra.router)
    app.include_router(ui.router)
    app.mount(f"{UI_PREFIX}/static", StaticFiles(directory=STATIC), name="ui-static")
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app


def app_from_env() -> FastAPI:
    """The app as deployed: settings from DPKUBE_* variables, JSON logs."""
    settings = ApiSettings()
    logs.configure(settings.log_level)
    return create_app(settings)
