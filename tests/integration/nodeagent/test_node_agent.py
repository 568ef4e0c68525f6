"""The node agent against a real API server: it binds, runs and reports pods as a kubelet would."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from dpkube.controlplane.local import LocalControlPlane
from dpkube.k8s.client import KubeClient, KubeConfig, NotFound, core_path
from dpkube.nodeagent import AgentSettings, NodeAgent
from dpkube_testing.processes import is_running, parent_of

PYTHON = sys.executable
# Our pods ask for a scheduler of their own, so an agent binding for default-scheduler elsewhere in the
# session (the operator tests run one over every namespace) never takes them.
SCHEDULER = "nodeagent-tests"
FAST = {"restart_backoff_seconds": 0.2, "heartbeat_seconds": 1.0, "config_retry_seconds": 0.3, "zygote": False,
        "scheduler_name": SCHEDULER}

PodCheck = Callable[[Mapping[str, Any]], bool]


def phase(*phases: str) -> PodCheck:
    return lambda pod: pod.get("status", {}).get("phase") in phases


def container_status(pod: Mapping[str, Any]) -> dict[str, Any]:
    return pod["status"]["containerStatuses"][0]


def terminated(pod: Mapping[str, Any]) -> dict[str, Any]:
    return container_status(pod)["state"]["terminated"]


def condition(pod: Mapping[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in pod["status"]["conditions"] if c["type"] == kind)


def pid_of(pod: Mapping[str, Any]) -> int:
    return int(container_status(pod)["containerID"].removeprefix("dpkube-local://"))


def pod(name: str, command: list[str], **spec: Any) -> dict[str, Any]:
    container = {"name": "main", "image": "dpkube/runner:dev", "command": command}
    container.update(spec.pop("container", {}))
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"restartPolicy": "Never", "schedulerName": SCHEDULER, "containers": [container], **spec}}


def python(source: str) -> list[str]:
    return [PYTHON, "-c", textwrap.dedent(source)]


WRITE_MESSAGE = "import os, pathlib; pathlib.Path(os.environ['DPKUBE_TERMINATION_LOG']).write_text({})"


async def wait_for(client: KubeClient, namespace: str, name: str, check: PodCheck, timeout: float = 15) -> dict:
    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        with contextlib.suppress(NotFound):
            last = await client.get(core_path("pods", namespace, name))
            if check(last):
                return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"pod {name} never matched; last status: {json.dumps(last.get('status'), indent=1)}")


async def wait_gone(client: KubeClient, namespace: str, name: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            await client.get(core_path("pods", namespace, name))
        except NotFound:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"pod {name} still exists")


async def create(client: KubeClient, namespace: str, manifest: Mapping[str, Any]) -> dict[str, Any]:
    return await client.create(core_path("pods", namespace), manifest)


@pytest.fixture
async def ns(admin: KubeClient, namespace: str) -> str:
    """The test namespace with its `default` ServiceAccount (no controller-manager creates it here)."""
    await admin.create(core_path("serviceaccounts", namespace), {
        "apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}})
    return namespace


@contextlib.asynccontextmanager
async def running_agent(config: KubeConfig, settings: AgentSettings) -> AsyncIterator[NodeAgent]:
    agent = NodeAgent(config, settings)
    task = asyncio.create_task(agent.run())
    registered = asyncio.create_task(agent.registered.wait())
    await asyncio.wait([task, registered], return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        task.result()
    try:
        yield agent
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.fixture
async def agent(kube_config: KubeConfig, ns: str, tmp_path: Path) -> AsyncIterator[NodeAgent]:
    """A node agent in this event loop, for this test's namespace only, on a node of its own."""
    settings = AgentSettings(node_name=f"node-{ns}", namespaces=(ns,), workdir=tmp_path / "agent", **FAST)
    async with running_agent(kube_config, settings) as started:
        yield started


async def test_node_is_registered_ready(admin: KubeClient, agent: NodeAgent) -> None:
    node = await admin.get(core_path("nodes", name=agent.settings.node_name))
    assert condition(node, "Ready")["status"] == "True"
    assert node["metadata"]["labels"]["dpkube.io/local-node"] == "true"
    assert node["status"]["capacity"]["cpu"] == str(os.cpu_count())
    assert node["status"]["allocatable"]["pods"] == "110"
    assert {"type": "InternalIP", "address": "127.0.0.1"} in node["status"]["addresses"]
    lease = await admin.get(
        f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{agent.settings.node_name}")
    assert lease["spec"]["holderIdentity"] == agent.settings.node_name


async def test_node_heartbeat_renews_the_lease(admin: KubeClient, agent: NodeAgent) -> None:
    path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{agent.settings.node_name}"
    first = (await admin.get(path))["spec"]["renewTime"]
    await asyncio.sleep(1.3)
    assert (await admin.get(path))["spec"]["renewTime"] > first


async def test_unscheduled_pod_is_bound_to_the_local_node(admin: KubeClient, ns: str, agent: NodeAgent) -> None:
    await create(admin, ns, pod("bound", ["sleep", "5"]))
    bound = await wait_for(admin, ns, "bound", lambda p: bool(p["spec"].get("nodeName")))
    assert bound["spec"]["nodeName"] == agent.settings.node_name
    assert condition(bound, "PodScheduled")["status"] == "True"


async def test_pod_for_another_scheduler_is_left_unbound(admin: KubeClient, ns: str, agent: NodeAgent) -> None:
    await create(admin, ns, pod("elsewhere", ["true"], schedulerName="other-scheduler"))
    await create(admin, ns, pod("here", ["true"]))
    await wait_for(admin, ns, "here", phase("Succeeded"))
    assert not (await admin.get(core_path("pods", ns, "elsewhere")))["spec"].get("nodeName")


async def test_pod_whose_node_selector_does_not_match_is_unschedulable(
        admin: KubeClient, ns: str, agent: NodeAgent) -> None:
    await create(admin, ns, pod("picky", ["true"], nodeSelector={"gpu": "yes"}))
    picky = await wait_for(admin, ns, "picky", lambda p: any(
        c.get("reason") == "Unschedulable" for c in p["status"].get("conditions") or []))
    assert not picky["spec"].get("nodeName")
    assert picky["status"]["phase"] == "Pending"


async def test_binding_can_be_turned_off(admin: KubeClient, kube_config: KubeConfig, ns: str, tmp_path: Path) -> None:
    settings = AgentSettings(node_name=f"node-{ns}", namespaces=(ns,), workdir=tmp_path, bind=False, **FAST)
    async with running_agent(kube_config, settings):
        await create(admin, ns, pod("unbound", ["true"]))
        await create(admin, ns, pod("prebound", ["true"], nodeName=f"node-{ns}"))
        await wait_for(admin, ns, "prebound", phase("Succeeded"))
        assert not (await admin.get(core_path("pods", ns, "unbound")))["spec"].get("nodeName")


async def test_pod_running_true_succeeds_with_exit_code_0(admin: KubeClient, ns: str, agent: NodeAgent) -> None:
    await create(admin, ns, pod("ok", ["true"]))
    done = await wait_for(admin, ns, "ok", phase("Succeeded", "Failed"))
    assert done["status"]["phase"] == "Succeeded"
    assert terminated(done)["exitCode"] == 0
    assert terminated(done)["reason"] == "Completed"
    assert terminated(done)["startedAt"] <= terminated(done)["finishedAt"]
    assert done["status"]["podIP"] == "127.0.0.1"
    assert done["status"]["hostIP"] == "127.0.0.1"
    assert done["status"]["startTime"]
    assert condition(done, "Ready")["status"] == "False"


async def test_trivial_pod_costs_two_status_writes(admin: KubeClient, ns: str, agent: NodeAgent) -> None:
    seen: list[tuple[str, str]] = []

    async def watch() -> None:
        async for event in admin.watch(core_path("pods", ns), field_selector="metadata.name=frugal"):
            if event["type"] != "BOOKMARK":
                seen.append((event["type"], event["object"].get("status", {}).get("phase", "")))

    watcher = asyncio.create_task(watch())
    await asyncio.sleep(0.2)
    await create(admin, ns, pod("frugal", ["true"]))
    await wait_for(admin, ns, "frugal", phase("Succeeded"))
    await asyncio.sleep(0.5)
    watcher.cancel()
    assert seen == [("ADDED", "Pending"), ("MODIFIED", "Pending"), ("MODIFIED", "Running"),
                    ("MODIFIED", "Succeeded")]


async def test_running_pod_is_ready_with_its_process_as_container_id(
        admin: KubeClient, ns: str, agent: NodeAgent) -> None:
    await create(admin, ns, pod("long", ["sleep", "30"]))
    running = await wait_for(admin, ns, "long", phase("Running"))
    status = container_status(running)
    assert status["ready"] is True
    assert status["started"] is True
    assert status["restartCount"] == 0
    assert status["state"]["running"]["startedAt"]
    assert status["image"] == "dpkube/runner:dev"
    assert is_running(pid_of(running))
    for kind in ("Initialized", "ContainersReady", "Ready", "PodScheduled"):
        assert condition(running, kind)["status"] == "True"
    await admin.delete(core_path("pods", ns, "long"))


async def test_failing_pod_is_failed_with_exit_code_and_log_tail_message(
        admin: KubeClient, ns: str, agent: NodeAgent) -> None:
    script = "for i in $(seq 1 100); do echo line $i; done; echo oops >&2; exit 3"
    await create(admin, ns, pod("fails", ["sh", "-c", script],
                                container={"terminationMessagePolicy": "FallbackToLogsOnError"}))
    failed = await wait_for(admin, ns, "fails", phase("Succeeded", "Failed"))
    assert failed["status"]["phase"] == "Failed"
    assert terminated(failed)["exitCode"] == 3
    assert terminated(failed)["reason"] == "Error"
    message = terminated(failed)["message"]
    assert message.startswith("line 22\n")
    assert message.endswith("line 100\noops\n")


async def test_failing_pod_with_file_policy_has_no_log_message(admin: KubeClient, ns: str, agent: NodeAgent) -> None:
    await create(admin, ns, pod("quiet", ["sh", "-c", "echo noisy; exit 1"]))
    failed = await wait_for(admin, ns, "quiet", phase("Failed"))
    assert "message" not in terminated(failed)


async def test_termination_message_file_becomes_the_status_message(
        admin: KubeClient, ns: str, agent: NodeAgent) -> None:
    await create(admin, ns, pod("says", python(WRITE_MESSAGE.format("'{\"result\": 42}'"))))
    done = await wait_for(admin, ns, "says", phase("Succeeded"))
    assert json.loads(terminated(done)["message"]) == {"result": 42}


async def test_termination_message_keeps_its_last_4096_bytes(admin: KubeClient, ns: str, agent: NodeAgent) -> None:
    await create(admin, ns, pod("long-message", python(WRITE_MESSAGE.format("'a' * 1000 + 'b' * 4096"))))
    done = await wait_for(admin, ns, "long-message", phase("Succeeded"))
    assert terminated(done)["message"] == "b" * 4096


async def test_env_from_field_ref_secret_and_configmap_reaches_the_process(
        admin: KubeClient, ns: str, agent: NodeAgent) -> None:
    await admin.create(core_path("secrets", ns), {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"},
                                                   "stringData": {"password": "s3cret", "user": "ann"}})
    await admin.create(core_path("configmaps", ns), {"apiVersion": "v1", "kind": "ConfigMap",
                                                      "metadata": {"name": "settings"},
                                                      "data": {"level": "debug", "mode": "fast"}})
    env = [
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "POD_UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
        {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        {"name": "ACCOUNT", "valueFrom": {"fieldRef": {"fieldPath": "spec.serviceAccountName"}}},
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
        {"name": "LEVEL", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "level"}}},
        {"name": "ABSENT", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "nope", "optional": True}}},
        {"name": "NO_MAP", "valueFrom": {"configMapKeyRef": {"name": "no-such-map", "key": "k", "optional": True}}},
        {"name": "PLAIN", "value": "at-$(LEVEL)-$$(LEVEL)-$(UNDEFINED)"},
    ]
    env_from = [{"configMapRef": {"name": "settings"}, "prefix": "CM_"}, {"secretRef": {"name": "creds"}}]
    dump = WRITE_MESSAGE.format("__import__('json').dumps(dict(os.environ))")
    created = await create(admin, ns, pod("envs", python(dump), container={"env": env, "envFrom": env_from}))
    done = await wait_for(admin, ns, "envs", phase("Succeeded", "Failed"))
    seen = json.loads(terminated(done)["message"])
    assert seen["POD_NAME"] == "envs"
    assert seen["POD_NAMESPACE"] == ns
    assert seen["POD_UID"] == created["metadata"]["uid"]
    assert seen["NODE"] == agent.settings.node_name
    assert seen["ACCOUNT"] == "default"
    assert seen["POD_IP"] == "127.0.0.1"
    assert seen["PASSWORD"] == "s3cret"
    assert seen["LEVEL"] == "debug"
    assert "ABSENT" not in seen and "NO_MAP" not in seen
    assert seen["PLAIN"] == "at-debug-$(LEVEL)-$(UNDEFINED)"
    assert seen["CM_mode"] == "fast" and seen["user"] == "ann"
    assert seen["KUBERNETES_SERVICE_HOST"] == "127.0.0.1"
    assert seen["KUBERNETES_SERVICE_PORT"] == str(int(agent.config.server.rsplit(":", 1)[1]))
    assert seen["PATH"].split(os.pathsep)[0] == os.path.dirname(PYTHON)
    assert "KUBECONFIG" not in seen


async def test_command_and_args_expand_env_variables(admin: KubeClient, ns: str, agent: NodeAgent) -> None:
    manifest = pod("expands", ["sh", "-c"], container={
        "args": ["printf '%s' '$(GREETING) $$(GREETING)' > \"$DPKUBE_TERMINATION_LOG\""],
        "env": [{"name": "GREETING", "value": "hi"}]})
    await create(admin, ns, manifest)
    done = await wait_for(admin, ns, "expands", phase("Succeeded", "Failed"))
    assert terminated(done)["message"] == "hi $(GREETING)"


async def test_missing_secret_keeps_pod_pending_until_it_exists(admin: KubeClient, ns: str, agent: NodeAgent) -> None:
    env = [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "later", "key": "token"}}}]
    await create(admin, ns, pod("waits", python(WRITE_MESSAGE.format("os.environ['TOKEN']")), container={"env": env}))
    waiting = await wait_for(admin, ns, "waits", lambda p: bool(p["status"].get("containerStatuses")))
    assert waiting["status"]["phase"] == "Pending"
    assert container_status(waiting)["state"]["waiting"] == {
        "reason": "CreateContainerConfigError", "message": 'secret "later" not found'}
    await admin.create(core_path("secrets", ns), {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "later"},
                                                   "stringData": {"token": "now"}})
    done = await wait_for(admin, ns, "waits", phase("Succeeded"))
    assert terminated(done)["message"] == "now"


async def test_missing_executable_fails_with_start_error(admin: KubeClient, ns: str, agent: NodeAgent) -> None:
    await create(admin, ns, pod("no-exe", ["/no/such/program"]))
    failed = await wait_for(admin, ns, "no-exe", phase("Failed"))
    assert terminated(failed)["exitCode"] == 128
    assert terminated(failed)["reason"] == "StartError"


async def test_deleted_pod_kills_its_process_and_is_removed(admin: KubeClient, ns: str, agent: NodeAgent) -> None:
    await create(admin, ns, pod("doomed", ["sleep", "60"]))
    pid = pid_of(await wait_for(admin, ns, "doomed", phase("Running")))
    await admin.delete(core_path("pods", ns, "doomed"))
    await wait_gone(admin, ns, "doomed")
    assert not is_running(pid)


async def test_force_deleted_pod_has_its_process_killed(admin: KubeClient, ns: str, agent: NodeAgent) -> None:
    await create(admin, ns, pod("forced", ["sleep", "60"]))
    pid = pid_of(await wait_for(admin, ns, "forced", phase("Running")))
    await admin.delete(core_path("pods", ns, "forced"), grace_seconds=0)
    deadline = time.monotonic() + 5
    while is_running(pid) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert not is_running(pid)


async def test_process_ignoring_sigterm_is_killed_after_the_grace_period(
        admin: KubeClient, ns: str, agent: NodeAgent) -> None:
    await create(admin, ns, pod("stubborn", ["sh", "-c", "trap '' TERM; sleep 60"]))
    pid = pid_of(await wait_for(admin, ns, "stubborn", phase("Running")))
    started = time.monotonic()
    await admin.delete(core_path("pods", ns, "stubborn"), grace_seconds=1)
    await wait_gone(admin, ns, "stubborn")
    assert 1.0 <= time.monotonic() - started < 5
    assert not is_running(pid)


async def test_force_delete_during_the_grace_period_cuts_it_short(
        admin: KubeClient, ns: str, agent: NodeAgent) -> None:
    await create(admin, ns, pod("cut-short", ["sh", "-c", "trap '' TERM; sleep 60"]))
    pid = pid_of(await wait_for(admin, ns, "cut-short", phase("Running")))
    await admin.delete(core_path("pods", ns, "cut-short"), grace_seconds=30)
    started = time.monotonic()
    await admin.delete(core_path("pods", ns, "cut-short"), grace_seconds=0)
    while is_running(pid) and time.monotonic() - started < 10:
        await asyncio.sleep(0.05)
    assert not is_running(pid)
    assert time.monotonic() - started < 2 + agent.settings.shutdown_grace_seconds


async def test_active_deadline_kills_and_fails_with_deadline_exceeded(
        admin: KubeClient, ns: str, agent: NodeAgent) -> None:
    await create(admin, ns, pod("slow", ["sleep", "60"], activeDeadlineSeconds=1))
    pid = pid_of(await wait_for(admin, ns, "slow", phase("Running")))
    failed = await wait_for(admin, ns, "slow", phase("Failed", "Succeeded"), timeout=10)
    assert failed["status"]["phase"] == "Failed"
    assert failed["status"]["reason"] == "DeadlineExceeded"
    assert terminated(failed)["reason"] == "DeadlineExceeded"
    assert not is_running(pid)


async def test_memory_limit_kills_the_process_as_oom_killed(admin: KubeClient, ns: str, agent: NodeAgent) -> None:
    hog = python("import time; block = b'x' * (300 * 1024 * 1024); time.sleep(30)")
    await create(admin, ns, pod("hog", hog, container={"resources": {"limits": {"memory": "100Mi"}}}))
    failed = await wait_for(admin, ns, "hog", phase("Failed", "Succeeded"))
    assert terminated(failed)["reason"] == "OOMKilled"
    assert terminated(failed)["exitCode"] == 137


async def test_on_failure_pod_restarts_until_it_succeeds(admin: KubeClient, ns: str, agent: NodeAgent) -> None:
    script = "n=$(cat runs 2>/dev/null || echo 0); n=$((n+1)); echo $n > runs; [ $n -ge 3 ]"
    await create(admin, ns, pod("retries", ["sh", "-c", script], restartPolicy="OnFailure"))
    done = await wait_for(admin, ns, "retries", phase("Succeeded", "Failed"))
    assert done["status"]["phase"] == "Succeeded"
    assert container_status(done)["restartCount"] == 2
    assert container_status(done)["lastState"]["terminated"]["exitCode"] == 1


async def test_always_pod_is_restarted_and_stays_running(admin: KubeClient, ns: str, agent: NodeAgent) -> None:
    await create(admin, ns, pod("forever", ["true"], restartPolicy="Always"))
    restarted = await wait_for(admin, ns, "forever", lambda p: bool(
        p["status"].get("containerStatuses")) and container_status(p)["restartCount"] >= 2)
    assert restarted["status"]["phase"] == "Running"
    assert container_status(restarted)["lastState"]["terminated"]["reason"] == "Completed"
    await admin.delete(core_path("pods", ns, "forever"))
    await wait_gone(admin, ns, "forever")


async def test_service_account_token_lets_the_process_call_the_api(
        admin: KubeClient, ns: str, agent: NodeAgent) -> None:
    rbac = "/apis/rbac.authorization.k8s.io/v1/namespaces/" + ns
    await admin.create(core_path("serviceaccounts", ns), {"apiVersion": "v1", "kind": "ServiceAccount",
                                                          "metadata": {"name": "reader"}})
    await admin.create(f"{rbac}/roles", {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "read-configmaps"},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]})
    await admin.create(f"{rbac}/rolebindings", {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "reader"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "read-configmaps"},
        "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": ns}]})
    await admin.create(core_path("configmaps", ns), {"apiVersion": "v1", "kind": "ConfigMap",
                                                      "metadata": {"name": "greeting"}, "data": {"text": "hello"}})
    client_script = """
        import asyncio, os, pathlib
        from dpkube.k8s.client import Forbidden, KubeClient, KubeConfig, core_path

        async def main():
            config = KubeConfig.load()
            async with KubeClient(config) as client:
                greeting = await client.get(core_path("configmaps", config.namespace, "greeting"))
                try:
                    await client.get(core_path("secrets", config.namespace, "any"))
                    secrets = "readable"
                except Forbidden:
                    secrets = "forbidden"
            pathlib.Path(os.environ["DPKUBE_TERMINATION_LOG"]).write_text(f"{greeting['data']['text']} {secrets}")

        asyncio.run(main())
    """
    await create(admin, ns, pod("caller", python(client_script), serviceAccountName="reader",
                                container={"terminationMessagePolicy": "FallbackToLogsOnError"}))
    done = await wait_for(admin, ns, "caller", phase("Succeeded", "Failed"))
    assert terminated(done)["message"] == "hello forbidden"


async def test_pod_opting_out_of_the_token_gets_none(admin: KubeClient, ns: str, agent: NodeAgent) -> None:
    check = WRITE_MESSAGE.format("os.environ.get('DPKUBE_SERVICEACCOUNT_DIR', 'none')")
    await create(admin, ns, pod("tokenless", python(check), automountServiceAccountToken=False))
    done = await wait_for(admin, ns, "tokenless", phase("Succeeded", "Failed"))
    assert terminated(done)["message"] == "none"


async def test_service_account_opting_out_of_the_token_gives_its_pods_none(
        admin: KubeClient, ns: str, agent: NodeAgent) -> None:
    await admin.create(core_path("serviceaccounts", ns), {"apiVersion": "v1", "kind": "ServiceAccount",
                                                          "metadata": {"name": "quiet"},
                                                          "automountServiceAccountToken": False})
    check = WRITE_MESSAGE.format("os.environ.get('DPKUBE_SERVICEACCOUNT_DIR', 'none')")
    await create(admin, ns, pod("quiet-account", python(check), serviceAccountName="quiet"))
    done = await wait_for(admin, ns, "quiet-account", phase("Succeeded", "Failed"))
    assert terminated(done)["message"] == "none"


def with_empty_dir(name: str, command: list[str], mount_path: str) -> dict[str, Any]:
    return pod(name, command, volumes=[{"name": "scratch", "emptyDir": {}}],
               container={"volumeMounts": [{"name": "scratch", "mountPath": mount_path}]})


async def test_an_empty_dir_at_tmp_is_the_containers_tmpdir_in_a_folder_of_its_pod(
        admin: KubeClient, ns: str, agent: NodeAgent) -> None:
    created = await create(admin, ns, with_empty_dir("tmpdir", python(WRITE_MESSAGE.format("os.environ['TMPDIR']")),
                                                     "/tmp"))
    done = await wait_for(admin, ns, "tmpdir", phase("Succeeded", "Failed"))
    tmpdir = Path(terminated(done)["message"])
    assert tmpdir.is_relative_to(agent.settings.pods_dir)
    assert created["metadata"]["uid"] in str(tmpdir)


async def test_unmounted_volume_runs_and_is_reported_in_a_warning_event_and_an_empty_dir_at_tmp_is_not(
        admin: KubeClient, ns: str, agent: NodeAgent) -> None:
    await create(admin, ns, with_empty_dir("tmp-only", ["true"], "/tmp"))
    await wait_for(admin, ns, "tmp-only", phase("Succeeded"))
    await create(admin, ns, with_empty_dir("scratchy", ["true"], "/scratch"))
    await wait_for(admin, ns, "scratchy", phase("Succeeded"))
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        events = (await admin.list(core_path("events", ns)))["items"]
        warnings = [e for e in events if e["reason"] == "VolumeNotMounted"]
        if warnings:
            break
        await asyncio.sleep(0.05)
    assert warnings[0]["type"] == "Warning"
    assert [w["involvedObject"]["name"] for w in warnings] == ["scratchy"]
    assert '"scratch"' in warnings[0]["message"]


async def test_a_container_forked_from_the_zygote_dies_with_it(
        admin: KubeClient, kube_config: KubeConfig, ns: str, tmp_path: Path) -> None:
    settings = AgentSettings(node_name=f"node-{ns}", namespaces=(ns,), workdir=tmp_path / "agent",
                             **{**FAST, "zygote": True})
    waiting = [PYTHON, "-m", "dpkube.runner", "--warm", "--input", str(tmp_path / "never-written")]
    async with running_agent(kube_config, settings):
        await create(admin, ns, pod("forked", waiting))
        pid = pid_of(await wait_for(admin, ns, "forked", phase("Running"), timeout=60))
        zygote = parent_of(pid)
        assert b"dpkube.runner.zygote" in Path(f"/proc/{zygote}/cmdline").read_bytes()

        os.kill(zygote, signal.SIGKILL)

        deadline = time.monotonic() + 5
        while is_running(pid) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert not is_running(pid)


async def test_agent_shutdown_kills_its_processes_and_leaves_pods(
        admin: KubeClient, kube_config: KubeConfig, ns: str, tmp_path: Path) -> None:
    settings = AgentSettings(node_name=f"node-{ns}", namespaces=(ns,), workdir=tmp_path, **FAST)
    async with running_agent(kube_config, settings):
        await create(admin, ns, pod("left", ["sleep", "60"]))
        pid = pid_of(await wait_for(admin, ns, "left", phase("Running")))
    assert not is_running(pid)
    assert (await admin.get(core_path("pods", ns, "left")))["status"]["phase"] == "Running"


async def test_agent_restart_fails_orphaned_running_pods(
        admin: KubeClient, kube_config: KubeConfig, control_plane: LocalControlPlane, ns: str, tmp_path: Path,
) -> None:
    node = f"node-{ns}"
    crashed = subprocess.Popen([
        PYTHON, "-m", "dpkube.nodeagent", "--node", node, "--namespace", ns, "--workdir", str(tmp_path),
        "--kubeconfig", str(control_plane.kubeconfig), "--scheduler-name", SCHEDULER, "--log-level", "WARNING",
    ])
    try:
        await create(admin, ns, pod("orphan", ["sleep", "60"]))
        pid = pid_of(await wait_for(admin, ns, "orphan", phase("Running"), timeout=20))
    finally:
        os.kill(crashed.pid, signal.SIGKILL)
        crashed.wait()
    assert is_running(pid)
    await create(admin, ns, pod("newcomer", ["true"]))
    settings = AgentSettings(node_name=node, namespaces=(ns,), workdir=tmp_path, **FAST)
    async with running_agent(kube_config, settings):
        failed = await wait_for(admin, ns, "orphan", phase("Failed", "Succeeded"))
        await wait_for(admin, ns, "newcomer", phase("Succeeded"))
    assert failed["status"]["reason"] == "NodeAgentRestarted"
    assert terminated(failed)["reason"] == "NodeAgentRestarted"
    assert not is_running(pid)


class PhaseClock:
    """When each pod was first seen in each phase, from a watch (seconds since its create call)."""

    def __init__(self, client: KubeClient, namespace: str):
        self.client = client
        self.namespace = namespace
        self.created: dict[str, float] = {}
        self.seen: dict[tuple[str, str], float] = {}
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> PhaseClock:
        self._task = asyncio.create_task(self._watch())
        await asyncio.sleep(0.2)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _watch(self) -> None:
        async for event in self.client.watch(core_path("pods", self.namespace)):
            if event["type"] == "BOOKMARK":
                continue
            obj = event["object"]
            key = (obj["metadata"]["name"], obj.get("status", {}).get("phase", ""))
            self.seen.setdefault(key, time.monotonic())

    async def create(self, manifest: Mapping[str, Any]) -> None:
        self.created[manifest["metadata"]["name"]] = time.monotonic()
        await create(self.client, self.namespace, manifest)

    async def until(self, names: list[str], phase_name: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while any((n, phase_name) not in self.seen for n in names):
            assert time.monotonic() < deadline, f"not all pods reached {phase_name}"
            await asyncio.sleep(0.01)

    def latencies(self, names: list[str], phase_name: str) -> list[float]:
        return [self.seen[(n, phase_name)] - self.created[n] for n in names]


def summary(values: list[float]) -> str:
    ordered = sorted(values)
    return (f"p50 {statistics.median(ordered) * 1000:.0f} ms, "
            f"p95 {ordered[max(0, int(len(ordered) * 0.95) - 1)] * 1000:.0f} ms, max {ordered[-1] * 1000:.0f} ms")


async def test_trivial_pod_reaches_succeeded_well_within_the_cold_start_budget(
        admin: KubeClient, ns: str, agent: NodeAgent, capsys: pytest.CaptureFixture[str]) -> None:
    async with PhaseClock(admin, ns) as clock:
        one_by_one = [f"seq-{i}" for i in range(20)]
        for name in one_by_one:
            await clock.create(pod(name, [PYTHON, "-c", "pass"]))
            await clock.until([name], "Succeeded")
        together = [f"burst-{i}" for i in range(20)]
        await asyncio.gather(*(clock.create(pod(name, [PYTHON, "-c", "pass"])) for name in together))
        await clock.until(together, "Succeeded")
    lines = [
        f"20 pods one by one, created -> Running:   {summary(clock.latencies(one_by_one, 'Running'))}",
        f"20 pods one by one, created -> Succeeded: {summary(clock.latencies(one_by_one, 'Succeeded'))}",
        f"20 pods at once,    created -> Running:   {summary(clock.latencies(together, 'Running'))}",
        f"20 pods at once,    created -> Succeeded: {summary(clock.latencies(together, 'Succeeded'))}",
    ]
    with capsys.disabled():
        print("\nnode agent latency (python -c pass, service-account token mounted):")
        for line in lines:
            print("  " + line)
    assert statistics.median(clock.latencies(one_by_one, "Succeeded")) < 1.5
