"""Dioptra REST API v0 as the stock client uses it: experiments, queues, and a job that runs as a private query.

Experiments and queues stay on the cluster (v0 has no delete for them): every run registers fresh names.
"""

from __future__ import annotations

import time
import uuid

import pytest

from dpkube.models import examples
from dpkube_testing.dioptra import workflow

pytestmark = pytest.mark.e2e

API = "/api/v0"
EXPERIMENT_KEYS = {"experimentId", "name", "createdOn", "lastModified"}
QUEUE_KEYS = {"queueId", "name", "createdOn", "lastModified"}
JOB_KEYS = {"jobId", "mlflowRunId", "experimentId", "queueId", "createdOn", "lastModified", "timeout",
            "workflowUri", "entryPoint", "entryPointKwargs", "dependsOn", "status"}


def fresh(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def experiment(dioptra) -> dict:
    response = dioptra.post(f"{API}/experiment/", json={"name": fresh("E2E Penguins ")})
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture(scope="module")
def queue(dioptra_admin) -> dict:
    response = dioptra_admin.post(f"{API}/queue/", json={"name": fresh("e2e_cpu_")})
    assert response.status_code == 200, response.text
    return response.json()


def test_registering_an_experiment_answers_it_with_a_slugified_name(dioptra) -> None:
    suffix = uuid.uuid4().hex[:10]
    response = dioptra.post(f"{API}/experiment/", json={"name": f" E2E Exp_{suffix} "})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == EXPERIMENT_KEYS
    assert body["name"] == f"e2e-exp_{suffix}" and body["experimentId"] > 0
    assert body["createdOn"] == body["lastModified"]


def test_a_registered_experiment_is_listed(dioptra, experiment) -> None:
    response = dioptra.get(f"{API}/experiment/")
    assert response.status_code == 200
    assert experiment in response.json()


def test_an_experiment_is_found_by_id_and_by_name(dioptra, experiment) -> None:
    by_id = dioptra.get(f"{API}/experiment/{experiment['experimentId']}")
    by_name = dioptra.get(f"{API}/experiment/name/{experiment['name']}")
    assert (by_id.status_code, by_id.json()) == (by_name.status_code, by_name.json()) == (200, experiment)


def test_registering_an_experiment_name_twice_is_400(dioptra, experiment) -> None:
    response = dioptra.post(f"{API}/experiment/", json={"name": experiment["name"]})
    assert response.status_code == 400
    assert response.json()["message"].startswith("Bad Request - The experiment name on the registration form")


def test_an_unknown_experiment_is_404_with_dioptras_message(dioptra) -> None:
    response = dioptra.get(f"{API}/experiment/name/{fresh('nothing-')}")
    assert (response.status_code, response.json()) == (
        404, {"message": "Not Found - The requested experiment does not exist"})


def test_dioptra_routes_without_credentials_are_401_as_a_message(anonymous) -> None:
    response = anonymous.get(f"{API}/experiment/")
    assert response.status_code == 401 and response.json()["message"].startswith("Unauthorized - ")


def test_a_user_may_not_register_a_queue(dioptra) -> None:
    """A queue decides where and how queries run next to private data: admins only."""
    response = dioptra.post(f"{API}/queue/", json={"name": fresh("e2e_cpu_")})
    assert response.status_code == 403 and response.json()["message"].startswith("Forbidden - ")


def test_an_admin_registers_a_queue_with_its_exact_name(queue) -> None:
    assert set(queue) == QUEUE_KEYS
    assert queue["name"].startswith("e2e_cpu_") and queue["queueId"] > 0


def test_a_registered_queue_is_listed_for_users(dioptra, queue) -> None:
    response = dioptra.get(f"{API}/queue/")
    assert response.status_code == 200
    assert queue in response.json()


def test_a_queue_is_found_by_id_and_by_exact_name(dioptra, queue) -> None:
    by_id = dioptra.get(f"{API}/queue/{queue['queueId']}")
    by_name = dioptra.get(f"{API}/queue/name/{queue['name']}")
    assert (by_id.status_code, by_id.json()) == (by_name.status_code, by_name.json()) == (200, queue)


@pytest.fixture(scope="module")
def finished_job(dioptra, lomas, budget, spendable, experiment, queue) -> dict:
    """The example workflow's `penguin_count` at epsilon 0.1, followed to its end, with the budget around it."""
    before = budget.remaining()
    response = dioptra.post(f"{API}/job/", data={
        "experimentName": experiment["name"], "queue": queue["name"], "timeout": "10m",
        "entryPoint": "penguin_count", "entryPointKwargs": "-P epsilon=0.1"},
        files={"workflow": ("workflows.tar.gz", workflow())})
    assert response.status_code == 200, response.text
    submitted = response.json()
    deadline = time.monotonic() + 240  # within pytest's 300 s per test
    job = submitted
    while job["status"] not in ("finished", "failed") and time.monotonic() < deadline:
        time.sleep(0.5)
        job = dioptra.get(f"{API}/job/{submitted['jobId']}").json()
    cost = lomas.post("/estimate_smartnoise_sql_cost", json=examples.SMARTNOISE_SQL_COST).json()
    expected = before.minus(cost["epsilon_cost"], cost["delta_cost"])
    return {"submitted": submitted, "job": job, "before": before, "expected": expected,
            "after": budget.settled(expected)}


def test_a_submitted_job_is_queued_in_the_experiment_and_queue(finished_job, experiment, queue) -> None:
    submitted = finished_job["submitted"]
    assert set(submitted) == JOB_KEYS and submitted["status"] == "queued"
    assert (submitted["experimentId"], submitted["queueId"]) == (experiment["experimentId"], queue["queueId"])
    assert (submitted["entryPoint"], submitted["entryPointKwargs"]) == ("penguin_count", "-P epsilon=0.1")


def test_a_job_runs_to_finished(finished_job) -> None:
    assert finished_job["job"]["status"] == "finished"


def test_a_finished_job_is_charged_what_the_lomas_estimate_of_its_query_says(finished_job) -> None:
    """The entry point is a COUNT(*) at epsilon 0.1, delta 1e-5: the same query as the Lomas seed example."""
    assert finished_job["after"] == pytest.approx(finished_job["expected"])


def test_a_job_is_listed(dioptra, finished_job) -> None:
    response = dioptra.get(f"{API}/job/")
    assert response.status_code == 200
    assert finished_job["submitted"]["jobId"] in [job["jobId"] for job in response.json()]
