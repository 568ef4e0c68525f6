"""The Dioptra-style Python client against the real facade: every method, through the v0 routes.

Skipped when the facade serves no Dioptra routes. Queues and plugins are cluster-wide, so each test
takes fresh names; registering queues and plugins needs an admin token.
"""

from __future__ import annotations

import asyncio
import io
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dpkube.client import DioptraClient
from dpkube_testing.served import served_facade, served_settings

from .conftest import Caller

EXAMPLE = Path(__file__).parents[3] / "examples" / "dioptra-workflow" / "MLproject"
JOB_KEYS = {"jobId", "mlflowRunId", "experimentId", "queueId", "createdOn", "lastModified", "timeout",
            "workflowUri", "entryPoint", "entryPointKwargs", "dependsOn", "status"}


def tar_gz(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, mode="w:gz") as archive:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    return path


@pytest.fixture
def facade_url(namespace: str, system_namespace: str, control_plane) -> Iterator[str]:
    with served_facade(served_settings(namespace, system_namespace, str(control_plane.kubeconfig))) as url:
        if httpx.get(f"{url}/api/v0/queue/").status_code == 404:
            pytest.skip("the facade serves no Dioptra v0 routes")
        yield url


@pytest.fixture
async def admin_caller(new_caller) -> Caller:
    return await new_caller(admin_user=True)


@pytest.fixture
def dioptra(facade_url: str, caller: Caller) -> Iterator[DioptraClient]:
    with DioptraClient(facade_url, token=caller.token) as client:
        yield client


@pytest.fixture
def admin_dioptra(facade_url: str, admin_caller: Caller) -> Iterator[DioptraClient]:
    with DioptraClient(f"{facade_url}/", token=admin_caller.token) as client:
        yield client


async def call(function, *args, **kwargs):
    return await asyncio.to_thread(function, *args, **kwargs)


async def test_experiments_are_registered_and_found_by_id_and_slugified_name(dioptra: DioptraClient) -> None:
    name = f"My Exp {uuid.uuid4().hex[:6]}"
    registered = await call(dioptra.register_experiment, name)
    assert registered["name"] == name.lower().replace(" ", "-") and registered["experimentId"] > 0
    assert await call(dioptra.get_experiment_by_id, registered["experimentId"]) == registered
    assert await call(dioptra.get_experiment_by_name, name.upper()) == registered
    assert registered in await call(dioptra.list_experiments)
    duplicate = await call(dioptra.register_experiment, name)
    assert duplicate["message"].startswith("Bad Request - The experiment name")
    assert "Not Found" in (await call(dioptra.get_experiment_by_id, 999999))["message"]


async def test_queues_are_registered_locked_and_unlocked(dioptra: DioptraClient,
                                                         admin_dioptra: DioptraClient) -> None:
    name = f"tensorflow_cpu_{uuid.uuid4().hex[:8]}"
    registered = await call(admin_dioptra.register_queue, name)
    assert registered["name"] == name and registered["queueId"] > 0
    assert await call(dioptra.get_queue_by_id, registered["queueId"]) == registered
    assert await call(dioptra.get_queue_by_name, name) == registered
    assert registered in await call(dioptra.list_queues)

    assert await call(admin_dioptra.lock_queue, name) == {"status": "Success", "name": [name]}
    assert registered["name"] not in [q["name"] for q in await call(dioptra.list_queues)]
    assert (await call(dioptra.get_queue_by_name, name))["name"] == name
    assert await call(admin_dioptra.unlock_queue, name) == {"status": "Success", "name": [name]}
    assert name in [q["name"] for q in await call(dioptra.list_queues)]


async def test_a_job_is_submitted_with_the_workflow_and_found_by_id(dioptra: DioptraClient,
                                                                     admin_dioptra: DioptraClient,
                                                                     tmp_path: Path) -> None:
    queue = (await call(admin_dioptra.register_queue, f"q_{uuid.uuid4().hex[:8]}"))["name"]
    experiment = (await call(dioptra.register_experiment, f"penguins-{uuid.uuid4().hex[:6]}"))["name"]
    archive = tar_gz(tmp_path / "workflows.tar.gz", {"dioptra-workflow/MLproject": EXAMPLE.read_bytes()})
    await call(admin_dioptra.lock_queue, queue)
    refused = await call(dioptra.submit_job, archive, experiment, "penguin_count", queue=queue)
    assert refused == {"message": "Forbidden - The requested queue is locked."}
    await call(admin_dioptra.unlock_queue, queue)

    job = await call(dioptra.submit_job, archive, experiment, "penguin_count", "-P epsilon=0.5", queue=queue)
    assert set(job) == JOB_KEYS
    assert (job["status"], job["entryPointKwargs"], job["timeout"]) == ("queued", "-P epsilon=0.5", "24h")
    assert job["workflowUri"].endswith("workflows.tar.gz")
    found = await call(dioptra.get_job_by_id, job["jobId"])
    assert found["jobId"] == job["jobId"] and found["entryPoint"] == "penguin_count"
    assert job["jobId"] in [j["jobId"] for j in await call(dioptra.list_jobs)]


async def test_builtin_and_custom_task_plugins(dioptra: DioptraClient, admin_dioptra: DioptraClient,
                                               tmp_path: Path) -> None:
    builtins = await call(dioptra.list_builtin_task_plugins)
    assert {p["taskPluginName"] for p in builtins} >= {"smartnoise_sql", "opendp", "diffprivlib", "smartnoise_synth"}
    assert (await call(dioptra.get_builtin_task_plugin, "opendp"))["collection"] == "dioptra_builtins"

    name = f"p_{uuid.uuid4().hex[:8]}"
    package = tar_gz(tmp_path / f"{name}.tar.gz", {f"{name}/__init__.py": b"", f"{name}/count.py": b"X = 1\n"})
    uploaded = await call(admin_dioptra.upload_custom_plugin_package, name, package)
    assert uploaded["taskPluginName"] == name and uploaded["collection"] == "dioptra_custom"
    assert set(uploaded["modules"]) == {"__init__.py", "count.py"}
    assert await call(dioptra.get_custom_task_plugin, name) == uploaded
    assert uploaded in await call(dioptra.list_custom_task_plugins)
    everything = await call(dioptra.list_all_task_plugins)
    assert everything.index(uploaded) >= len(builtins)

    assert (await call(admin_dioptra.delete_custom_task_plugin, name))["taskPluginName"] == [name]
    assert (await call(admin_dioptra.delete_custom_task_plugin, name))["taskPluginName"] == []
    assert "Not Found" in (await call(dioptra.get_custom_task_plugin, name))["message"]
