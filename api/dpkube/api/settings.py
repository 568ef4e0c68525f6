"""The facade's settings: one pydantic-settings class, read from DPKUBE_* environment variables."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from dpkube.engine.libraries import MODULES
from dpkube.k8s.tokens import TOKEN_SECRET

DEFAULT_AUDIENCES = ["https://kubernetes.default.svc.cluster.local"]
"""The API server's own audience on kubeadm-style clusters (its --service-account-issuer)."""


class ApiSettings(BaseSettings):
    """Everything an admin may tune; defaults suit `make dev` and the tests."""

    model_config = SettingsConfigDict(env_prefix="DPKUBE_", extra="ignore")

    query_namespace: str = "dpkube"
    """Namespace where the facade creates its users' DPQueries (one shared namespace; it filters by user)."""
    system_namespace: str = "dpkube-system"
    """Namespace of budget grants, Datasets, Queues and the API token Secret."""
    kubeconfig: str | None = None
    """Kubeconfig to reach the API server; unset means $KUBECONFIG, the in-cluster account, ~/.kube/config."""
    trusted_header: bool = False
    """Take the Lomas `user-name` header as the identity (`make dev`, or behind an authenticating proxy)."""
    token_secret: str = TOKEN_SECRET
    """Secret (system namespace) mapping sha256 hashes of API tokens to their user."""
    admin_group: str = "dpkube:admins"
    """Kubernetes group whose members are admins when they authenticate with a cluster token."""
    auth_cache_seconds: float = Field(default=10.0, ge=0)
    """How long a successful token look-up is trusted before it is checked again (revocation delay)."""
    auth_failure_cache_seconds: float = Field(default=5.0, ge=0)
    """How long a failed token is refused without asking the API server again (a flood of bad tokens)."""
    token_review_audiences: list[str] = Field(default_factory=lambda: list(DEFAULT_AUDIENCES), min_length=1)
    """Audiences a cluster token must be meant for (TokenReview spec.audiences); the review's answer must
    name one of them. The default is the API server's own audience on most clusters."""
    query_wait_seconds: float = Field(default=300.0, gt=0)
    """How long a query route waits for the query's terminal phase before answering 504."""
    max_body_bytes: int = Field(default=1_048_576, gt=0)
    """Largest request body accepted; larger ones get 413."""
    cache: bool = True
    """Serve budgets, datasets, in-flight counts and history from watch-fed views (read-through when unsynced or
    after own writes), and see queries end on their one shared watch; off, a waiting query GETs itself each second."""
    watch_timeout_seconds: int = Field(default=60, gt=0)
    """Server-side timeout of the caches' watches: a silently stalled watch is restarted this often."""
    pool_workers: int = Field(default=2, ge=1, le=32)
    """Worker processes that price and validate requests (costs, dummy data, uploads) off the event loop."""
    pool_timeout_seconds: float = Field(default=5.0, gt=0)
    """Time limit of one such job; past it the worker is killed and the request refused with 400."""
    pool_max_queued: int = Field(default=32, ge=0)
    """Jobs waiting for a worker; beyond, requests are answered 503 with Retry-After."""
    pool_preload: list[str] = Field(default_factory=lambda: list(MODULES.values()))
    """Modules each worker imports at start (the DP libraries), so no request pays for the import."""
    pool_jobs_per_user: int = Field(default=1, ge=1)
    """Jobs of one user running in the pool at once (per replica): one user cannot occupy every worker."""
    max_dummy_rows: int = Field(default=10_000, gt=0)
    """Most rows /get_dummy_dataset builds; more is refused with 400."""
    lomas_queue: str = ""
    """Queue the Lomas routes' queries run through (`make dev` and the chart set `default`), so its warm runners
    serve them; a query of a library it does not warm, or any when it does not exist, runs outside any queue on
    a cold pod. Empty (the default here, which no Queue need back) runs every query so."""
    max_queries_in_flight: int = Field(default=16, ge=1)
    """A user's unfinished queries (Lomas queries and Dioptra jobs, across replicas); more get 429."""
    requests_per_second: float = Field(default=20.0, gt=0)
    """Sustained requests per second of one user (per replica); more get 429 with Retry-After."""
    request_burst: int = Field(default=40, ge=1)
    """Requests one user may send at once above that rate."""
    log_level: str = "INFO"
    """Level of the facade's JSON logs."""
