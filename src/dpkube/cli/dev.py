"""`dpkube dev`: the whole platform on this machine, on loopback, until Ctrl-C.

Control plane, CRDs, demo datasets, a demo user with a budget on PENGUIN, the operator and the
node agent (and the facade, when installed). It writes `.dev/env` (shell-sourceable) so scripts and
benchmarks find the running platform, and refuses to start a second copy while one runs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

from dpkube.controlplane.local import ADMIN, LocalControlPlane, free_port
from dpkube.controlplane.processes import ChildProcess
from dpkube.k8s.budgets import Budgets
from dpkube.k8s.client import KubeClient, KubeConfig
from dpkube.k8s.install import install

SYSTEM_NAMESPACE = "dpkube-system"
QUERY_NAMESPACE = "dpkube"
DEMO_USER = "alice"


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = commands.add_parser("dev", help="run the platform locally until Ctrl-C")
    parser.add_argument("--dir", default=".dev", help="working folder (default: .dev)")
    parser.set_defaults(run=run)


def _running_pid(pid_file: Path) -> int | None:
    try:
        pid = int(pid_file.read_text().strip())
        os.kill(pid, 0)
    except (FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
        return None
    return pid


async def _prepare(config: KubeConfig) -> None:
    async with KubeClient(config) as client:
        await install(client, SYSTEM_NAMESPACE, [QUERY_NAMESPACE], demo=True)
        await Budgets(client, SYSTEM_NAMESPACE).grant(DEMO_USER, "PENGUIN", epsilon=10.0, delta=0.005)


def run(args: argparse.Namespace) -> int:
    workdir = Path(args.dir).resolve()
    pid_file = workdir / "pid"
    if (pid := _running_pid(pid_file)) is not None:
        print(f"dpkube dev is already running (pid {pid}); `source {workdir / 'env'}` to use it.")
        return 1
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    pid_file.write_text(str(os.getpid()))
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    plane = LocalControlPlane(workdir / "controlplane", users=(DEMO_USER, "bob"))
    children: list[ChildProcess] = []
    try:
        print("dpkube dev: starting etcd and kube-apiserver on 127.0.0.1 ...", flush=True)
        plane.start()
        asyncio.run(_prepare(KubeConfig.from_kubeconfig(plane.kubeconfig)))
        claim_port = free_port()
        env = {**os.environ, "KUBECONFIG": str(plane.kubeconfig), "DPKUBE_SYSTEM_NAMESPACE": SYSTEM_NAMESPACE,
               "DPKUBE_CLAIM_LISTEN": f"127.0.0.1:{claim_port}", "DPKUBE_CLAIM_URL": f"http://127.0.0.1:{claim_port}",
               "PYTHONUNBUFFERED": "1"}
        python = sys.executable
        children = [
            ChildProcess("operator", [python, "-m", "dpkube.operator"], workdir / "operator.log", env).start(),
            ChildProcess("nodeagent", [python, "-m", "dpkube.nodeagent", "--workdir", str(workdir / "agent")],
                         workdir / "nodeagent.log", env).start(),
        ]
        time.sleep(1.0)
        for child in children:
            if not child.running():
                print(f"dpkube dev: {child.name} failed to start:\n{child.log_tail()}", file=sys.stderr)
                return 1
        env_file = workdir / "env"
        env_file.write_text(
            f"export KUBECONFIG={plane.kubeconfig}\n"
            f"export DPKUBE_USER={DEMO_USER}\n"
            f"export DPKUBE_ADMIN_TOKEN={plane.token(ADMIN)}\n"
        )
        print(f"dpkube dev: API server {plane.url}; operator and node agent running (logs in {workdir}).")
        print(f"dpkube dev: `source {env_file}`, then `kubectl apply -f examples/` and `kubectl get dpq`.")
        print("dpkube dev: Ctrl-C stops everything.", flush=True)
        while not stop.wait(1.0):
            for child in children:
                if not child.running():
                    print(f"dpkube dev: {child.name} exited:\n{child.log_tail()}", file=sys.stderr)
                    stop.set()
    finally:
        print("dpkube dev: stopping ...", file=sys.stderr, flush=True)
        for child in reversed(children):
            child.stop()
        plane.stop()
        pid_file.unlink(missing_ok=True)
    return 0
