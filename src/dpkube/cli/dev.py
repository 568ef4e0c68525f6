"""`dpkube dev`: the whole platform on this machine, on loopback, until Ctrl-C.

Control plane, CRDs, demo datasets, a demo user with a budget on PENGUIN, the operator and the
node agent (and the facade, when installed). It writes `.dev/env` (shell-sourceable) so scripts and
benchmarks find the running platform, and refuses to start a second copy while one runs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import threading
from pathlib import Path

from dpkube.controlplane.platform import LocalPlatform, PlatformError
from dpkube.models import examples

DEMO_USER = "alice"


def register(commands: argparse._SubParsersAction) -> None:
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
        print(f"dpkube dev is already running (pid {pid}); `source {workdir / 'env'}` to use it.")
        return 1
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    pid_file.write_text(str(os.getpid()))
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    platform = LocalPlatform(workdir, users=(DEMO_USER, "bob"), grants={(DEMO_USER, "PENGUIN"): (10.0, 0.005)},
                             trusted_header=True)
    try:
        print("dpkube dev: starting etcd, kube-apiserver, the operator and the node agent on 127.0.0.1 ...",
              flush=True)
        platform.start()
        assert platform.plane is not None
        env_file = workdir / "env"
        token = platform.tokens[DEMO_USER]
        env_file.write_text(
            f"export DPKUBE_URL={platform.url}\n"
            f"export DPKUBE_USER={DEMO_USER}\n"
            f"export DPKUBE_TOKEN={token}\n"
            f"export DPKUBE_ADMIN_TOKEN={platform.tokens['admin']}\n"
            f"export KUBECONFIG={platform.plane.kubeconfig}\n"
        )
        body = json.dumps(examples.SMARTNOISE_SQL_QUERY)
        print(f"dpkube dev: facade {platform.url} (Lomas API, Dioptra API under /api/v0, docs at /docs)")
        print(f"dpkube dev: demo user {DEMO_USER} has epsilon 10, delta 0.005 on PENGUIN; token {token}")
        print("dpkube dev: try the seed's SQL example:")
        print(f"  curl -s -X POST {platform.url}/smartnoise_sql_query -H 'Authorization: Bearer {token}' "
              f"-H 'Content-Type: application/json' -d '{body}'")
        print(f"dpkube dev: Kubernetes API {platform.plane.url}; logs in {workdir}.")
        print(f"dpkube dev: `source {env_file}`, then `kubectl apply -f examples/` and `kubectl get dpq`.")
        print("dpkube dev: Ctrl-C stops everything.", flush=True)
        while not stop.wait(1.0):
            try:
                platform.check()
            except PlatformError as exc:
                print(f"dpkube dev: {exc}", file=sys.stderr)
                return 1
    except PlatformError as exc:
        print(f"dpkube dev: {exc}", file=sys.stderr)
        return 1
    finally:
        print("dpkube dev: stopping ...", file=sys.stderr, flush=True)
        platform.stop()
        pid_file.unlink(missing_ok=True)
    return 0
