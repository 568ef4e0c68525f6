"""Starts the one pod of an admitted query, and builds the input its runner claims.

Idempotent by uid: a pod already labelled with the query's uid is the query's pod (a crash between
its creation and the status write left it), a warm pod is claimed by a conditioned label update, and
a cold pod's name is derived from the uid. Before any pod runs in a namespace, the namespace has the
query pods' NetworkPolicy; dataset credentials are copied there only after that.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import secrets
from dataclasses import dataclass
from typing import Any

from dpkube.k8s.client import Conflict, Invalid, KubeClient, NotFound, core_path
from dpkube.k8s.datasets import Dataset, DatasetInvalid, Datasets
from dpkube.k8s.isolation import delete_copy, ensure_query_policy, mirror
from dpkube.k8s.plugins import package_config_map, package_copy
from dpkube.k8s.pods import (
    QUERY_UID_LABEL,
    credentials_copy_name,
    dataset_uri,
    query_pod,
    runner_service_account,
)
from dpkube.k8s.snapshots import Snapshots
from dpkube.models.dpquery import Mode
from dpkube.models.kinds import QUEUE
from dpkube.models.queue import QueueSpec
from dpkube.models.runner import DatasetRef, RunnerInput, RunnerMode, RunnerSettings
from dpkube.operator.domain.durations import parse_duration
from dpkube.operator.domain.lifecycle import QueryView
from dpkube.operator.podkeys import PodKeys
from dpkube.operator.registry import Registry
from dpkube.operator.settings import OperatorSettings
from dpkube.operator.warm import WarmPools

log = logging.getLogger(__name__)


class LaunchRefused(Exception):
    """The query cannot get a pod (its dataset, credentials or plugin are gone); nothing was read."""


class Launcher:
    """Pods for queries, their namespace's isolation, and the input each runner claims."""

    def __init__(self, client: KubeClient, settings: OperatorSettings, datasets: Datasets, snapshots: Snapshots,
                 registry: Registry, keys: PodKeys, warm: WarmPools | None = None) -> None:
        self.client = client
        self.keys = keys
        self.settings = settings
        self.datasets = datasets
        self.snapshots = snapshots
        self.registry = registry
        self.warm = warm
        self._isolated: set[str] = set()
        self._without_copies: set[str] = set()
        """Namespaces where this process knows there is no credentials copy left to delete."""
        self._copies_made: collections.Counter[str] = collections.Counter()

    async def start(self, body: dict[str, Any], query: QueryView, dataset: Dataset | None = None,
                    queue: QueueSpec | None = None) -> Launched:
        """The query's pod, found, claimed or created; LaunchRefused when none can run it."""
        namespace, spec = query.namespace, query.spec
        found = [] if self.registry.first_start(query.uid) else (await self.client.list(
            core_path("pods", namespace), label_selector=f"{QUERY_UID_LABEL}={query.uid}")).get("items", [])
        if found:
            name: str = found[0]["metadata"]["name"]
            if self.warm is not None:
                self.warm.deliver(namespace, name)
            return Launched(name)
        if dataset is None:
            dataset = await self._dataset(spec.dataset)
        if queue is None and spec.queue:
            queue = await self._queue(spec.queue)
        await self.isolate(namespace)
        reads_data = spec.mode == Mode.QUERY
        if self.warm is not None and queue is not None and warm_fits(query, dataset, queue):
            claimed = await self.warm.claim(body, spec.queue or "", queue)
            if claimed is not None:
                self.warm.deliver(namespace, claimed)
                return Launched(claimed, running=True)
        if reads_data and dataset.spec.credentials_secret:
            if not self.settings.query_network_policy:
                raise LaunchRefused("dataset credentials are only given to pods under a dpkube NetworkPolicy, "
                                    "and the operator's query_network_policy is off")
            secret = dataset.spec.credentials_secret
            self._without_copies.discard(namespace)
            self._copies_made[namespace] += 1
            if not await mirror(self.client, "secrets", self.settings.system_namespace, secret,
                                credentials_copy_name(secret), namespace):
                raise LaunchRefused(f"the dataset's credentials Secret {secret} is missing")
        for plugin in spec.plugins:
            if not await mirror(self.client, "configmaps", self.settings.system_namespace,
                                package_config_map(plugin), package_copy(plugin), namespace):
                raise LaunchRefused(f"the task plugin package {plugin} is missing")
        runner = RunnerSettings.for_pod(self.settings.claim_url, secrets.token_urlsafe(24),
                                         spec.library.value)  # a cold pod imports its query's library only
        timeout = parse_duration(spec.timeout) if spec.timeout else None
        manifest = query_pod(body, runner, self.settings.pod_template(), dataset=dataset.spec if reads_data else None,
                             queue=queue, timeout_seconds=timeout)
        try:
            await self.client.create(core_path("pods", namespace), manifest, answer=False)
        except Invalid as exc:
            raise LaunchRefused(f"the API server refused the query's pod: {exc}") from None
        except Conflict as exc:
            if not exc.already_exists:
                raise
            return Launched(str(manifest["metadata"]["name"]))  # made before: its own secret stays in the stored pod
        self.keys.remember(namespace, manifest["metadata"]["name"], runner.claim_token, query.uid)
        return Launched(str(manifest["metadata"]["name"]))

    async def isolate(self, namespace: str) -> None:
        """The namespace's runner service account and query-pod NetworkPolicy, once per namespace and process."""
        if namespace in self._isolated:
            return
        with contextlib.suppress(Conflict):
            await self.client.create(core_path("serviceaccounts", namespace),
                                     runner_service_account(namespace, self.settings.runner_service_account))
        if self.settings.query_network_policy:
            await ensure_query_policy(self.client, namespace, self.settings.query_egress())
        self._isolated.add(namespace)

    async def input_for(self, query: QueryView) -> RunnerInput:
        """The runner's input: the spec, where the data is, and the metadata snapshot the query was priced on."""
        if query.status.metadata_digest is None:
            raise LaunchRefused("the query records no metadata snapshot")
        metadata = await self.snapshots.get(query.status.metadata_digest)
        dummy = query.spec.mode == Mode.DUMMY
        uri = None if dummy else dataset_uri((await self._dataset(query.spec.dataset)).spec)
        return RunnerInput(
            library=query.spec.library,
            mode=RunnerMode.DUMMY if dummy else RunnerMode.QUERY,
            payload=query.spec.payload,
            dataset=DatasetRef(uri=uri, metadata=metadata),
            dummy_nb_rows=query.spec.dummy.rows if query.spec.dummy else 100,
            dummy_seed=query.spec.dummy.seed if query.spec.dummy else 42,
        )

    async def forget_copies(self, namespace: str) -> None:
        """Delete the credentials copies of `namespace` that no running query there needs any more (not
        looked for again in a namespace where none is left, until a query there needs one)."""
        if namespace in self._without_copies:
            return
        made = self._copies_made[namespace]
        needed: set[str] = set()
        for entry in self.registry.entries.values():
            if entry.namespace == namespace and entry.active and entry.dataset:
                try:
                    dataset = await self.datasets.get(entry.dataset)
                except DatasetInvalid:
                    continue
                if dataset is not None and dataset.spec.credentials_secret:
                    needed.add(credentials_copy_name(dataset.spec.credentials_secret))
        copies = await self.client.list_all(core_path("secrets", namespace),
                                            label_selector="app.kubernetes.io/managed-by=dpkube,dpkube.io/copy-of")
        for copy in copies:
            if copy["metadata"]["name"] not in needed:
                await delete_copy(self.client, "secrets", namespace, copy["metadata"]["name"])
        if not needed and self._copies_made[namespace] == made:  # no copy was made meanwhile
            self._without_copies.add(namespace)

    async def _dataset(self, name: str) -> Dataset:
        try:
            dataset = await self.datasets.get(name)
        except DatasetInvalid as exc:
            raise LaunchRefused(f"dataset {name}: {exc}") from None
        if dataset is None:
            raise LaunchRefused(f"dataset {name} disappeared")
        return dataset

    async def _queue(self, name: str) -> QueueSpec | None:
        try:
            body = await self.client.get(QUEUE.api_path(self.settings.system_namespace, name))
        except NotFound:
            return None
        return QueueSpec.model_validate(body.get("spec") or {})


@dataclass(frozen=True)
class Launched:
    """The pod a query runs in; `running` when it is a warm pod that was polling, so runs already."""

    pod: str
    running: bool = False


def warm_fits(query: QueryView, dataset: Dataset, queue: QueueSpec) -> bool:
    """Whether a warm pod of `queue` can run `query`: the pool imported its library, and it needs no
    dataset volume, credentials or plugins (a warm pod is started before its query is known)."""
    if not queue.warm_pods or (queue.warm_libraries and query.spec.library not in queue.warm_libraries):
        return False
    if query.spec.plugins:
        return False
    if query.spec.mode == Mode.DUMMY:
        return True
    return dataset.spec.pvc is None and not dataset.spec.credentials_secret
