"""Pod and container status as the kubelet writes it, and whether a new one differs from what was written."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dpkube.k8s.timestamps import rfc3339

RUNTIME = "dpkube-local"


@dataclass
class ContainerRecord:
    """The status of one container across its restarts."""

    name: str
    image: str
    restart_count: int = 0
    container_id: str = ""
    state: dict[str, Any] = field(default_factory=lambda: {"waiting": {"reason": "ContainerCreating"}})
    last_state: dict[str, Any] = field(default_factory=dict)

    @property
    def running(self) -> bool:
        return "running" in self.state

    @property
    def terminated(self) -> Mapping[str, Any] | None:
        return self.state.get("terminated")

    @property
    def has_run(self) -> bool:
        return self.running or self.terminated is not None or bool(self.last_state)

    def mark_running(self, pid: int) -> None:
        self.container_id = f"{RUNTIME}://{pid}"
        self.state = {"running": {"startedAt": rfc3339()}}

    def mark_terminated(self, exit_code: int, reason: str, message: str = "") -> None:
        terminated: dict[str, Any] = {
            "exitCode": exit_code, "reason": reason,
            "startedAt": self.state.get("running", {}).get("startedAt", rfc3339()),
            "finishedAt": rfc3339(), "containerID": self.container_id,
        }
        if message:
            terminated["message"] = message
        self.state = {"terminated": terminated}

    def mark_waiting(self, reason: str, message: str = "") -> None:
        self.state = {"waiting": {"reason": reason, **({"message": message} if message else {})}}

    def back_off(self, message: str) -> None:
        """The container ended and will start again: its end becomes lastState."""
        self.last_state = self.state
        self.restart_count += 1
        self.mark_waiting("CrashLoopBackOff", message)

    def to_status(self) -> dict[str, Any]:
        status: dict[str, Any] = {
            "name": self.name, "image": self.image, "imageID": f"{RUNTIME}://{self.image}",
            "ready": self.running, "started": self.running, "restartCount": self.restart_count,
            "state": self.state, "lastState": self.last_state,
        }
        if self.container_id:
            status["containerID"] = self.container_id
        return status

    @classmethod
    def adopt(cls, spec: Mapping[str, Any], reported: Mapping[str, Any] | None) -> ContainerRecord:
        """A record continuing what an earlier agent reported (restart count, last state)."""
        record = cls(spec["name"], spec.get("image", ""))
        if reported:
            record.restart_count = int(reported.get("restartCount", 0))
            record.container_id = reported.get("containerID", "")
            record.state = dict(reported.get("state") or record.state)
            record.last_state = dict(reported.get("lastState") or {})
        return record


def pod_status(
    *, phase: str, containers: Sequence[ContainerRecord], start_time: str, host_ip: str, pod_ip: str,
    previous: Mapping[str, Any], reason: str = "", message: str = "",
) -> dict[str, Any]:
    """The status fields the kubelet owns (PodScheduled is the scheduler's and stays as it is)."""
    terminal = phase in ("Succeeded", "Failed")
    not_ready = [c.name for c in containers if not c.running]
    if terminal:
        ready_reason, ready_message = ("PodCompleted" if phase == "Succeeded" else "PodFailed"), ""
    else:
        ready_reason = "ContainersNotReady" if not_ready else ""
        ready_message = f"containers with unready status: [{' '.join(not_ready)}]" if not_ready else ""
    old = {c["type"]: c for c in previous.get("conditions") or []}

    def condition(kind: str, true: bool, why: str = "", text: str = "") -> dict[str, Any]:
        value = "True" if true else "False"
        before = old.get(kind, {})
        built = {"type": kind, "status": value, "lastProbeTime": None,
                 "lastTransitionTime": before.get("lastTransitionTime") if before.get("status") == value
                 else rfc3339()}
        if why:
            built["reason"] = why
        if text:
            built["message"] = text
        return built

    ready = not terminal and not not_ready
    status: dict[str, Any] = {
        "phase": phase,
        "hostIP": host_ip, "hostIPs": [{"ip": host_ip}],
        "podIP": pod_ip, "podIPs": [{"ip": pod_ip}],
        "startTime": start_time,
        "conditions": [
            condition("PodReadyToStartContainers", not terminal),
            condition("Initialized", True),
            condition("ContainersReady", ready, ready_reason, ready_message),
            condition("Ready", ready, ready_reason, ready_message),
        ],
        "containerStatuses": [c.to_status() for c in containers],
    }
    if reason:
        status["reason"] = reason
    if message:
        status["message"] = message
    return status


def differs(desired: Any, current: Any) -> bool:
    """Whether writing `desired` would change `current` (conditions compared by type, ignoring lastProbeTime)."""
    if desired == {} or desired == "":
        return current not in (None, {}, "")
    if isinstance(desired, Mapping):
        if not isinstance(current, Mapping):
            return True
        return any(
            differs(value, current.get(key)) for key, value in desired.items()
            if not (key == "lastProbeTime" and value is None)
        )
    if isinstance(desired, list):
        if desired and all(isinstance(d, Mapping) and "type" in d for d in desired):
            by_type = {c.get("type"): c for c in current or [] if isinstance(c, Mapping)}
            return any(differs(d, by_type.get(d["type"])) for d in desired)
        return not isinstance(current, list) or len(desired) != len(current) or any(
            differs(d, c) for d, c in zip(desired, current, strict=True))
    return bool(desired != current)
