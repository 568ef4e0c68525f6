"""`dpkube dev`: the whole platform on this machine, on loopback, until Ctrl-C.

It writes `.dev/env` (shell-sourceable) so scripts and benchmarks find the running platform, and
refuses to start a second copy while one runs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import sys
import threading
from pathlib import Path

from dpkube.controlplane.local import ADMIN, LocalControlPlane
from dpkube.k8s.client import KubeClient, KubeConfig
from dpkube.k8s.crds import apply_crds


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


def run(args: argparse.Namespace) -> int:
    workdir = Path(args.dir).resolve()
    pid_file = workdir / "pid"
    if (pid := _running_pid(pid_file)) is not None:
        print(f"dpkube dev is already running (pid {pid}); source {workdir / 'env'} to use it.")
        return 1
    shutil.rmtree(workdir / "controlplane", ignore_errors=True)
    workdir.mkdir(parents=True, exist_ok=True)
    pid_file.write_text(str(os.getpid()))
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    plane = LocalControlPlane(workdir / "controlplane")
    try:
        print("dpkube dev: starting etcd and kube-apiserver on 127.0.0.1 ...", flush=True)
        plane.start()
        config = KubeConfig.from_kubeconfig(plane.kubeconfig)

        async def install() -> None:
            async with KubeClient(config) as client:
                await apply_crds(client)

        asyncio.run(install())
        env_file = workdir / "env"
        env_file.write_text(
            f"export KUBECONFIG={plane.kubeconfig}\n"
            f"export DPKUBE_ADMIN_TOKEN={plane.token(ADMIN)}\n"
        )
        print(f"dpkube dev: API server {plane.url}, CRDs installed.")
        print(f"dpkube dev: `source {env_file}` then `kubectl get dpq`. Ctrl-C stops everything.", flush=True)
        stop.wait()
    finally:
        print("dpkube dev: stopping ...", file=sys.stderr, flush=True)
        plane.stop()
        pid_file.unlink(missing_ok=True)
    return 0
