"""What a node agent is configured with (the CLI's flags, the tests' knobs)."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

DEFAULT_NODE_NAME = "dpkube-local"


class MemoryEnforcement(StrEnum):
    """How `resources.limits.memory` is applied to a local process (there is no cgroup).

    RESIDENT watches the main process's resident memory and kills it past the limit, reported as
    OOMKilled, like a cgroup would; ADDRESS_SPACE sets RLIMIT_AS, which makes allocations fail instead
    (and counts virtual memory: numpy+pandas reserve ~3x what they use).
    """

    RESIDENT = "resident"
    ADDRESS_SPACE = "address-space"
    NONE = "none"


def default_workdir(node_name: str) -> Path:
    return Path(tempfile.gettempdir()) / f"dpkube-nodeagent-{node_name}"


@dataclass(frozen=True)
class AgentSettings:
    node_name: str = DEFAULT_NODE_NAME
    namespaces: tuple[str, ...] = ()  # empty: every namespace
    workdir: Path | None = None  # per-pod folders (logs, termination messages, tokens); None: default_workdir
    bind: bool = True  # off for clusters that have a scheduler
    scheduler_name: str = "default-scheduler"  # bind only pods that ask for this scheduler
    heartbeat_seconds: float = 10.0
    max_grace_seconds: float = 30.0  # cap on deletion and termination grace periods
    restart_backoff_seconds: float = 10.0  # the kubelet's: 0, 10 s, 20 s, ... up to the maximum
    max_restart_backoff_seconds: float = 300.0
    config_retry_seconds: float = 2.0  # how soon a container whose Secret/ConfigMap is missing is retried
    memory_enforcement: MemoryEnforcement = MemoryEnforcement.RESIDENT
    memory_check_seconds: float = 0.25
    shutdown_grace_seconds: float = 2.0  # SIGTERM to SIGKILL when the agent itself stops
    zygote: bool = True  # fork runner containers from a process that imported the DP libraries once

    @property
    def pods_dir(self) -> Path:
        return (self.workdir or default_workdir(self.node_name)) / "pods"
