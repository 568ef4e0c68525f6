"""`dpkube binaries`: obtain (or build) the control-plane binaries and print where they are."""

from __future__ import annotations

import argparse
import subprocess

from dpkube.controlplane import binaries


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("binaries", help="obtain kube-apiserver, etcd, kubectl and helm")
    parser.add_argument("names", nargs="*", help="binaries to obtain (default: all)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    names = args.names or list(binaries.FAMILY_OF)
    for name in names:
        path = binaries.binary(name)
        print(f"{name}\t{path}")
    if "kube-apiserver" in names:
        version = subprocess.run(
            [str(binaries.binary("kube-apiserver")), "--version"], capture_output=True, text=True
        ).stdout.strip()
        print(f"# {version}")
    return 0
