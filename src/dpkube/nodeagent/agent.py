"""The node agent: plays the kubelet (and the scheduler's binding step) for one virtual node.

It registers the Node, binds unscheduled pods to it, and runs every pod bound to it as local processes,
one `PodWorker` task per pod, fed by a level-based list+watch of `spec.nodeName=<node>`. Stopping the
agent kills its processes and leaves the pods as they are; the next agent fails (or, when their restart
policy allows, restarts) the pods it finds Running without a process.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any
from urllib.parse import urlsplit

from dpkube.k8s.client import KubeClient, KubeConfig, core_path
from dpkube.k8s.events import EventRecorder
from dpkube.k8s.informer import list_and_watch
from dpkube.nodeagent.binder import Binder
from dpkube.nodeagent.environment import PodFacts
from dpkube.nodeagent.node import NODE_IP, NodeRegistration
from dpkube.nodeagent.process import GroupedProcess
from dpkube.nodeagent.settings import AgentSettings
from dpkube.nodeagent.worker import NodeContext, PodWorker
from dpkube.nodeagent.zygote import Zygote

# Writes go through a small pool: on a loaded machine a few busy connections beat many new TLS handshakes
# (20 pods at once reach Succeeded sooner with 8 connections than with 100). Watches have their own pool.
REQUEST_CONNECTIONS = 8

log = logging.getLogger(__name__)


def service_environment(server: str) -> dict[str, str]:
    """The `kubernetes` service variables every container gets, pointing at the agent's own API server."""
    url = urlsplit(server)
    host, port = url.hostname or NODE_IP, str(url.port or 443)
    return {
        "KUBERNETES_SERVICE_HOST": host, "KUBERNETES_SERVICE_PORT": port, "KUBERNETES_SERVICE_PORT_HTTPS": port,
        "KUBERNETES_PORT": f"tcp://{host}:{port}", f"KUBERNETES_PORT_{port}_TCP": f"tcp://{host}:{port}",
        f"KUBERNETES_PORT_{port}_TCP_PROTO": "tcp", f"KUBERNETES_PORT_{port}_TCP_PORT": port,
        f"KUBERNETES_PORT_{port}_TCP_ADDR": host,
    }


class NodeAgent:
    """Run with `await agent.run()`; cancel the task to stop it."""

    def __init__(self, config: KubeConfig, settings: AgentSettings | None = None):
        self.config = config
        self.settings = settings or AgentSettings()
        self.registered = asyncio.Event()
        self._workers: dict[str, tuple[PodWorker, asyncio.Task[None]]] = {}
        self._node: NodeContext | None = None

    async def run(self) -> None:
        settings = self.settings
        settings.pods_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        settings.pods_dir.chmod(0o700)
        scopes: list[str | None] = list(settings.namespaces) or [None]
        watches = len(scopes) * (2 if settings.bind else 1)
        zygote = Zygote(settings.pods_dir.parent / "zygote") if settings.zygote else None
        try:
            if zygote is not None:
                zygote.start()
            await self._serve(zygote, scopes, watches)
        finally:
            if zygote is not None:
                await zygote.stop()

    async def _serve(self, zygote: Zygote | None, scopes: list[str | None], watches: int) -> None:
        settings = self.settings
        async with KubeClient(self.config, max_connections=watches) as watcher, \
                KubeClient(self.config, max_connections=REQUEST_CONNECTIONS) as client:
            registration = NodeRegistration(client, settings.node_name, heartbeat_seconds=settings.heartbeat_seconds)
            await registration.register()
            cpu, memory = registration.allocatable
            self._node = NodeContext(
                client=client, settings=settings,
                events=EventRecorder(client, "dpkube-nodeagent", host=settings.node_name),
                facts=PodFacts(pod_ip=NODE_IP, host_ip=NODE_IP, node_cpu=cpu, node_memory=memory),
                service_env=service_environment(self.config.server), ca_file=self.config.ca_file, zygote=zygote,
            )
            log.info("node agent for %s running pods of %s", settings.node_name,
                     ", ".join(settings.namespaces) or "every namespace")
            try:
                async with asyncio.TaskGroup() as group:
                    group.create_task(registration.keep_ready(), name="node heartbeat")
                    for scope in scopes:
                        group.create_task(self._watch_node_pods(watcher, scope), name=f"pods of {scope or 'all'}")
                    if settings.bind:
                        binder = Binder(client, watcher, settings.node_name, registration.labels, scopes,
                                        scheduler_name=settings.scheduler_name)
                        group.create_task(binder.run(), name="binder")
                    self.registered.set()
            finally:
                await self._shutdown()

    async def _watch_node_pods(self, client: KubeClient, namespace: str | None) -> None:
        def relisted(pods: list[dict[str, Any]]) -> None:
            present = {pod["metadata"]["uid"] for pod in pods}
            for uid, (worker, _) in list(self._workers.items()):
                if uid not in present and namespace in (None, worker.namespace):
                    worker.vanish()
            for pod in pods:
                self._observe(pod)

        def changed(kind: str, pod: dict[str, Any]) -> None:
            if kind == "DELETED":
                entry = self._workers.get(pod["metadata"]["uid"])
                if entry:
                    entry[0].vanish()
            else:
                self._observe(pod)

        await list_and_watch(client, core_path("pods", namespace),
                             field_selector=f"spec.nodeName={self.settings.node_name}",
                             on_list=relisted, on_event=changed)

    def _observe(self, pod: dict[str, Any]) -> None:
        uid = pod["metadata"]["uid"]
        if uid in self._workers:
            self._workers[uid][0].observe(pod)
            return
        assert self._node is not None
        worker = PodWorker(self._node, pod)
        task = asyncio.create_task(self._run_worker(worker), name=repr(worker))
        self._workers[uid] = (worker, task)

    async def _run_worker(self, worker: PodWorker) -> None:
        try:
            await worker.run()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s: worker failed; its processes are killed", worker)
            for process in worker.processes:
                process.signal_group(signal.SIGKILL)
        finally:
            if self._workers.get(worker.uid, (None,))[0] is worker:
                del self._workers[worker.uid]

    async def _shutdown(self) -> None:
        """Stop the workers without touching the pods, then kill their processes (SIGTERM, then SIGKILL)."""
        entries = list(self._workers.values())
        for _, task in entries:
            task.cancel()
        await asyncio.gather(*(task for _, task in entries), return_exceptions=True)
        processes: list[GroupedProcess] = [p for worker, _ in entries for p in worker.processes]
        if not processes:
            return
        log.info("stopping %d processes", len(processes))
        for process in processes:
            process.signal_group(signal.SIGTERM)
        waits = [asyncio.ensure_future(process.wait()) for process in processes]
        _, pending = await asyncio.wait(waits, timeout=self.settings.shutdown_grace_seconds)
        if pending:
            for process in processes:
                process.signal_group(signal.SIGKILL)
            await asyncio.wait(pending)
