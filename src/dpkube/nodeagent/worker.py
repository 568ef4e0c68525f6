"""One pod on this node, from start to removal: its processes, restarts, deadline, deletion and status.

Level-based: the worker acts on the latest pod object it was given, never on the events in between.
A container without `command` runs its `args` (there is no image entrypoint); without `workingDir` it
runs in a scratch folder of its own. Not emulated: init containers (skipped, with a Warning Event),
probes (a running container is ready), volumes other than the service-account token and an emptyDir
at /tmp (Warning Event; that one is the container's TMPDIR, a folder of the pod's own removed with it,
its sizeLimit not enforced),
`runAsUser` and the rest of the security context (processes run as the agent's user, silently), CPU
limits (no cgroup: nothing is applied), image pulls (the command runs on this machine), `kubectl logs`
and `exec` (output is in `<workdir>/pods/<ns>_<pod>_<uid>/<container>/<restart>.log`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dpkube.k8s.client import SERVICE_ACCOUNT_DIR_ENV, ApiError, Conflict, KubeClient, NotFound, Unreachable, core_path
from dpkube.k8s.events import EventRecorder
from dpkube.k8s.timestamps import parse, rfc3339
from dpkube.nodeagent.environment import PodFacts, PodReferences, container_environment
from dpkube.nodeagent.errors import ContainerConfigError, ContainerStartError
from dpkube.nodeagent.expansion import expand
from dpkube.nodeagent.process import ContainerProcess, GroupedProcess, ProcessIdentity, started_or_killed
from dpkube.nodeagent.quantity import parse_quantity
from dpkube.nodeagent.serviceaccount import ServiceAccountFolder, is_token_volume, token_projection
from dpkube.nodeagent.settings import AgentSettings, MemoryEnforcement
from dpkube.nodeagent.status import ContainerRecord, differs, pod_status
from dpkube.nodeagent.termination import termination_message
from dpkube.nodeagent.zygote import Zygote

TERMINATION_LOG_ENV = "DPKUBE_TERMINATION_LOG"
HOST_VARIABLES = ("HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "PYTHONPATH")
SCRATCH_PATH = "/tmp"
"""An emptyDir mounted here is honoured as the container's TMPDIR (a local process cannot have /tmp mounted)."""
PUBLISH_RETRY_SECONDS = 1.0
DEFAULT_GRACE_SECONDS = 30

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NodeContext:
    """What every pod worker of one agent shares."""

    client: KubeClient
    settings: AgentSettings
    events: EventRecorder
    facts: PodFacts
    service_env: Mapping[str, str]
    ca_file: str | None
    zygote: Zygote | None = None
    """Forks runner containers from pre-imported libraries; None: every container is exec'd."""


@dataclass
class Container:
    """One container of the pod: its spec, reported status and current process."""

    spec: Mapping[str, Any]
    record: ContainerRecord
    folder: Path
    process: GroupedProcess | None = None
    exit: asyncio.Task[int] | None = None
    start_due: float = 0.0  # monotonic
    finished: bool = False  # ended and will not start again
    kill_reason: str = ""  # OOMKilled or DeadlineExceeded when the agent killed it
    memory_limit: int | None = None
    config_error: str = ""

    @property
    def termination_log(self) -> Path:
        return self.folder / "termination-log"

    @property
    def log_file(self) -> Path:
        return self.folder / f"{self.record.restart_count}.log"


def host_environment(pod_name: str) -> dict[str, str]:
    """What an image would provide: a PATH that starts with the agent's own Python, locale, home."""
    env = {name: os.environ[name] for name in HOST_VARIABLES if name in os.environ}
    env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", os.defpath)])
    env["HOSTNAME"] = pod_name
    return env


def scratch_volume(pod_spec: Mapping[str, Any], container_spec: Mapping[str, Any]) -> str | None:
    """The emptyDir volume the container mounts at /tmp, if any."""
    empty = {v["name"] for v in pod_spec.get("volumes") or [] if "emptyDir" in v}
    return next((m["name"] for m in container_spec.get("volumeMounts") or []
                 if m.get("mountPath") == SCRATCH_PATH and m["name"] in empty), None)


def honoured(volume: Mapping[str, Any], containers: list[Mapping[str, Any]]) -> bool:
    """The agent gives this volume what its mounts ask: the token, or an emptyDir mounted at /tmp only."""
    if is_token_volume(volume):
        return True
    mounts = [m for c in containers for m in c.get("volumeMounts") or [] if m["name"] == volume["name"]]
    return "emptyDir" in volume and all(m.get("mountPath") == SCRATCH_PATH for m in mounts)


class PodWorker:
    """Runs one pod's containers as processes and reports its status; ends once the pod object is gone."""

    def __init__(self, node: NodeContext, pod: dict[str, Any]):
        self.node = node
        self.pod = pod
        meta = pod["metadata"]
        self.uid: str = meta["uid"]
        self.namespace: str = meta["namespace"]
        self.name: str = meta["name"]
        self.folder = node.settings.pods_dir / f"{self.namespace}_{self.name}_{self.uid}"
        self.containers: list[Container] = []
        self._changed = asyncio.Event()
        self._gone = False
        self._reported: dict[str, Any] = dict(pod.get("status") or {})
        self._publish_pending = False
        self._failure: tuple[str, str] | None = None  # pod-level (reason, message) that forces Failed
        self._start_time = ""
        self._started_wall = 0.0
        self._token: ServiceAccountFolder | None = None
        self._background: set[asyncio.Task[None]] = set()

    def __repr__(self) -> str:
        return f"pod {self.namespace}/{self.name}"

    # --- what the agent tells the worker -------------------------------------------------------------

    def observe(self, pod: dict[str, Any]) -> None:
        self.pod = pod
        self._changed.set()

    def vanish(self) -> None:
        """The pod object is gone from the API server."""
        self._gone = True
        self._changed.set()

    @property
    def processes(self) -> list[GroupedProcess]:
        return [c.process for c in self.containers if c.process is not None]

    # --- lifecycle -------------------------------------------------------------------------------------

    async def run(self) -> None:
        if self.pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
            await self._until_removed()
            return
        self._adopt()
        if self._orphaned():
            await self._recover_orphan()
        else:
            self._warn_unsupported()
        if not self._failure:
            await self._supervise()
        if any(c.record.has_run for c in self.containers) and not self._gone:
            await self._publish()
        if self._token:
            self._token.remove()
        await self._until_removed()

    def _adopt(self) -> None:
        status = self.pod.get("status") or {}
        reported = {c["name"]: c for c in status.get("containerStatuses") or []}
        for spec in self.pod["spec"]["containers"]:
            limit = ((spec.get("resources") or {}).get("limits") or {}).get("memory")
            self.containers.append(Container(
                spec=spec, record=ContainerRecord.adopt(spec, reported.get(spec["name"])),
                folder=self.folder / spec["name"], memory_limit=int(parse_quantity(limit)) if limit else None,
            ))
        self._start_time = status.get("startTime") or rfc3339()
        self._started_wall = parse(status["startTime"]).timestamp() if status.get("startTime") else time.time()

    def _orphaned(self) -> bool:
        """Running according to the API, but no process of ours: an earlier agent started it."""
        return self.pod.get("status", {}).get("phase") == "Running" or any(c.record.running for c in self.containers)

    async def _recover_orphan(self) -> None:
        """We cannot re-attach: kill what is left of the earlier process, then fail or restart the pod."""
        message = "the node agent restarted and cannot re-attach to the container's process"
        for container in self.containers:
            identity = ProcessIdentity.load(container.folder / "pid")
            if identity and identity.kill_group():
                log.info("%s: killed orphaned process %d", self, identity.pid)
            if container.record.running:
                container.record.mark_terminated(137, "NodeAgentRestarted", message)
        if self._restart_policy == "Never":
            self._failure = ("NodeAgentRestarted", message)
            self._finish_all()
            return
        now = time.monotonic()
        for container in self.containers:
            code = (container.record.terminated or {}).get("exitCode")
            if code is not None and not self._restarts(code):
                container.finished = True
            elif code is not None:
                container.record.back_off("restarting after a node agent restart")
                container.start_due = now

    async def _supervise(self) -> None:
        """Start, watch and restart the containers until all have ended (or the pod is gone)."""
        while True:
            self._changed.clear()
            if self._gone:
                await self._kill_all(min(self._grace(self.pod["spec"].get("terminationGracePeriodSeconds")),
                                         self.node.settings.shutdown_grace_seconds))
                return
            if self.pod["metadata"].get("deletionTimestamp"):
                await self._kill_all(self._grace(self.pod["metadata"].get("deletionGracePeriodSeconds")))
                self._finish_all()
                return
            if self._deadline_remaining() <= 0:
                self._failure = ("DeadlineExceeded", "Pod was active on the node longer than the specified deadline")
                await self._kill_all(self._grace(self.pod["spec"].get("terminationGracePeriodSeconds")),
                                     reason="DeadlineExceeded")
                self._finish_all()
                return
            await self._start_due_containers()
            self._collect_exits()
            self._enforce_memory()
            await self._refresh_token()
            if all(c.finished for c in self.containers):
                return
            await self._publish()
            await self._wait(self._next_timer())

    async def _wait(self, timeout: float | None) -> None:
        changed = asyncio.ensure_future(self._changed.wait())
        exits = [c.exit for c in self.containers if c.exit is not None]
        try:
            await asyncio.wait([changed, *exits], timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            changed.cancel()

    def _next_timer(self) -> float | None:
        now = time.monotonic()
        timers = [c.start_due - now for c in self.containers if not c.finished and c.process is None]
        timers.append(self._deadline_remaining())
        if self._token:
            timers.append(self._token.refresh_at - now)
        if self._publish_pending:
            timers.append(PUBLISH_RETRY_SECONDS)
        if self.node.settings.memory_enforcement is MemoryEnforcement.RESIDENT and any(
                c.process and c.memory_limit for c in self.containers):
            timers.append(self.node.settings.memory_check_seconds)
        finite = [t for t in timers if t != float("inf")]
        return max(0.0, min(finite)) if finite else None

    # --- containers ------------------------------------------------------------------------------------

    async def _start_due_containers(self) -> None:
        now = time.monotonic()
        for container in self.containers:
            if container.finished or container.process is not None or container.start_due > now:
                continue
            await self._start(container)

    async def _start(self, container: Container) -> None:
        spec = container.spec
        try:
            env = await container_environment(
                self.pod, spec, PodReferences(self.node.client, self.namespace), self.node.facts,
                self.node.service_env,
            )
            await self._mount_token()
            scratch = self._scratch(spec)
        except ContainerConfigError as error:
            self._config_failed(container, error.reason, str(error))
            return
        except (ApiError, Unreachable, OSError) as error:
            self._config_failed(container, "ContainerCreating", f"could not prepare the container: {error}")
            return
        container.config_error = ""
        container.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        container.termination_log.write_bytes(b"")
        command = [expand(part, env) for part in [*(spec.get("command") or []), *(spec.get("args") or [])]]
        process_env = {**host_environment(self.name), **scratch, **env,
                       TERMINATION_LOG_ENV: str(container.termination_log)}
        if self._token:
            process_env[SERVICE_ACCOUNT_DIR_ENV] = str(self._token.folder)
        cwd = Path(spec["workingDir"]) if spec.get("workingDir") else container.folder / "workdir"
        if not spec.get("workingDir"):
            cwd.mkdir(exist_ok=True)
        address_space = (container.memory_limit
                         if self.node.settings.memory_enforcement is MemoryEnforcement.ADDRESS_SPACE else None)
        try:
            process = await started_or_killed(self._launch(command, process_env, cwd, container, address_space))
        except ContainerStartError as error:
            container.record.container_id = ""
            self._ended(container, 128, error.reason, str(error))
            return
        if process.identity:
            process.identity.save(container.folder / "pid")
        container.process = process
        container.kill_reason = ""
        container.record.mark_running(process.pid)
        container.exit = asyncio.ensure_future(process.wait())
        log.debug("%s: container %s started as process %d", self, spec["name"], process.pid)

    async def _launch(self, command: list[str], env: dict[str, str], cwd: Path, container: Container,
                      address_space: int | None) -> GroupedProcess:
        """Fork the runner from the zygote when it fits, else exec the command."""
        zygote = self.node.zygote
        if zygote is not None and zygote.fits(command, env, container.memory_limit):
            forked = await zygote.spawn(command, env=env, cwd=cwd, log_path=container.log_file,
                                        address_space_limit=address_space)
            if forked is not None:
                return forked
        return await ContainerProcess.start(command, env=env, cwd=cwd, log_path=container.log_file,
                                            address_space_limit=address_space)

    def _config_failed(self, container: Container, reason: str, message: str) -> None:
        container.record.mark_waiting(reason, message)
        container.start_due = time.monotonic() + self.node.settings.config_retry_seconds
        if message != container.config_error:
            container.config_error = message
            self._warn("Failed", f"Error: {message}")

    async def _mount_token(self) -> None:
        if token_projection(self.pod) is None or self._token is not None:
            return
        folder = ServiceAccountFolder(self.node.client, self.pod, self.folder / "serviceaccount", self.node.ca_file)
        await folder.write()
        self._token = folder

    async def _refresh_token(self) -> None:
        if self._token and time.monotonic() >= self._token.refresh_at:
            try:
                await self._token.write()
            except (ApiError, Unreachable, OSError) as error:
                log.warning("%s: token refresh failed: %s", self, error)
                self._token.refresh_at = time.monotonic() + PUBLISH_RETRY_SECONDS * 10

    def _collect_exits(self) -> None:
        for container in self.containers:
            if container.exit is not None and container.exit.done():
                code = container.exit.result()
                container.exit, container.process = None, None
                reason = container.kill_reason or ("Completed" if code == 0 else "Error")
                policy = container.spec.get("terminationMessagePolicy")
                message = termination_message(container.termination_log, container.log_file,
                                              exit_code=code, policy=policy)
                self._ended(container, code, reason, message)

    def _ended(self, container: Container, code: int, reason: str, message: str) -> None:
        container.record.mark_terminated(code, reason, message)
        if self._failure or self._gone or self.pod["metadata"].get("deletionTimestamp") or not self._restarts(code):
            container.finished = True
            return
        restarts = container.record.restart_count + 1
        delay = self._backoff(restarts)
        container.record.back_off(
            f"back-off {delay:g}s restarting failed container={container.spec['name']} "
            f"pod={self.name}_{self.namespace}({self.uid})")
        container.start_due = time.monotonic() + delay

    def _enforce_memory(self) -> None:
        if self.node.settings.memory_enforcement is not MemoryEnforcement.RESIDENT:
            return
        for container in self.containers:
            if container.process and container.memory_limit and not container.kill_reason:
                resident = container.process.resident_bytes()
                if resident is not None and resident > container.memory_limit:
                    log.info("%s: container %s over its memory limit, killing it", self, container.spec["name"])
                    container.kill_reason = "OOMKilled"
                    container.process.signal_group(signal.SIGKILL)

    async def _kill_all(self, grace: float, reason: str = "") -> None:
        """SIGTERM every process group, SIGKILL what is left after the grace period, record how each ended.

        The grace period shrinks, as the kubelet's does, when the pod is deleted again with a shorter one
        or force-deleted meanwhile.
        """
        running = [c for c in self.containers if c.process is not None]
        for container in running:
            container.kill_reason = container.kill_reason or reason
            assert container.process is not None
            container.process.signal_group(signal.SIGTERM)
        started = time.monotonic()
        deadline = started + grace
        while exits := [c.exit for c in running if c.exit is not None and not c.exit.done()]:
            if time.monotonic() >= deadline:
                for container in running:
                    if container.process is not None:
                        container.process.signal_group(signal.SIGKILL)
                await asyncio.wait(exits)
                break
            self._changed.clear()
            changed = asyncio.ensure_future(self._changed.wait())
            await asyncio.wait([changed, *exits], timeout=deadline - time.monotonic(),
                               return_when=asyncio.FIRST_COMPLETED)
            changed.cancel()
            shorter = self.pod["metadata"].get("deletionGracePeriodSeconds")
            if shorter is not None:
                deadline = min(deadline, started + self._grace(shorter))
            if self._gone:
                deadline = min(deadline, time.monotonic() + self.node.settings.shutdown_grace_seconds)
        self._collect_exits()

    def _finish_all(self) -> None:
        """The pod is ending: every container that is not terminated never will be."""
        for container in self.containers:
            container.finished = True
            if container.record.terminated is None:
                container.record.mark_terminated(
                    137, "ContainerStatusUnknown", "The container could not be located when the pod was terminated")

    # --- policy ----------------------------------------------------------------------------------------

    @property
    def _restart_policy(self) -> str:
        return str(self.pod["spec"].get("restartPolicy", "Always"))

    def _restarts(self, exit_code: int) -> bool:
        policy = self._restart_policy
        return policy == "Always" or (policy == "OnFailure" and exit_code != 0)

    def _backoff(self, restart: int) -> float:
        """The kubelet's crash-loop back-off: the first restart at once, then doubling up to the maximum."""
        settings = self.node.settings
        if restart <= 1:
            return 0.0
        return float(min(settings.restart_backoff_seconds * 2 ** (restart - 2), settings.max_restart_backoff_seconds))

    def _grace(self, seconds: int | None) -> float:
        return float(min(DEFAULT_GRACE_SECONDS if seconds is None else seconds, self.node.settings.max_grace_seconds))

    def _deadline_remaining(self) -> float:
        deadline = self.pod["spec"].get("activeDeadlineSeconds")
        if deadline is None:
            return float("inf")
        return self._started_wall + int(deadline) - time.time()

    # --- status and removal ----------------------------------------------------------------------------

    def _phase(self) -> str:
        if self._failure:
            return "Failed"
        if all(c.finished for c in self.containers):
            ok = all((c.record.terminated or {}).get("exitCode") == 0 for c in self.containers)
            return "Succeeded" if ok else "Failed"
        if any(not c.record.has_run for c in self.containers):
            return "Pending"
        return "Running"

    async def _publish(self) -> None:
        """Patch the status subresource if what we would write differs from what we last wrote."""
        reason, message = self._failure or ("", "")
        desired = pod_status(
            phase=self._phase(), containers=[c.record for c in self.containers], start_time=self._start_time,
            host_ip=self.node.facts.host_ip, pod_ip=self.node.facts.pod_ip, previous=self._reported,
            reason=reason, message=message,
        )
        if not differs(desired, self._reported):
            self._publish_pending = False
            return
        try:
            updated = await self.node.client.patch(
                core_path("pods", self.namespace, self.name) + "/status",
                {"metadata": {"uid": self.uid}, "status": desired}, kind="strategic",
            )
        except (NotFound, Conflict):
            self.vanish()
            return
        except (ApiError, Unreachable, OSError) as error:
            log.warning("%s: status update failed, will retry: %s", self, error)
            self._publish_pending = True
            return
        self._reported = updated.get("status") or desired
        self._publish_pending = False

    async def _until_removed(self) -> None:
        """Wait for the pod object to go; finish a graceful deletion as the kubelet's last step does."""
        while not self._gone:
            self._changed.clear()
            if self.pod["metadata"].get("deletionTimestamp"):
                try:
                    await self.node.client.delete(
                        core_path("pods", self.namespace, self.name), uid=self.uid, grace_seconds=0)
                    break
                except (NotFound, Conflict):
                    break
                except (ApiError, Unreachable, OSError) as error:
                    log.warning("%s: final delete failed, will retry: %s", self, error)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._changed.wait(), PUBLISH_RETRY_SECONDS)
                    continue
            await self._changed.wait()
        shutil.rmtree(self.folder, ignore_errors=True)

    def _warn_unsupported(self) -> None:
        spec = self.pod["spec"]
        for volume in spec.get("volumes") or []:
            if not honoured(volume, spec["containers"]):
                kind = next((k for k in volume if k != "name"), "unknown")
                self._warn("VolumeNotMounted", f'volume "{volume["name"]}" ({kind}) is not mounted: the dpkube node '
                           "agent runs containers as local processes and mounts only the service-account token "
                           "and an emptyDir at /tmp (as TMPDIR)")
        if spec.get("initContainers"):
            names = ", ".join(c["name"] for c in spec["initContainers"])
            self._warn("InitContainersIgnored", f"init containers are not run by the dpkube node agent: {names}")

    def _scratch(self, spec: Mapping[str, Any]) -> dict[str, str]:
        """TMPDIR of a container with an emptyDir at /tmp: the volume's folder, shared by the pod's containers
        and kept across their restarts, as an emptyDir is."""
        name = scratch_volume(self.pod["spec"], spec)
        if name is None:
            return {}
        folder = self.folder / "volumes" / name
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        return {"TMPDIR": str(folder)}

    def _warn(self, reason: str, message: str) -> None:
        task = asyncio.ensure_future(self.node.events.post(self.pod, reason, message, warning=True))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

