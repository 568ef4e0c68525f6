"""The Dioptra REST API v0 over dpkube's objects: Experiments, Queues, DPQueries and ConfigMaps.

The facade keeps no state: ids, names, locks, jobs and plugin packages all live in the API server.
"""

from __future__ import annotations

from dataclasses import dataclass

from dpkube.api.services.compute import Compute
from dpkube.api.services.dioptra.budgets import ExperimentBudgets
from dpkube.api.services.dioptra.catalog import Catalog
from dpkube.api.services.dioptra.ids import IdAllocator
from dpkube.api.services.dioptra.jobs import Jobs
from dpkube.api.services.dioptra.plugins import Plugins
from dpkube.api.services.dioptra.queues import Queues
from dpkube.api.services.quotas import InFlight
from dpkube.k8s.client import KubeClient
from dpkube.models.kinds import EXPERIMENT, QUEUE


@dataclass(frozen=True)
class Dioptra:
    experiments: Catalog
    queues: Queues
    jobs: Jobs
    plugins: Plugins
    budgets: ExperimentBudgets

    @classmethod
    def over(cls, client: KubeClient, query_namespace: str, system_namespace: str, compute: Compute,
             in_flight: InFlight | None = None) -> Dioptra:
        """Experiments and jobs in the query namespace; queues, id counters and plugins in the system one."""
        ids = IdAllocator(client, system_namespace, {"experiment": EXPERIMENT.api_path(query_namespace),
                                                     "queue": QUEUE.api_path(system_namespace)})
        experiments = Catalog(client, EXPERIMENT, query_namespace, ids, what="experiment", prefix="exp-",
                              id_key="experimentId", slug_lookups=True)
        queues = Queues(client, QUEUE, system_namespace, ids, what="queue", prefix="q-", id_key="queueId",
                        slug_lookups=False)
        jobs = Jobs(client, query_namespace, experiments, queues, compute, in_flight,
                    system_namespace=system_namespace)
        return cls(experiments, queues, jobs, Plugins(client, system_namespace, compute),
                   ExperimentBudgets(client, experiments, system_namespace))
