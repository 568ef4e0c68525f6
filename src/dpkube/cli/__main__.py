"""Entry point of the `dpkube` command."""

from __future__ import annotations

import argparse
import sys

from dpkube.cli import budget, cluster, controlplane, dev, query, queue, token


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dpkube", description="Differentially private analysis on Kubernetes.")
    commands = parser.add_subparsers(dest="command", required=True)
    dev.register(commands)
    controlplane.register(commands)
    cluster.register(commands)
    query.register(commands)
    budget.register(commands)
    token.register(commands)
    queue.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
