"""The operator's own counters, served at `/metrics` beside `/livez`: how much work each query costs.

Benchmarks and tests read them to count API calls, pricing jobs and admissions per query without an
audit log; operators of a cluster scrape them like any controller's.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

REGISTRY = CollectorRegistry()
API_REQUESTS = Counter("dpkube_operator_api_requests", "Requests the operator made to the API server.",
                       ["verb", "resource"], registry=REGISTRY)
PRICINGS = Counter("dpkube_operator_pricings", "Queries priced by the pricing workers, by query namespace.",
                   ["namespace"], registry=REGISTRY)
ADMISSIONS = Counter("dpkube_operator_admissions", "Queries admitted (cost reserved or free, pod to start), by "
                     "query namespace.", ["namespace"], registry=REGISTRY)
STATUS_WRITES = Counter("dpkube_operator_status_writes", "DPQuery status writes.", registry=REGISTRY)



def resource_of(path: str) -> str:
    """`pods`, `dpqueries/status`, ... of an API path."""
    parts = path.split("?")[0].strip("/").split("/")
    rest = parts[2:] if parts[:1] == ["api"] else parts[3:]
    if len(rest) > 2 and rest[0] == "namespaces":
        rest = rest[2:]
    if not rest:
        return "other"
    return rest[0] + (f"/{rest[2]}" if len(rest) > 2 else "")


def count_request(method: str, path: str) -> None:
    """A KubeClient observer: one more request of this verb on this resource."""
    API_REQUESTS.labels(method.lower(), resource_of(path)).inc()
