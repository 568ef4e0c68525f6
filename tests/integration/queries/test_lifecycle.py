"""A DPQuery's life on the real platform: operator, node agent and runner pods, budgets that add up."""

from __future__ import annotations

import asyncio

import pytest

from dpkube.k8s.budgets import Budgets
from dpkube.k8s.client import KubeClient, NotFound, core_path
from dpkube.models.kinds import DPQUERY, QUEUE
from dpkube.models.payloads import Library
from dpkube.operator.domain.lifecycle import GENERIC_FAILURE
from dpkube_testing.builders import SQL_COUNT, dpquery, queue, seed_payload
from dpkube_testing.waiting import settled_ledger, wait_for_phase, wait_for_reason

pytestmark = pytest.mark.usefixtures("operator_process", "node_agent")


def slow_synth() -> dict:
    """A DP-CTGAN request that trains for several seconds on PENGUIN."""
    payload = seed_payload(Library.SMARTNOISE_SYNTH)
    return {**payload, "synthParams": {**payload["synthParams"], "epochs": 100}, "returnModel": False}


async def test_a_sql_count_succeeds_and_charges_exactly_its_cost(
    admin: KubeClient, namespace: str, budgets: Budgets, create
) -> None:
    await budgets.grant("sql-user", "PENGUIN", epsilon=10, delta=0.005)
    await create(dpquery("count", user="sql-user"))
    body = await wait_for_phase(admin, namespace, "count", "Succeeded", "Failed", "Rejected", settled=True)
    status = body["status"]
    assert status["phase"] == "Succeeded", status
    assert status["result"]["columns"] == ["NB_ROW"] and status["result"]["data"][0][0] > 0
    assert status["spent"] == status["cost"]
    ledger = await settled_ledger(budgets, "sql-user", "PENGUIN")
    assert ledger.spent.epsilon == pytest.approx(status["spent"]["epsilon"])
    assert ledger.reservations == {} and ledger.charged == {}


@pytest.mark.parametrize("library", [Library.OPENDP, Library.DIFFPRIVLIB])
async def test_the_seed_example_of_each_library_succeeds(
    admin: KubeClient, namespace: str, budgets: Budgets, create, library: Library
) -> None:
    await budgets.grant("lib-user", "PENGUIN", epsilon=10, delta=0.005)
    await create(dpquery(f"seed-{library.value}", user="lib-user", library=library.value))
    body = await wait_for_phase(admin, namespace, f"seed-{library.value}", "Succeeded", "Failed", "Rejected",
                                timeout=120)
    assert body["status"]["phase"] == "Succeeded", body["status"]
    assert body["status"]["spent"]["epsilon"] > 0


async def test_a_dummy_query_runs_on_dummy_data_and_charges_nothing(
    admin: KubeClient, namespace: str, budgets: Budgets, create
) -> None:
    await budgets.grant("dummy-user", "PENGUIN", epsilon=1, delta=0.005)
    await create(dpquery("dummy", user="dummy-user", mode="dummy", dummy={"rows": 100, "seed": 42}))
    body = await wait_for_phase(admin, namespace, "dummy", "Succeeded", "Failed", timeout=60)
    assert body["status"]["phase"] == "Succeeded" and body["status"]["spent"]["epsilon"] == 0
    assert (await budgets.find("dummy-user", "PENGUIN")).ledger.spent.epsilon == 0


async def test_a_query_whose_pod_dies_before_reading_the_data_is_refunded(
    admin: KubeClient, namespace: str, budgets: Budgets, create
) -> None:
    await budgets.grant("unlucky", "PENGUIN", epsilon=10, delta=0.005)
    await create(queue(f"tiny-{namespace}", resources={"requests": {"memory": "40Mi"}, "limits": {"memory": "40Mi"}}))
    await create(dpquery("starved", user="unlucky", queue=f"tiny-{namespace}"))
    body = await wait_for_phase(admin, namespace, "starved", "Failed", "Succeeded", "Rejected", timeout=60,
                                settled=True)
    assert body["status"]["phase"] == "Failed" and "dataReadAt" not in body["status"], body["status"]
    assert body["status"]["spent"]["epsilon"] == 0
    ledger = (await budgets.find("unlucky", "PENGUIN")).ledger
    assert ledger.spent.epsilon == 0 and ledger.reservations == {}


async def test_a_pod_the_api_server_refuses_fails_the_query_free(
    admin: KubeClient, namespace: str, budgets: Budgets, create
) -> None:
    await budgets.grant("unlucky", "PENGUIN", epsilon=10, delta=0.005)
    await create(queue(f"broken-{namespace}", resources={"limits": {"memory": "40Mi"}}))
    await create(dpquery("unrunnable", user="unlucky", queue=f"broken-{namespace}"))
    body = await wait_for_phase(admin, namespace, "unrunnable", "Failed", "Succeeded", timeout=60, settled=True)
    assert body["status"]["phase"] == "Failed" and "refused the query's pod" in body["status"]["message"]
    assert (await budgets.find("unlucky", "PENGUIN")).ledger.reservations == {}


async def test_a_query_that_fails_after_reading_the_data_is_charged_and_told_nothing_more(
    admin: KubeClient, namespace: str, budgets: Budgets, create
) -> None:
    await budgets.grant("unlucky", "FSO_INCOME_SYNTHETIC", epsilon=10, delta=0.005)
    await create(dpquery("no-data", user="unlucky", dataset="FSO_INCOME_SYNTHETIC",
                         smartnoiseSql={**SQL_COUNT}))
    body = await wait_for_phase(admin, namespace, "no-data", "Failed", "Succeeded", "Rejected", timeout=60,
                                settled=True)
    status = body["status"]
    assert status["phase"] == "Failed" and status["dataReadAt"], status
    assert status["message"].startswith(GENERIC_FAILURE) and status["spent"] == status["cost"]
    ledger = (await budgets.find("unlucky", "FSO_INCOME_SYNTHETIC")).ledger
    assert ledger.spent.epsilon == pytest.approx(status["cost"]["epsilon"]) and ledger.reservations == {}


async def test_a_query_waits_for_its_dependency_then_runs(
    admin: KubeClient, namespace: str, budgets: Budgets, create
) -> None:
    await budgets.grant("chain", "PENGUIN", epsilon=10, delta=0.005)
    await create(queue(f"gate-{namespace}", locked=True))
    await create(dpquery("first", user="chain", queue=f"gate-{namespace}"))
    await create(dpquery("second", user="chain", dependsOn=["first"]))
    await wait_for_reason(admin, namespace, "second", "WaitingForDependency")
    await admin.patch(QUEUE.api_path("dpkube-system", f"gate-{namespace}"), {"spec": {"locked": False}})
    await wait_for_phase(admin, namespace, "first", "Succeeded")
    body = await wait_for_phase(admin, namespace, "second", "Succeeded", "Failed")
    assert body["status"]["phase"] == "Succeeded"


async def test_a_failed_dependency_fails_its_dependents(admin: KubeClient, namespace: str, create) -> None:
    await create(dpquery("doomed", user="nobody"))
    await create(dpquery("after", dependsOn=["doomed"]))
    body = await wait_for_phase(admin, namespace, "after", "Failed")
    assert body["status"]["conditions"][-1]["reason"] == "DependencyFailed"


async def pod_running_before_the_read(admin: KubeClient, namespace: str, name: str, timeout: float = 60) -> str:
    """The query's pod once it runs, while its runner has not yet asked leave to read (a synthesizer's runner
    imports its libraries for seconds first)."""
    for _ in range(int(timeout * 20)):
        status = (await admin.get(DPQUERY.api_path(namespace, name))).get("status") or {}
        assert not status.get("dataReadAt") and status.get("phase") in (None, "Pending", "Admitted"), status
        if status.get("podName"):
            try:
                pod = await admin.get(core_path("pods", namespace, status["podName"]))
            except NotFound:
                pod = {}
            if (pod.get("status") or {}).get("phase") == "Running":
                return str(status["podName"])
        await asyncio.sleep(0.05)
    raise AssertionError(f"the pod of {name} did not run within {timeout} s")


async def test_deleting_a_query_whose_pod_runs_before_it_read_the_data_cancels_it_and_returns_its_reservation(
    admin: KubeClient, namespace: str, budgets: Budgets, create
) -> None:
    await budgets.grant("quitter", "PENGUIN", epsilon=10, delta=0.005)
    await create(dpquery("slow", user="quitter", library="smartnoise-synth", smartnoiseSynth=slow_synth()))
    pod = await pod_running_before_the_read(admin, namespace, "slow")
    await admin.delete(DPQUERY.api_path(namespace, "slow"))
    for _ in range(300):
        try:
            await admin.get(DPQUERY.api_path(namespace, "slow"))
        except NotFound:
            break
        await asyncio.sleep(0.1)
    ledger = (await budgets.find("quitter", "PENGUIN")).ledger
    assert ledger.reservations == {} and ledger.spent.epsilon == 0
    with pytest.raises(NotFound):
        await admin.get(core_path("pods", namespace, pod))


async def test_a_query_past_its_timeout_ends_timed_out_and_is_charged_only_if_it_read_the_data(
    admin: KubeClient, namespace: str, budgets: Budgets, create
) -> None:
    await budgets.grant("patient", "PENGUIN", epsilon=10, delta=0.005)
    await create(dpquery("late", user="patient", library="smartnoise-synth", smartnoiseSynth=slow_synth(),
                         timeout="1s"))
    body = await wait_for_phase(admin, namespace, "late", "TimedOut", "Succeeded", "Failed", timeout=60, settled=True)
    assert body["status"]["phase"] == "TimedOut", body["status"]
    charged = body["status"]["cost"]["epsilon"] if "dataReadAt" in body["status"] else 0
    ledger = (await budgets.find("patient", "PENGUIN")).ledger
    assert ledger.reservations == {} and ledger.spent.epsilon == pytest.approx(charged)
    assert body["status"]["spent"]["epsilon"] == pytest.approx(charged)


async def test_a_large_result_is_published_in_configmaps_owned_by_the_query(
    admin: KubeClient, namespace: str, budgets: Budgets, create
) -> None:
    await budgets.grant("modeller", "PENGUIN", epsilon=10, delta=0.005)
    await create(dpquery("model", user="modeller", library="smartnoise-synth"))
    body = await wait_for_phase(admin, namespace, "model", "Succeeded", "Failed", "Rejected", timeout=120)
    status = body["status"]
    assert status["phase"] == "Succeeded", status
    ref = status["resultRef"]
    assert "result" not in status and ref["chunks"] >= 1
    first = await admin.get(core_path("configmaps", namespace, ref["configMap"]))
    assert first["metadata"]["ownerReferences"][0]["uid"] == body["metadata"]["uid"]
    assert len(first["data"][ref["key"]]) > 32 * 1024


async def test_a_dataset_whose_credentials_secret_is_missing_fails_the_query_and_refunds(
    admin: KubeClient, namespace: str, budgets: Budgets, create, system_namespace: str
) -> None:
    from dpkube.engine.datasets import demo_metadata
    from dpkube.k8s.demo import dataset_manifest
    from dpkube.models.dataset import DatasetSpec
    from dpkube.models.kinds import DATASET

    metadata = demo_metadata("PENGUIN")
    spec = DatasetSpec(display_name=f"S3-{namespace}", url="s3://bucket/penguin.csv", credentials_secret="nope",
                       metadata=metadata.model_dump(mode="json", exclude_none=True),
                       column_order=list(metadata.columns))
    await admin.create(DATASET.api_path(system_namespace), dataset_manifest(system_namespace, spec.display_name, spec))
    await budgets.grant("s3-user", spec.display_name, epsilon=1, delta=0.005)
    await create(dpquery("s3", user="s3-user", dataset=spec.display_name))
    body = await wait_for_phase(admin, namespace, "s3", "Failed", "Succeeded", "Rejected", settled=True)
    assert body["status"]["phase"] == "Failed" and "credentials Secret nope is missing" in body["status"]["message"]
    assert (await budgets.find("s3-user", spec.display_name)).ledger.reservations == {}
