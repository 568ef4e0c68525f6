"""Runner pods forked from the node agent's zygote: each is still a process of its own, a cold pod imports
only its query's library, the zygote never holds a query, and every query draws noise of its own."""

from __future__ import annotations

import asyncio
import re
import uuid
from pathlib import Path

import pytest

from dpkube.controlplane.local import LocalControlPlane
from dpkube.k8s.budgets import Budgets
from dpkube.k8s.client import KubeClient, core_path
from dpkube.k8s.pods import WARM_POOL_LABEL
from dpkube_testing.builders import dpquery, queue
from dpkube_testing.processes import parent_of
from dpkube_testing.waiting import wait_for_phase, wait_for_warm_pod

pytestmark = pytest.mark.usefixtures("operator_process", "node_agent")
SYSTEM = "dpkube-system"
WRITABLE_REGION = re.compile(rb"^([0-9a-f]+)-([0-9a-f]+) rw")


def zygote_pid(workdir: Path) -> int:
    """The session node agent's zygote, found by its socket (another agent's may run under the same folder). Its
    forked children show the same command line: the zygote is the one whose parent does not (PIDs wrap, so the
    lowest is not always it)."""
    socket = str(workdir / "agent" / "zygote" / "zygote.sock").encode()
    found = set()
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"dpkube.runner.zygote" in argv and socket in argv:
            found.add(int(proc.name))
    zygotes = set()
    for pid in found:
        try:
            if parent_of(pid) not in found:
                zygotes.add(pid)
        except OSError:
            continue  # a child that has just ended
    assert len(zygotes) == 1, f"the node agent runs no zygote, or several: {zygotes}"
    return zygotes.pop()


def writable_memory_holds(pid: int, needle: bytes) -> bool:
    """Whether any writable region of the process (heap, stacks, interpreter objects) contains `needle`."""
    with open(f"/proc/{pid}/maps", "rb") as maps, open(f"/proc/{pid}/mem", "rb", buffering=0) as memory:
        for line in maps:
            region = WRITABLE_REGION.match(line)
            if region is None:
                continue
            start, end = int(region[1], 16), int(region[2], 16)
            try:
                memory.seek(start)
                if needle in memory.read(end - start):
                    return True
            except OSError:
                continue
    return False


async def test_a_warm_runner_pod_is_a_process_forked_from_the_zygote(
    admin: KubeClient, namespace: str, create, control_plane: LocalControlPlane
) -> None:
    name = f"zygote-{namespace}"
    await create(queue(name, warmPods=1, warmLibraries=["opendp"]))
    await create(dpquery("starter", user="zygote", queue=name, mode="cost"))
    await wait_for_warm_pod(admin, SYSTEM, name)
    pids = await running_warm_pids(admin, namespace, name)
    assert {parent_of(pid) for pid in pids} == {zygote_pid(control_plane.workdir)}


async def running_warm_pids(admin: KubeClient, namespace: str, queue_name: str, timeout: float = 60) -> list[int]:
    """The processes of the queue's warm pods running in `namespace` (the queue may report a warm pod of another
    namespace first)."""
    for _ in range(int(timeout / 0.1)):
        pods = (await admin.list(core_path("pods", namespace), label_selector=f"{WARM_POOL_LABEL}={queue_name}"))
        pids = [int(status["containerID"].rpartition("://")[2]) for pod in pods["items"]
                for status in pod["status"].get("containerStatuses") or [] if "running" in status["state"]]
        if pids:
            return pids
        await asyncio.sleep(0.1)
    raise AssertionError(f"no warm pod of queue {queue_name} runs in {namespace}")


async def test_a_cold_query_pod_imports_only_its_query_library(
    admin: KubeClient, namespace: str, budgets: Budgets, create
) -> None:
    await budgets.grant("coldlib", "PENGUIN", epsilon=1, delta=0.005)
    await create(dpquery("count", user="coldlib"))
    for _ in range(1500):  # the pod goes once its query has ended: read it while it runs
        pods = (await admin.list(core_path("pods", namespace)))["items"]
        if pods:
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError("the query got no pod")
    body = await wait_for_phase(admin, namespace, "count", "Succeeded", "Failed", "Rejected")
    assert body["status"]["phase"] == "Succeeded", body["status"]
    env = {variable["name"]: variable.get("value") for variable in pods[0]["spec"]["containers"][0]["env"]}
    assert env["DPKUBE_LIBRARIES"] == "smartnoise-sql"


async def test_the_zygote_never_holds_a_query(
    admin: KubeClient, namespace: str, budgets: Budgets, create, control_plane: LocalControlPlane
) -> None:
    marker = f"nb_{uuid.uuid4().hex}"
    assert writable_memory_holds(zygote_pid(control_plane.workdir), b"dpkube.runner")  # the scan sees its heap
    await budgets.grant("marked", "PENGUIN", epsilon=1, delta=0.005)
    await create(dpquery("marked", user="marked", smartnoiseSql={
        "queryStr": f"SELECT COUNT(*) AS {marker} FROM df", "epsilon": 0.1, "delta": 1e-5}))
    body = await wait_for_phase(admin, namespace, "marked", "Succeeded", "Failed", "Rejected")
    assert body["status"]["phase"] == "Succeeded", body["status"]
    assert not writable_memory_holds(zygote_pid(control_plane.workdir), marker.encode())


async def test_identical_queries_forked_from_one_zygote_draw_different_noise(
    admin: KubeClient, namespace: str, budgets: Budgets, create
) -> None:
    await budgets.grant("twins", "PENGUIN", epsilon=10, delta=0.005)
    for name in ("first", "second"):
        await create(dpquery(name, user="twins", library="opendp"))
    results = []
    for name in ("first", "second"):
        body = await wait_for_phase(admin, namespace, name, "Succeeded", "Failed", "Rejected", timeout=60)
        assert body["status"]["phase"] == "Succeeded", body["status"]
        results.append(body["status"]["result"])
    assert results[0] != results[1]
