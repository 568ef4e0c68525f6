"""The whole platform on this machine: control plane, CRDs, demo data, operator, node agent (and the
facade when asked), each a child process on loopback. `make dev` and the benchmarks run it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from dpkube.controlplane.local import ADMIN, LocalControlPlane, free_port
from dpkube.controlplane.processes import ChildProcess, NotReady
from dpkube.k8s.budgets import Budgets
from dpkube.k8s.client import KubeClient, KubeConfig
from dpkube.k8s.install import install
from dpkube.k8s.tokens import create_token
from dpkube.models.queue import DEFAULT_QUEUE

SYSTEM_NAMESPACE = "dpkube-system"
QUERY_NAMESPACE = "dpkube"
FACADE_READY_SECONDS = 180.0
"""The facade is ready once its workers have imported the DP libraries, one after another: on a busy
two-core machine that takes a minute."""


class PlatformError(RuntimeError):
    """A platform process did not start; the message carries its log."""


@dataclass
class LocalPlatform:
    """Starts and stops every process of the platform, in order."""

    workdir: Path
    users: tuple[str, ...] = ("alice", "bob", "carol")
    grants: dict[tuple[str, str], tuple[float, float]] = field(default_factory=dict)
    extra_env: dict[str, str] = field(default_factory=dict)
    facade: bool = True
    node_agent: bool = True
    """Run pods as local processes; without it pods stay unbound (benchmarks of the control loop alone)."""
    audit: bool = False
    """Keep the API server's audit log (benchmarks count the operator's requests per query)."""
    trusted_header: bool = False
    url: str = ""
    tokens: dict[str, str] = field(default_factory=dict)
    plane: LocalControlPlane | None = None
    children: dict[str, ChildProcess] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)

    def start(self) -> LocalPlatform:
        """Start every process; if one fails to start (or SIGTERM comes), those already started are stopped."""
        _exit_on_sigterm()
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> LocalPlatform:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.plane = LocalControlPlane(self.workdir / "controlplane", users=self.users, audit=self.audit).start()
        asyncio.run(self._prepare())
        claim_port = free_port()
        self.env = {
            **os.environ,
            "KUBECONFIG": str(self.plane.kubeconfig),
            "DPKUBE_SYSTEM_NAMESPACE": SYSTEM_NAMESPACE,
            "DPKUBE_CLAIM_LISTEN": f"127.0.0.1:{claim_port}",
            "DPKUBE_CLAIM_URL": f"http://127.0.0.1:{claim_port}",
            "PYTHONUNBUFFERED": "1",
            **self.extra_env,
        }
        python = sys.executable
        self._spawn("operator", [python, "-m", "dpkube.operator"])
        if self.node_agent:
            self._spawn("nodeagent", [python, "-m", "dpkube.nodeagent", "--workdir", str(self.workdir / "agent")])
        if self.facade:
            self._start_facade()
        time.sleep(0.5)
        self.check()
        return self

    def _start_facade(self) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        # The Lomas routes' queries take the default queue's warm runners, as the chart has it (unless told otherwise).
        env = {"DPKUBE_LOMAS_QUEUE": DEFAULT_QUEUE, **self.env, "DPKUBE_QUERY_NAMESPACE": QUERY_NAMESPACE,
               "DPKUBE_TRUSTED_HEADER": "true" if self.trusted_header else "false"}
        child = ChildProcess("facade", [sys.executable, "-m", "uvicorn", "--factory", "dpkube.api.main:app_from_env",
                                        "--host", "127.0.0.1", "--port", str(port), "--no-access-log"],
                             self.workdir / "facade.log", env).start()
        self.children["facade"] = child
        try:
            child.wait_until_ok(f"{self.url}/readyz", timeout=FACADE_READY_SECONDS)
        except NotReady as e:
            raise PlatformError(str(e)) from None
        self.check()
        asyncio.run(self._issue_tokens())

    def restart_facade(self) -> None:
        """Stop the facade and start a fresh one (a benchmark that left it stuck); users get new tokens."""
        self.children.pop("facade").stop(grace=2.0)
        self._start_facade()

    async def _issue_tokens(self) -> None:
        assert self.plane is not None
        async with KubeClient(KubeConfig.from_kubeconfig(self.plane.kubeconfig)) as client:
            for user in self.users:
                self.tokens[user] = await create_token(client, SYSTEM_NAMESPACE, user)
            self.tokens["admin"] = await create_token(client, SYSTEM_NAMESPACE, "admin", admin=True)

    async def _prepare(self) -> None:
        assert self.plane is not None
        async with KubeClient(KubeConfig.from_kubeconfig(self.plane.kubeconfig)) as client:
            await install(client, SYSTEM_NAMESPACE, [QUERY_NAMESPACE], demo=True)
            budgets = Budgets(client, SYSTEM_NAMESPACE)
            for (user, dataset), (epsilon, delta) in self.grants.items():
                await budgets.grant(user, dataset, epsilon=epsilon, delta=delta)

    def _spawn(self, name: str, argv: list[str]) -> ChildProcess:
        child = ChildProcess(name, argv, self.workdir / f"{name}.log", self.env).start()
        self.children[name] = child
        return child

    def check(self) -> None:
        """Raise if a platform process has exited."""
        for child in self.children.values():
            if not child.running():
                raise PlatformError(f"{child.name} exited:\n{child.log_tail()}")

    @property
    def admin_token(self) -> str:
        assert self.plane is not None
        return self.plane.token(ADMIN)

    def kube_config(self) -> KubeConfig:
        assert self.plane is not None
        return KubeConfig.from_kubeconfig(self.plane.kubeconfig)

    def stop(self) -> None:
        for child in reversed(list(self.children.values())):
            child.stop()
        self.children.clear()
        if self.plane is not None:
            self.plane.stop()

    def __enter__(self) -> LocalPlatform:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _stop_by_exiting(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _exit_on_sigterm() -> None:
    """A benchmark stopped by SIGTERM unwinds to its `platform.stop()` and so stops every child it started, instead
    of leaving an operator and its workers running (only where nobody else handles SIGTERM)."""
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _stop_by_exiting)
