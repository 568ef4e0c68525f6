"""Dioptra v0 jobs are DPQueries: a workflow entry point submitted in the caller's name, run by the operator."""

from __future__ import annotations

import base64
import io
import os
import tarfile
import uuid

import pytest

from dpkube.api.services.dioptra.jobs import PARAMETERS
from dpkube.k8s.client import core_path
from dpkube.models.kinds import DPQUERY
from dpkube_testing import hostile
from dpkube_testing.dioptra import EXAMPLE, wait_for_status, workflow

from .conftest import http_client, running_app

API = "/api/v0"
JOB_KEYS = {"jobId", "mlflowRunId", "experimentId", "queueId", "createdOn", "lastModified", "timeout",
            "workflowUri", "entryPoint", "entryPointKwargs", "dependsOn", "status"}
FORM_ERROR = "Bad Request - The job submission form contains invalid parameters. Please verify and resubmit."
COUNT = "penguin_count"


@pytest.fixture
async def admin_caller(new_caller):
    return await new_caller(admin_user=True)


@pytest.fixture
async def queue(http, admin_caller) -> dict:
    """A fresh queue (queues are cluster-wide), registered by an admin."""
    name = f"tensorflow_cpu_{uuid.uuid4().hex[:8]}"
    return (await http.post(f"{API}/queue/", json={"name": name}, headers=admin_caller.basic)).json()


@pytest.fixture
async def experiment(http, caller) -> dict:
    return (await http.post(f"{API}/experiment/", json={"name": "Penguins"}, headers=caller.basic)).json()


@pytest.fixture
def submit(http, caller, queue, experiment):
    """Post a job form as the stock client does (multipart, file part `workflow`); fields may be overridden."""

    async def post(archive: bytes | None = None, who=None, **fields: str | None):
        form = {"experimentName": experiment["name"], "queue": queue["name"], "timeout": "24h",
                "entryPoint": COUNT, **fields}
        return await http.post(f"{API}/job/", headers=(who or caller).basic,
                               data={k: v for k, v in form.items() if v is not None},
                               files={"workflow": ("workflows.tar.gz", archive or workflow())})

    return post


async def dpqueries(admin, namespace: str) -> list[dict]:
    return (await admin.list(DPQUERY.api_path(namespace)))["items"]


async def test_a_submitted_job_answers_the_twelve_keys_queued(submit, queue, experiment) -> None:
    response = await submit(entryPointKwargs="-P epsilon=1.0")
    assert response.status_code == 200
    job = response.json()
    assert set(job) == JOB_KEYS
    assert job["status"] == "queued" and job["mlflowRunId"] is None and job["dependsOn"] is None
    assert uuid.UUID(job["jobId"]).version == 4
    assert (job["experimentId"], job["queueId"]) == (experiment["experimentId"], queue["queueId"])
    assert (job["entryPoint"], job["entryPointKwargs"], job["timeout"]) == (COUNT, "-P epsilon=1.0", "24h")
    assert job["workflowUri"].endswith("/workflows.tar.gz") and job["createdOn"] == job["lastModified"]


async def test_a_job_is_a_dpquery_in_the_callers_name_with_the_entry_point_resolved(
        submit, caller, admin, namespace) -> None:
    job = (await submit(entryPointKwargs="-P epsilon=0.5")).json()
    [query] = await dpqueries(admin, namespace)
    assert query["metadata"]["name"] == f"dioptra-{job['jobId']}"
    assert query["spec"]["user"] == caller.name and query["spec"]["dataset"] == "PENGUIN"
    assert query["spec"]["smartnoiseSql"]["epsilon"] == 0.5
    assert query["spec"]["smartnoiseSql"]["queryStr"] == "SELECT COUNT(*) AS NB_ROW FROM df"
    assert query["spec"]["timeout"] == "24h" and query["spec"]["queue"].startswith("q-")
    assert query["metadata"]["annotations"][PARAMETERS] == '{"epsilon":0.5,"delta":1e-05}'


async def test_without_kwargs_the_job_echoes_null_and_uses_the_defaults(submit, admin, namespace) -> None:
    job = (await submit()).json()
    [query] = await dpqueries(admin, namespace)
    assert job["entryPointKwargs"] is None and query["spec"]["smartnoiseSql"]["epsilon"] == 0.1


async def test_the_workflow_archive_is_kept_in_a_configmap_owned_by_the_job(submit, admin, namespace) -> None:
    archive = workflow()
    job = (await submit(archive)).json()
    ns, name, filename = job["workflowUri"].removeprefix("configmap://").split("/")
    stored = await admin.get(core_path("configmaps", ns, name))
    [query] = await dpqueries(admin, namespace)
    assert base64.b64decode(stored["binaryData"][filename]) == archive
    assert stored["metadata"]["ownerReferences"][0]["uid"] == query["metadata"]["uid"] and ns == namespace


async def test_a_job_is_read_by_id_and_listed(submit, http, caller) -> None:
    job = (await submit()).json()
    found = (await http.get(f"{API}/job/{job['jobId']}", headers=caller.basic)).json()
    volatile = {"status", "lastModified"}
    assert {k: v for k, v in found.items() if k not in volatile} == {
        k: v for k, v in job.items() if k not in volatile}
    assert job["jobId"] in [j["jobId"] for j in (await http.get(f"{API}/job/", headers=caller.basic)).json()]


async def test_an_unknown_job_is_the_job_404(http, caller) -> None:
    for job_id in (str(uuid.uuid4()), "not-a-uuid"):
        response = await http.get(f"{API}/job/{job_id}", headers=caller.basic)
        assert (response.status_code, response.json()) == (
            404, {"message": "Not Found - The requested job does not exist"})


async def test_a_locked_queue_refuses_the_job_with_403_and_creates_nothing(
        submit, http, admin_caller, queue, admin, namespace) -> None:
    await http.put(f"{API}/queue/name/{queue['name']}/lock", headers=admin_caller.basic)
    response = await submit()
    assert (response.status_code, response.json()) == (403, {"message": "Forbidden - The requested queue is locked."})
    assert await dpqueries(admin, namespace) == []


async def test_the_experiment_is_checked_before_the_queue(submit) -> None:
    both_unknown = await submit(experimentName="nope", queue="nope")
    queue_unknown = await submit(queue="nope")
    assert (both_unknown.status_code, both_unknown.json()["message"]) == (
        404, "Not Found - The requested experiment does not exist")
    assert (queue_unknown.status_code, queue_unknown.json()["message"]) == (
        404, "Not Found - The requested queue does not exist")


async def test_the_experiment_name_is_slugified_on_submission(submit) -> None:
    assert (await submit(experimentName="  PENGUINS ")).status_code == 200


@pytest.mark.parametrize(("timeout", "duration"), [("3600", "3600s"), ("90m", "90m"), ("2d", "2d"),
                                                   ("1h30m", "1h30m")])
async def test_timeouts_are_echoed_and_become_the_query_deadline(submit, admin, namespace, timeout,
                                                                 duration) -> None:
    job = (await submit(timeout=timeout)).json()
    [query] = await dpqueries(admin, namespace)
    assert (job["timeout"], query["spec"]["timeout"]) == (timeout, duration)


async def test_a_malformed_timeout_is_a_form_error(submit) -> None:
    response = await submit(timeout="abc")
    assert (response.status_code, response.json()["message"]) == (400, FORM_ERROR)


async def test_an_undeclared_parameter_is_a_form_error(submit, admin, namespace) -> None:
    response = await submit(entryPointKwargs="-P epsilon=1 -P model_architecture=shallow_net")
    assert (response.status_code, response.json()["message"]) == (400, FORM_ERROR)
    assert "model_architecture" in response.json()["detail"] and await dpqueries(admin, namespace) == []


async def test_a_badly_typed_parameter_is_a_form_error(submit) -> None:
    response = await submit(entryPointKwargs="-P epsilon=lots")
    assert (response.status_code, response.json()["message"]) == (400, FORM_ERROR)


async def test_an_unknown_entry_point_is_a_form_error(submit) -> None:
    response = await submit(entryPoint="train")
    assert (response.status_code, response.json()["message"]) == (400, FORM_ERROR)


async def test_an_archive_escaping_its_directory_is_a_form_error(submit) -> None:
    response = await submit(workflow(extra={"../../etc/cron.d/evil": b"x"}))
    assert response.status_code == 400 and "traversal" in response.json()["detail"]


async def test_an_archive_without_project_file_is_a_form_error(submit) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        info = tarfile.TarInfo("wf/train.py")
        archive.addfile(info, io.BytesIO(b""))
    response = await submit(buffer.getvalue())
    assert response.status_code == 400 and "no project file" in response.json()["detail"]


async def test_a_project_file_that_is_not_yaml_is_a_form_error(submit) -> None:
    response = await submit(workflow(b"entry_points: [unclosed"))
    assert response.status_code == 400 and "YAML" in response.json()["detail"]


async def test_an_oversized_archive_is_413(submit) -> None:
    response = await submit(workflow(extra={"dioptra-workflow/noise.bin": os.urandom(600 * 1024)}))
    assert response.status_code == 413 and response.json()["message"].startswith("Payload Too Large - ")


async def test_a_missing_workflow_part_is_a_form_error(http, caller, queue, experiment) -> None:
    response = await http.post(f"{API}/job/", headers=caller.basic, data={
        "experimentName": experiment["name"], "queue": queue["name"], "entryPoint": COUNT})
    assert (response.status_code, response.json()["message"]) == (400, FORM_ERROR)


async def test_an_unknown_dependency_is_a_form_error(submit) -> None:
    response = await submit(dependsOn=str(uuid.uuid4()))
    assert (response.status_code, response.json()["message"]) == (400, FORM_ERROR)


async def test_a_dependency_is_echoed_and_becomes_spec_depends_on(submit, admin, namespace) -> None:
    first = (await submit()).json()
    second = (await submit(dependsOn=first["jobId"])).json()
    queries = {q["metadata"]["name"]: q for q in await dpqueries(admin, namespace)}
    assert second["dependsOn"] == first["jobId"]
    assert queries[f"dioptra-{second['jobId']}"]["spec"]["dependsOn"] == [f"dioptra-{first['jobId']}"]


async def test_a_job_runs_through_the_operator_and_node_agent_to_finished(
        operator_process, node_agent, submit, http, caller) -> None:
    job = (await submit(entryPointKwargs="-P epsilon=0.5")).json()
    done = await wait_for_status(http, caller, job["jobId"], "finished", "failed")
    assert done["status"] == "finished"
    assert done["lastModified"] >= job["lastModified"]  # status times are whole seconds: a quick job may share one


async def test_a_job_depending_on_another_runs_after_it(operator_process, node_agent, submit, http, caller) -> None:
    first = (await submit()).json()
    second = (await submit(dependsOn=first["jobId"])).json()
    done = await wait_for_status(http, caller, second["jobId"], "finished", "failed")
    assert done["status"] == "finished"
    assert (await http.get(f"{API}/job/{first['jobId']}", headers=caller.basic)).json()["status"] == "finished"


async def test_a_job_over_the_budget_fails(operator_process, submit, http, caller) -> None:
    job = (await submit(entryPointKwargs="-P epsilon=50")).json()
    assert (await wait_for_status(http, caller, job["jobId"], "finished", "failed"))["status"] == "failed"


async def test_a_job_whose_dependency_failed_fails(operator_process, submit, http, caller) -> None:
    refused = (await submit(entryPointKwargs="-P epsilon=50")).json()
    dependent = (await submit(dependsOn=refused["jobId"])).json()
    assert (await wait_for_status(http, caller, dependent["jobId"], "finished", "failed"))["status"] == "failed"


def with_plugin(plugin: str) -> bytes:
    """The example workflow whose first entry point names a custom task plugin package."""
    project = EXAMPLE.read_text().replace("  penguin_count:\n", f"  penguin_count:\n    plugins: [{plugin}]\n", 1)
    return workflow(project.encode())


async def test_a_job_naming_an_unknown_plugin_is_a_form_error(submit) -> None:
    response = await submit(with_plugin("nowhere"))
    assert response.status_code == 400 and "unknown task plugin package 'nowhere'" in response.json()["detail"]


async def test_a_job_naming_a_plugin_gets_it_mounted_read_only_in_its_pod(
    operator_process, node_agent, submit, http, caller, admin, namespace, system_namespace, admin_caller
) -> None:
    from dpkube.k8s.plugins import package_config_map, package_copy

    name = f"helpers_{uuid.uuid4().hex[:6]}"
    await admin.create(core_path("configmaps", system_namespace), {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": package_config_map(name)},
        "data": {"helpers.py": "VALUE = 1\n"}})
    job = (await submit(with_plugin(name))).json()
    finished = await wait_for_status(http, caller, job["jobId"], "finished", "failed")
    assert finished["status"] == "finished"
    (query,) = [q for q in await dpqueries(admin, namespace) if q["metadata"]["name"] == f"dioptra-{job['jobId']}"]
    assert query["spec"]["plugins"] == [name]
    copy = await admin.get(core_path("configmaps", namespace, package_copy(name)))
    assert copy["data"] == {"helpers.py": "VALUE = 1\n"}


async def test_another_users_job_is_the_job_404(submit, http, new_caller) -> None:
    job = (await submit()).json()
    other = await new_caller()
    response = await http.get(f"{API}/job/{job['jobId']}", headers=other.basic)
    assert (response.status_code, response.json()) == (404, {"message": "Not Found - The requested job does not exist"})


async def test_the_job_list_shows_each_user_their_own_jobs_and_an_admin_all(submit, http, caller, new_caller,
                                                                            admin_caller) -> None:
    other = await new_caller()
    mine = (await submit()).json()
    theirs = (await submit(who=other)).json()

    async def listed(who) -> set[str]:
        return {job["jobId"] for job in (await http.get(f"{API}/job/", headers=who.basic)).json()}

    assert mine["jobId"] in await listed(caller) and theirs["jobId"] not in await listed(caller)
    assert theirs["jobId"] in await listed(other) and mine["jobId"] not in await listed(other)
    assert {mine["jobId"], theirs["jobId"]} <= await listed(admin_caller)


async def test_an_admin_reads_any_job(submit, http, admin_caller) -> None:
    job = (await submit()).json()
    assert (await http.get(f"{API}/job/{job['jobId']}", headers=admin_caller.basic)).status_code == 200


async def test_another_users_job_cannot_be_a_dependency(submit, new_caller) -> None:
    job = (await submit()).json()
    other = await new_caller()
    response = await submit(who=other, dependsOn=job["jobId"])
    assert (response.status_code, response.json()["message"]) == (400, FORM_ERROR)


async def test_a_job_lookup_reads_one_object(submit, settings, counting, engine_pool, caller) -> None:
    job = (await submit()).json()
    async for app in running_app(settings, counting, engine_pool):
        async with http_client(app) as http:
            counting.calls.clear()
            found = await http.get(f"{API}/job/{job['jobId']}", headers=caller.basic)
    assert found.status_code == 200
    assert [(c.method, c.path.rsplit("/", 1)[-1]) for c in counting.calls if "/dpqueries" in c.path] == [
        ("GET", f"dioptra-{job['jobId']}")]


async def test_an_alias_bomb_workflow_is_a_form_error_naming_the_alias(submit) -> None:
    response = await submit(workflow(hostile.alias_bomb(9)))
    assert (response.status_code, response.json()["message"]) == (400, FORM_ERROR)
    assert "alias" in response.json()["detail"]


async def test_a_bz2_bomb_workflow_is_a_form_error_naming_the_limit(submit) -> None:
    response = await submit(hostile.bz2_bomb(streams=50))
    assert (response.status_code, response.json()["message"]) == (400, FORM_ERROR)
    assert "larger than" in response.json()["detail"]
