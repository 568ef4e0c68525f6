"""The facade's settings: one pydantic-settings class, read from DPKUBE_* environment variables."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from dpkube.k8s.tokens import TOKEN_SECRET


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
    query_wait_seconds: float = Field(default=300.0, gt=0)
    """How long a query route waits for the query's terminal phase before answering 504."""
    max_body_bytes: int = Field(default=1_048_576, gt=0)
    """Largest request body accepted; larger ones get 413."""
    cache: bool = True
    """Serve budgets and datasets from watch-fed caches (read-through when unsynced or after own writes)."""
    watch_timeout_seconds: int = Field(default=60, gt=0)
    """Server-side timeout of the caches' watches: a silently stalled watch is restarted this often."""
    log_level: str = "INFO"
    """Level of the facade's JSON logs."""
