"""`python -m dpkube.operator`: run the operator until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os

import kopf

from dpkube.operator import handlers  # noqa: F401  (registers the handlers)
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
    kopf.configure(verbose=args.verbose, log_format=kopf.LogFormat.PLAIN)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per API call drowns everything else
    asyncio.run(kopf.operator(
        clusterwide=not config.namespaces,
        namespaces=config.namespaces,
        standalone=True,
        memo=kopf.Memo(config=config),
        liveness_endpoint=config.liveness_endpoint,
    ))


if __name__ == "__main__":
    main()
