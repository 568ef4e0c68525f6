"""`python -m dpkube.nodeagent --node dpkube-local [--kubeconfig F] [--namespace NS ...] [--workdir D]`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from pathlib import Path

from dpkube.k8s.client import KubeConfig
from dpkube.nodeagent.agent import NodeAgent
from dpkube.nodeagent.settings import DEFAULT_NODE_NAME, AgentSettings, MemoryEnforcement


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m dpkube.nodeagent", description=__doc__)
    parser.add_argument("--node", default=DEFAULT_NODE_NAME, help="name of the Node this agent stands for")
    parser.add_argument("--kubeconfig", help="default: $KUBECONFIG, the in-cluster account, ~/.kube/config")
    parser.add_argument("--namespace", action="extend", nargs="+", default=[],
                        help="run only the pods of these namespaces (default: every namespace)")
    parser.add_argument("--workdir", type=Path, help="per-pod folders: logs, termination messages, tokens")
    parser.add_argument("--no-bind", action="store_true", help="do not bind pods (the cluster has a scheduler)")
    parser.add_argument("--scheduler-name", default="default-scheduler", help="bind pods that ask for this one")
    parser.add_argument("--heartbeat-seconds", type=float, default=10.0)
    parser.add_argument("--memory-enforcement", choices=[m.value for m in MemoryEnforcement],
                        default=MemoryEnforcement.RESIDENT.value)
    parser.add_argument("--no-zygote", action="store_true",
                        help="exec every container (by default runner containers are forked from a zygote that "
                             "imported the DP libraries once)")
    parser.add_argument("--log-level", default="INFO")
    return parser.parse_args(argv)


async def run_until_signalled(agent: NodeAgent) -> None:
    """Run the agent; SIGTERM or SIGINT stops it (its processes are killed, pods left as they are)."""
    task = asyncio.ensure_future(agent.run())
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = AgentSettings(
        node_name=args.node, namespaces=tuple(args.namespace), workdir=args.workdir, bind=not args.no_bind,
        scheduler_name=args.scheduler_name,
        heartbeat_seconds=args.heartbeat_seconds, memory_enforcement=MemoryEnforcement(args.memory_enforcement),
        zygote=not args.no_zygote,
    )
    asyncio.run(run_until_signalled(NodeAgent(KubeConfig.load(args.kubeconfig), settings)))


if __name__ == "__main__":
    main()
