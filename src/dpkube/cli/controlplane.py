"""`dpkube binaries`: obtain (or build) the control-plane binaries, or a real cluster's, and print where they are."""

from __future__ import annotations

import argparse
import subprocess

from dpkube.controlplane import binaries


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("binaries", help="obtain kube-apiserver, etcd, kubectl and helm")
    parser.add_argument("names", nargs="*", help="binaries to obtain (default: the control plane's)")
    parser.add_argument("--cluster", action="store_true",
                        help="every binary of a real cluster (kubelet, kube-proxy, CoreDNS, kube-router, ...)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    names = args.names or list(binaries.CLUSTER_BINARIES if args.cluster else binaries.CONTROL_PLANE_BINARIES)
    for name in names:
        path = binaries.binary(name)
        print(f"{name}\t{path}")
    if "kube-apiserver" in names:
        version = subprocess.run(
            [str(binaries.binary("kube-apiserver")), "--version"], capture_output=True, text=True
        ).stdout.strip()
        print(f"# {version}")
    return 0
