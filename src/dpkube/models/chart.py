"""The Helm chart's values as a model: `values.schema.json` is generated from it, so `helm install`
refuses a misspelt key or a bad value with a message, before anything reaches the cluster.
"""

from __future__ import annotations

import textwrap
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field

from dpkube.models.base import KubeModel
from dpkube.models.experiment import ExperimentSpec
from dpkube.models.queue import DEFAULT_QUEUE, QueueSpec, default_queue_spec

K8S_NAME = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
QUANTITY = r"^[0-9]+(\.[0-9]+)?(m|Ki|Mi|Gi|Ti|k|M|G|T)?$"


class Image(KubeModel):
    """The one image of every component; the command picks the role."""

    repository: str = Field(default="dpkube", min_length=1)
    """Image repository (operator, facade and query pods share it)."""
    tag: str = ""
    """Image tag; empty means the chart's appVersion."""
    pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    """Kubernetes imagePullPolicy."""


Quantity = Annotated[str, Field(pattern=QUANTITY)] | Annotated[float, Field(gt=0)]


class ResourceList(KubeModel):
    cpu: Quantity | None = None
    """CPU quantity, e.g. 250m or 2."""
    memory: Quantity | None = None
    """Memory quantity, e.g. 512Mi."""


class ContainerResources(KubeModel):
    """Requests and limits; both are required so that no dpkube container runs unbounded."""

    requests: ResourceList
    """What the scheduler reserves."""
    limits: ResourceList
    """The most the container may use."""


class DisruptionBudget(KubeModel):
    enabled: bool = True
    """Create a PodDisruptionBudget (only with two or more replicas)."""
    min_available: int = Field(default=1, ge=0)
    """Pods that a voluntary disruption (a node drain) must leave running."""


class Placement(KubeModel):
    """Where a Deployment's pods may be scheduled."""

    node_selector: dict[str, str] = Field(default_factory=dict)
    """Node labels the pods require."""
    tolerations: list[dict[str, Any]] = Field(default_factory=list)
    """Taints the pods tolerate."""
    affinity: dict[str, Any] = Field(default_factory=dict)
    """Pod affinity rules; empty means the chart spreads replicas over nodes."""


class LeaderElection(KubeModel):
    enabled: bool = True
    """Hold a Lease before reconciling, so that only one replica acts (client-go semantics)."""
    lease_duration_seconds: int = Field(default=15, ge=2)
    """How long a standby waits after the leader's last renewal before taking over."""
    renew_deadline_seconds: int = Field(default=10, ge=1)
    """A leader that cannot renew within this gives up (and restarts as a standby)."""
    retry_period_seconds: int = Field(default=2, ge=1)
    """How often the lease is renewed or tried."""


class Operator(Placement):
    """The kopf operator: admits queries against budgets, runs their pods, charges and releases."""

    replicas: int = Field(default=2, ge=1, le=5)
    """Replicas; one leads at a time, the others stand by."""
    leader_election: LeaderElection = Field(default_factory=LeaderElection)
    """Required with more than one replica."""
    namespaces: list[str] = Field(default_factory=list)
    """Namespaces whose DPQueries are served; empty means all, with a ClusterRoleBinding."""
    resources: ContainerResources = Field(default_factory=lambda: ContainerResources(
        requests=ResourceList(cpu="100m", memory="384Mi"), limits=ResourceList(cpu="1", memory="1Gi")))
    """The operator container's resources."""
    disruption_budget: DisruptionBudget = Field(default_factory=DisruptionBudget)
    """Keeps a replica up through node drains."""
    extra_env: dict[str, str] = Field(default_factory=dict)
    """More DPKUBE_* settings of the operator (see its settings module)."""


class Ingress(KubeModel):
    enabled: bool = False
    """Expose the facade through an Ingress."""
    class_name: str = ""
    """IngressClass; empty means the cluster's default."""
    host: str = ""
    """Host name to route; empty means any host."""
    tls_secret: str = ""
    """Secret with the certificate for `host`; empty means plain HTTP."""
    annotations: dict[str, str] = Field(default_factory=dict)
    """Annotations for the ingress controller."""


class Service(KubeModel):
    type: Literal["ClusterIP", "NodePort", "LoadBalancer"] = "ClusterIP"
    """Service type of the facade."""
    port: int = Field(default=80, ge=1, le=65535)
    """Port the Service listens on."""


class ApiLimits(KubeModel):
    """What one user may ask of the facade; past a limit the answer is 429 with Retry-After."""

    queries_in_flight: int = Field(default=16, ge=1)
    """Unfinished queries of one user (Lomas queries and Dioptra jobs), counted across replicas."""
    requests_per_second: float = Field(default=20.0, gt=0)
    """Sustained requests per second of one user, per replica."""
    request_burst: int = Field(default=40, ge=1)
    """Requests one user may send at once above that rate."""
    max_dummy_rows: int = Field(default=10_000, ge=1)
    """Most rows /get_dummy_dataset builds (more is a 400)."""
    auth_failure_cache_seconds: float = Field(default=5.0, ge=0)
    """How long a failed token is refused from memory, without asking the API server again."""


class ApiWorkers(KubeModel):
    """Worker processes that price and validate requests (costs, dummy data, uploads) off the event loop."""

    count: int = Field(default=2, ge=1, le=32)
    """Worker processes per facade replica; each imports the DP libraries (about 500 MB)."""
    timeout_seconds: float = Field(default=5.0, gt=0)
    """Time limit of one job; past it the worker is killed and the request refused with 400."""
    max_queued: int = Field(default=32, ge=0)
    """Jobs waiting for a worker; beyond, requests are answered 503 with Retry-After."""


class Api(Placement):
    """The REST facade (Lomas 0.3 and Dioptra v0 compatible)."""

    replicas: int = Field(default=2, ge=1, le=20)
    """Replicas; the facade keeps no state, any number may serve."""
    trusted_header: bool = False
    """Take the Lomas `user-name` header as the caller's identity. Only behind a proxy that sets it after
    authenticating the caller: otherwise anyone can spend anyone's budget."""
    token_review_audiences: list[str] = Field(
        default_factory=lambda: ["https://kubernetes.default.svc.cluster.local"], min_length=1)
    """Audiences a cluster token must be meant for (TokenReview); the API server's own audience on most
    clusters (its --api-audiences, else its --service-account-issuer)."""
    lomas_queue: str = Field(default=DEFAULT_QUEUE, max_length=63)
    """Queue the Lomas routes' queries run through (one of `queues`), so its warm runners serve them; a query
    of a library the queue does not warm, or any query when the queue does not exist, runs outside any queue
    on a cold pod, as every query does when this is empty. Size that queue's warm pool to the node: each warm
    runner holds the libraries it imports (the default queue's hold no torch: it does not warm synthetic data)."""
    limits: ApiLimits = Field(default_factory=ApiLimits)
    """Per-user limits."""
    workers: ApiWorkers = Field(default_factory=ApiWorkers)
    """The worker pool."""
    service: Service = Field(default_factory=Service)
    """How the facade is exposed inside the cluster."""
    ingress: Ingress = Field(default_factory=Ingress)
    """How the facade is exposed outside the cluster."""
    resources: ContainerResources = Field(default_factory=lambda: ContainerResources(
        requests=ResourceList(cpu="250m", memory="1Gi"), limits=ResourceList(cpu="3", memory="2Gi")))
    """The facade container's resources: its workers share them, so allow a CPU per worker plus one for the
    event loop (a throttled container answers late, /healthz included)."""
    disruption_budget: DisruptionBudget = Field(default_factory=DisruptionBudget)
    """Keeps a replica serving through node drains."""
    extra_env: dict[str, str] = Field(default_factory=dict)
    """More DPKUBE_* settings of the facade (see its settings module)."""


class Runner(KubeModel):
    """The per-query pods the operator creates."""

    image: str = ""
    """Runner image; empty means the chart's image (a Queue may override it)."""
    service_account: str = Field(default="dpkube-runner", pattern=K8S_NAME)
    """Service account of query pods, created by the operator in each query namespace: it has no token and no
    permission (runner pods talk to the operator only)."""
    resources: ContainerResources = Field(default_factory=lambda: ContainerResources(
        requests=ResourceList(cpu="250m", memory="512Mi"), limits=ResourceList(cpu="2", memory="4Gi")))
    """Default resources of query pods (a Queue may override them)."""


class NetworkPolicies(KubeModel):
    """Query pods may reach nothing but what their query needs."""

    enabled: bool = True
    """Create the NetworkPolicies (needs a network plugin that enforces them). The operator itself keeps the
    query pods' policy in every namespace where it runs them; without it, datasets with credentials are refused."""
    dataset_store_cidrs: list[str] = Field(default_factory=list)
    """Where datasets are read from (object store, HTTP server); empty means no such egress."""
    dataset_store_ports: list[int] = Field(default_factory=lambda: [443])
    """Ports of the dataset store."""
    api_ingress_from: list[dict[str, Any]] = Field(default_factory=list)
    """NetworkPolicy peers allowed to call the facade; empty means any."""


class QueryNamespaces(KubeModel):
    create: bool = True
    """Create the namespaces (turn off when they exist already)."""
    names: list[str] = Field(default_factory=lambda: ["dpkube"], min_length=1)
    """Namespaces the chart creates for queries (the operator gives each its query-pod NetworkPolicy); the first
    is the facade's."""


class NamedQueue(KubeModel):
    name: str = Field(pattern=K8S_NAME, max_length=63)
    """Object name of the Queue."""
    spec: QueueSpec = Field(default_factory=QueueSpec)
    """The Queue's spec, as in a Queue manifest."""


class NamedExperiment(KubeModel):
    name: str = Field(pattern=K8S_NAME, max_length=63)
    """Object name of the Experiment (created in the facade's query namespace)."""
    spec: ExperimentSpec = Field(default_factory=ExperimentSpec)
    """The Experiment's spec, as in an Experiment manifest."""


DEFAULT_QUEUES = [NamedQueue(name=DEFAULT_QUEUE, spec=default_queue_spec())]


class Demo(KubeModel):
    datasets: bool = False
    """Install the demo datasets PENGUIN, TITANIC and FSO_INCOME_SYNTHETIC (shipped in the image)."""


class ChartValues(KubeModel):
    """Values of the dpkube chart."""

    image: Image = Field(default_factory=Image)
    """The image of every component."""
    image_pull_secrets: list[str] = Field(default_factory=list)
    """Secrets for pulling the image."""
    admins_group: str = Field(default="dpkube:admins", min_length=1)
    """Kubernetes group whose members may spend any user's budget and manage grants."""
    query_namespaces: QueryNamespaces = Field(default_factory=QueryNamespaces)
    """Namespaces of query pods."""
    operator: Operator = Field(default_factory=Operator)
    """The operator."""
    api: Api = Field(default_factory=Api)
    """The REST facade."""
    runner: Runner = Field(default_factory=Runner)
    """The query pods."""
    network_policies: NetworkPolicies = Field(default_factory=NetworkPolicies)
    """Network isolation."""
    demo: Demo = Field(default_factory=Demo)
    """Demo content."""
    queues: list[NamedQueue] = Field(default_factory=lambda: list(DEFAULT_QUEUES))
    """Queues to create (in the release's namespace); queries name one in `spec.queue`. The default one warms the
    core libraries only (no torch per warm runner): its pods need not run an image with synthetic data."""
    experiments: list[NamedExperiment] = Field(default_factory=list)
    """Experiments to create in the facade's namespace, e.g. `[{name: penguin-study, spec: {displayName:
    penguin_study}}]`."""
    pod_security_context: dict[str, Any] = Field(default_factory=lambda: {
        "runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001, "fsGroup": 10001,
        "seccompProfile": {"type": "RuntimeDefault"}})
    """Security context of the operator's and facade's pods."""
    container_security_context: dict[str, Any] = Field(default_factory=lambda: {
        "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}})
    """Security context of the operator's and facade's containers."""
    global_: dict[str, Any] = Field(default_factory=dict, alias="global")
    """Helm's global values (when dpkube is a subchart)."""


def values_schema() -> dict[str, Any]:
    """The JSON schema Helm validates merged values against."""
    schema = ChartValues.model_json_schema(by_alias=True)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


def values_yaml() -> str:
    """`values.yaml`: every default of the model, each key preceded by its description as a comment."""
    return "\n".join(_commented(ChartValues(), 0)) + "\n"


def _commented(model: KubeModel, indent: int) -> list[str]:
    pad = " " * indent
    lines: list[str] = []
    for name, field in type(model).model_fields.items():
        key = field.alias or name
        value = getattr(model, name)
        for line in textwrap.wrap(" ".join((field.description or "").split()), 100 - indent):
            lines.append(f"{pad}# {line}")
        if isinstance(value, KubeModel):
            lines.append(f"{pad}{key}:")
            lines.extend(_commented(value, indent + 2))
            continue
        plain = [item.model_dump(by_alias=True, exclude_defaults=True, mode="json") if isinstance(item, KubeModel)
                 else item for item in value] if isinstance(value, list) else value
        dumped = yaml.safe_dump({key: plain}, sort_keys=False, default_flow_style=False, width=1000).rstrip()
        lines.extend(pad + line for line in dumped.splitlines())
    return lines
