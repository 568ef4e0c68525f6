"""The operator's settings: one pydantic-settings class, read from DPKUBE_* environment variables."""

from __future__ import annotations

import os
import secrets
import socket

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from dpkube.k8s.isolation import QueryEgress
from dpkube.k8s.pods import PodTemplate


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
    """Service account of query pods, created in each namespace: no token is mounted and it holds no permission."""
    runner_cpu_request: str = "250m"
    runner_memory_request: str = "512Mi"
    runner_cpu_limit: str = "2"
    runner_memory_limit: str = "4Gi"
    result_inline_max_bytes: int = 32 * 1024
    """Results up to this size are kept in the DPQuery's status; larger ones in owned ConfigMaps."""
    result_max_bytes: int = 64 * 1024 * 1024
    """The largest result a runner may hand in over the claim channel."""
    pricing_workers: int = Field(default=2, ge=1, le=16)
    """Processes that price queries (the DP libraries are imported there, never in the operator itself)."""
    pricing_timeout_seconds: float = Field(default=10.0, gt=0)
    """A query whose price takes longer is rejected; its worker is replaced."""
    query_network_policy: bool = True
    """Create the query pods' NetworkPolicy in every namespace that runs them (required for dataset credentials)."""
    operator_pod_labels: dict[str, str] = Field(default_factory=lambda: {"app.kubernetes.io/component": "operator"})
    """Labels of the operator's pods: the only peer query pods may reach, on the claim port."""
    dataset_store_cidrs: list[str] = Field(default_factory=list)
    """Where query pods may fetch datasets from (object stores, databases), as CIDRs."""
    dataset_store_ports: list[int] = Field(default_factory=lambda: [443])
    """The TCP ports of those stores."""
    sweep_interval_seconds: float = 0.25
    """How often waiting queries, timeouts and experiment/queue counts are re-checked."""
    ledger_audit_seconds: float = 30.0
    """How often reservations and charges of queries that no longer exist are settled."""
    watch_timeout_seconds: int = 60
    """Server-side watch timeout: a watch that silently stalls is restarted at least this often."""
    claim_listen: str = "127.0.0.1:8081"
    """Where the operator serves the runners' claim channel (host:port): input, leave to read data, results."""
    claim_url: str = "http://127.0.0.1:8081"
    """How runner pods reach that endpoint (in a cluster: the operator's Service)."""
    warm_namespaces: list[str] = Field(default_factory=lambda: ["dpkube"])
    """Namespaces that get warm pools even before a query of theirs used the queue."""
    warm_starts_per_pool: int = Field(default=2, ge=1, le=64)
    """Warm pods of one pool importing their libraries at once: a busy pool refills at the pace the node can
    import, instead of starting its whole ceiling at once and taking the CPU from the queries it serves."""
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

    @property
    def claim_port(self) -> int:
        return int(self.claim_listen.rpartition(":")[2])

    def pod_template(self) -> PodTemplate:
        """What every runner pod gets unless its Queue says otherwise."""
        return PodTemplate(
            image=self.runner_image, command=tuple(self.runner_command), service_account=self.runner_service_account,
            requests={"cpu": self.runner_cpu_request, "memory": self.runner_memory_request},
            limits={"cpu": self.runner_cpu_limit, "memory": self.runner_memory_limit})

    def query_egress(self) -> QueryEgress:
        return QueryEgress(operator_namespace=self.system_namespace, operator_labels=dict(self.operator_pod_labels),
                           claim_port=self.claim_port, dataset_cidrs=tuple(self.dataset_store_cidrs),
                           dataset_ports=tuple(self.dataset_store_ports))
