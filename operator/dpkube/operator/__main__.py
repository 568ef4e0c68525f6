"""`python -m dpkube.operator`: run one operator replica until SIGTERM/SIGINT (see `replica`)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

from dpkube.operator import handlers  # noqa: F401  (registers the handlers)
from dpkube.operator.replica import run_elected, run_unelected
from dpkube.operator.settings import OperatorSettings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="dpkube-operator")
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG or in-cluster)")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    if args.kubeconfig:
        os.environ["KUBECONFIG"] = args.kubeconfig
    config = OperatorSettings()
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Not kopf.configure(): it adds a second root handler, and every line would be written twice.
    logging.getLogger("asyncio").setLevel(logging.DEBUG if args.verbose else logging.WARNING)
    # kopf logs a line for every handler call (one per watch event: about 150 a second in a burst); its
    # warnings and errors still show.
    logging.getLogger("kopf.objects").setLevel(logging.DEBUG if args.verbose else logging.WARNING)
    if config.leader_election:
        sys.exit(asyncio.run(run_elected(config)))
    asyncio.run(run_unelected(config))


if __name__ == "__main__":
    main()
