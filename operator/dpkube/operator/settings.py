"""The operator's settings: one pydantic-settings class, read from DPKUBE_* environment variables."""

from __future__ import annotations

import os
import secrets
import socket

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_identity() -> str:
    """The pod's name (or this host's) and a random suffix: a restarted replica is a new candidate."""
    return f"{os.environ.get('POD_NAME') or socket.gethostname()}_{secrets.token_hex(3)}"


class OperatorSettings(BaseSettings):
    """Everything an admin may tune; defaults suit `make dev` and the tests."""

    model_config = SettingsConfigDict(env_prefix="DPKUBE_", extra="ignore")

    system_namespace: str = "dpkube-system"
    """Namespace of budget grants, Datasets and Queues (users cannot write there)."""
    namespaces: list[str] = Field(default_factory=list)
    """Namespaces whose DPQueries and Experiments are served; empty means all."""
    runner_image: str = "dpkube:0.1.0"
    """Image of the per-query pods (a Queue may override it)."""
    runner_command: list[str] = Field(default_factory=lambda: ["python", "-m", "dpkube.runner"])
    """Command of the per-query container."""
    runner_service_account: str = "dpkube-runner"
    """Service account of query pods: it may only create result Secrets."""
    runner_cpu_request: str = "250m"
    runner_memory_request: str = "512Mi"
    runner_cpu_limit: str = "2"
    runner_memory_limit: str = "4Gi"
    result_inline_max_bytes: int = 32 * 1024
    """Results up to this size are kept in the DPQuery's status; larger ones in owned ConfigMaps."""
    sweep_interval_seconds: float = 0.25
    """How often waiting queries, timeouts and experiment/queue counts are re-checked."""
    ledger_audit_seconds: float = 30.0
    """How often reservations and charges of queries that no longer exist are settled."""
    watch_timeout_seconds: int = 60
    """Server-side watch timeout: a watch that silently stalls is restarted at least this often."""
    claim_listen: str = "127.0.0.1:8081"
    """Where the operator serves warm runners' claims (host:port)."""
    claim_url: str = "http://127.0.0.1:8081"
    """How warm runner pods reach that endpoint (in a cluster: the operator's Service)."""
    warm_namespaces: list[str] = Field(default_factory=lambda: ["dpkube"])
    """Namespaces that get warm pools even before a query of theirs used the queue."""
    liveness_endpoint: str | None = None
    """e.g. http://127.0.0.1:8080/healthz; fails when the watch stalls."""
    leader_election: bool = False
    """Run the operator only while holding a Lease, so replicas stand by (the Helm chart turns it on)."""
    lease_name: str = "dpkube-operator"
    """Name of that coordination.k8s.io/v1 Lease."""
    lease_namespace: str | None = None
    """Namespace of the Lease; None means the system namespace."""
    lease_duration_seconds: int = 15
    """How long standbys wait after the lease last changed before taking it over."""
    renew_deadline_seconds: float = 10.0
    """A leader that could not renew for this long stops leading (must be below the lease duration)."""
    retry_period_seconds: float = 2.0
    """How often the leader renews and standbys try to acquire."""
    identity: str = Field(default_factory=default_identity)
    """This replica's name in the Lease's holderIdentity."""
    health_listen: str | None = None
    """Where `/livez` is served (host:port), both while standing by and while leading."""
