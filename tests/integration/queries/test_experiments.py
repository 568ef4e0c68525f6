"""Experiments: live counts of their queries by phase, and deletion that cascades to their queries."""

from __future__ import annotations

import asyncio
import time

import pytest

from dpkube.k8s.budgets import Budgets
from dpkube.k8s.client import KubeClient, NotFound
from dpkube.models.kinds import DPQUERY, EXPERIMENT
from dpkube_testing.builders import dpquery, experiment, queue
from dpkube_testing.waiting import wait_for_phase, wait_for_reason

pytestmark = pytest.mark.usefixtures("operator_process")


async def wait_until_gone(client: KubeClient, path: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            await client.get(path)
        except NotFound:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{path} still exists")


async def test_experiment_counts_its_queries_by_phase(admin: KubeClient, namespace: str, budgets: Budgets,
                                                      create) -> None:
    await budgets.grant("counter", "PENGUIN", epsilon=1, delta=0.005)
    await create(experiment("study"))
    await create(dpquery("rejected-1", user="nobody", experiment="study"))
    await create(dpquery("rejected-2", user="nobody", experiment="study"))
    await create(dpquery("estimate", user="counter", mode="cost", experiment="study"))
    await wait_for_phase(admin, namespace, "estimate", "Succeeded")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        status = (await admin.get(EXPERIMENT.api_path(namespace, "study"))).get("status") or {}
        if status.get("total") == 3 and status["queries"]["rejected"] == 2 and status["queries"]["succeeded"] == 1:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"experiment counts never settled: {status}")


async def test_a_query_in_an_unknown_experiment_is_rejected(admin: KubeClient, namespace: str, create) -> None:
    await create(dpquery("orphan", experiment="ghost"))
    body = await wait_for_phase(admin, namespace, "orphan", "Rejected")
    assert body["status"]["conditions"][-1]["reason"] == "ExperimentNotFound"


async def test_a_locked_experiment_rejects_new_queries(admin: KubeClient, namespace: str, create) -> None:
    await create(experiment("closed", locked=True))
    await create(dpquery("late", experiment="closed"))
    body = await wait_for_phase(admin, namespace, "late", "Rejected")
    assert body["status"]["conditions"][-1]["reason"] == "ExperimentLocked"


async def test_deleting_an_experiment_cancels_and_deletes_its_queries(
    admin: KubeClient, namespace: str, budgets: Budgets, create
) -> None:
    await budgets.grant("alice", "PENGUIN", epsilon=10, delta=0.005)
    await create(queue(f"hold-{namespace}", locked=True))
    await create(experiment("doomed"))
    await create(dpquery("waiting", experiment="doomed", queue=f"hold-{namespace}"))
    await wait_for_reason(admin, namespace, "waiting", "QueueLocked")
    await admin.delete(EXPERIMENT.api_path(namespace, "doomed"))
    await wait_until_gone(admin, DPQUERY.api_path(namespace, "waiting"))
    await wait_until_gone(admin, EXPERIMENT.api_path(namespace, "doomed"))
