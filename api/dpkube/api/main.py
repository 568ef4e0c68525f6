"""The app factory: wires settings, the Kubernetes client, caches and services into one FastAPI app.

Run with `uvicorn --factory dpkube.api.main:app_from_env`; every piece of state lives in the API server.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from dpkube.api import logs
from dpkube.api.auth import Authenticator
from dpkube.api.errors import install_error_handlers
from dpkube.api.limits import BodyLimitMiddleware
from dpkube.api.metrics import ApiMetrics, MetricsMiddleware
from dpkube.api.routes import dioptra, health, lomas
from dpkube.api.services.budgets import BudgetView
from dpkube.api.services.datasets import Datasets
from dpkube.api.services.dioptra import Dioptra
from dpkube.api.services.history import History
from dpkube.api.services.lomas import Lomas
from dpkube.api.services.queries import Queries
from dpkube.api.settings import ApiSettings
from dpkube.k8s.budgets import GRANT_SELECTOR
from dpkube.k8s.client import KubeClient, KubeConfig, core_path
from dpkube.k8s.informer import Informer
from dpkube.models.kinds import DATASET

CACHE_SYNC_SECONDS = 10.0


def create_app(settings: ApiSettings, client: KubeClient | None = None) -> FastAPI:
    """The facade for one API server; `client` is owned (and closed) by the app only when created here."""
    owned = client is None
    kube = client or KubeClient(KubeConfig.load(settings.kubeconfig))
    informers: list[Informer] = []
    grants = datasets = None
    if settings.cache:
        grants = Informer(kube, core_path("configmaps", settings.system_namespace), label_selector=GRANT_SELECTOR,
                          watch_timeout_seconds=settings.watch_timeout_seconds)
        datasets = Informer(kube, DATASET.api_path(settings.system_namespace),
                            watch_timeout_seconds=settings.watch_timeout_seconds)
        informers = [grants, datasets]

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for informer in informers:
            informer.start()
        for informer in informers:
            await informer.wait_synced(CACHE_SYNC_SECONDS)
        try:
            yield
        finally:
            for informer in informers:
                await informer.stop()
            if owned:
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
    queries = Queries(kube, settings.query_namespace, dataset_view, budget_view, settings.query_wait_seconds,
                      on_end=metrics.query_ended)
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.informers = informers
    app.state.authenticator = Authenticator(kube, settings)
    app.state.lomas = Lomas(dataset_view, budget_view, queries, History(kube, settings.query_namespace))
    app.state.dioptra = Dioptra.over(kube, settings.query_namespace, settings.system_namespace)
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(lomas.router)
    app.include_router(dioptra.router)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app


def app_from_env() -> FastAPI:
    """The app as deployed: settings from DPKUBE_* variables, JSON logs."""
    settings = ApiSettings()
    logs.configure(settings.log_level)
    return create_app(settings)
