"""Admission on a real API server, with the operator running: rejections charge nothing and say why."""

from __future__ import annotations

import pytest

from dpkube.k8s.budgets import Budgets
from dpkube.k8s.client import KubeClient, core_path
from dpkube_testing.builders import SQL_COUNT, dpquery, queue
from dpkube_testing.waiting import wait_for_phase, wait_for_reason

pytestmark = pytest.mark.usefixtures("operator_process")


async def test_a_query_without_a_grant_is_rejected_with_no_access(
    admin: KubeClient, namespace: str, create
) -> None:
    await create(dpquery("no-grant", user="mallory"))
    body = await wait_for_phase(admin, namespace, "no-grant", "Rejected")
    assert body["status"]["message"] == "mallory does not have access to PENGUIN."
    assert body["status"]["conditions"][-1]["reason"] == "NoBudgetGrant"


async def test_an_unknown_dataset_is_rejected(admin: KubeClient, namespace: str, create) -> None:
    await create(dpquery("no-data", dataset="IRIS"))
    body = await wait_for_phase(admin, namespace, "no-data", "Rejected")
    assert body["status"]["message"].startswith("Dataset IRIS does not exist.")


async def test_a_query_costing_more_than_remains_is_rejected_and_charges_nothing(
    admin: KubeClient, namespace: str, budgets: Budgets, create
) -> None:
    await budgets.grant("poor", "PENGUIN", epsilon=0.05, delta=0.005)
    await create(dpquery("too-dear", user="poor"))
    body = await wait_for_phase(admin, namespace, "too-dear", "Rejected", settled=True)
    assert body["status"]["message"] == (
        "Not enough budget for this query epsilon remaining 0.05, delta remaining 0.005."
    )
    ledger = (await budgets.find("poor", "PENGUIN")).ledger
    assert ledger.spent.epsilon == 0 and ledger.reservations == {}


async def test_a_user_who_may_not_query_is_rejected(
    admin: KubeClient, namespace: str, budgets: Budgets, create
) -> None:
    await budgets.grant("barred", "PENGUIN", epsilon=10, delta=0.005, may_query=False)
    await create(dpquery("barred-q", user="barred"))
    body = await wait_for_phase(admin, namespace, "barred-q", "Rejected")
    assert body["status"]["conditions"][-1]["reason"] == "UserNotAllowed"


async def test_an_invalid_sql_query_is_rejected_as_invalid(admin: KubeClient, namespace: str, create) -> None:
    await create(dpquery("bad-sql", smartnoiseSql={**SQL_COUNT, "queryStr": "SELECT COUNT(*) FROM other_table"}))
    body = await wait_for_phase(admin, namespace, "bad-sql", "Rejected")
    assert body["status"]["conditions"][-1]["reason"] in ("InvalidQuery", "LibraryError")


async def test_a_cost_query_reports_the_library_cost_and_charges_nothing(
    admin: KubeClient, namespace: str, budgets: Budgets, create
) -> None:
    await budgets.grant("costly", "PENGUIN", epsilon=1, delta=0.005)
    await create(dpquery("estimate", user="costly", mode="cost"))
    body = await wait_for_phase(admin, namespace, "estimate", "Succeeded")
    assert body["status"]["cost"]["epsilon"] == pytest.approx(0.1)
    assert body["status"]["spent"]["epsilon"] == 0
    assert (await budgets.find("costly", "PENGUIN")).ledger.spent.epsilon == 0


async def test_a_locked_queue_keeps_queries_waiting(
    admin: KubeClient, namespace: str, budgets: Budgets, create
) -> None:
    await budgets.grant("alice", "PENGUIN", epsilon=10, delta=0.005)
    await create(queue(f"locked-{namespace}", locked=True))
    await create(dpquery("held", queue=f"locked-{namespace}"))
    body = await wait_for_reason(admin, namespace, "held", "QueueLocked")
    assert body["status"]["phase"] == "Pending"
    assert (await budgets.find("alice", "PENGUIN")).ledger.reservations == {}


async def test_an_unknown_queue_keeps_queries_waiting_with_a_reason(admin: KubeClient, namespace: str, create) -> None:
    await create(dpquery("lost", queue="nowhere"))
    body = await wait_for_reason(admin, namespace, "lost", "QueueNotFound")
    assert body["status"]["phase"] == "Pending"


async def test_a_rejection_posts_an_event(admin: KubeClient, namespace: str, create) -> None:
    await create(dpquery("evented", user="nobody"))
    await wait_for_phase(admin, namespace, "evented", "Rejected")
    for _ in range(50):
        events = (await admin.list(core_path("events", namespace)))["items"]
        if any(e["reason"] == "NoBudgetGrant" and e["involvedObject"]["name"] == "evented" for e in events):
            return
        import asyncio

        await asyncio.sleep(0.1)
    raise AssertionError("no NoBudgetGrant event")


async def test_demo_datasets_are_marked_ready(admin: KubeClient, system_namespace: str) -> None:
    import asyncio

    from dpkube.models.kinds import DATASET

    for _ in range(100):
        status = (await admin.get(DATASET.api_path(system_namespace, "penguin"))).get("status") or {}
        if status.get("ready"):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"PENGUIN never ready: {status}")


async def test_the_operator_reports_itself_healthy(platform_env: dict[str, str]) -> None:
    import asyncio

    import httpx

    url = platform_env["DPKUBE_CLAIM_URL"] + "/healthz"
    async with httpx.AsyncClient() as client:
        for _ in range(100):
            try:
                response = await client.get(url)
                break
            except httpx.ConnectError:
                await asyncio.sleep(0.1)
    assert response.status_code == 200 and response.json() == {"ok": True}
