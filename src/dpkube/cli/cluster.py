"""`dpkube cluster up|down|status`: a real single-node cluster on this machine (root), and `dpkube image`:
dpkube's images built from the Dockerfile."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dpkube.cluster import images
from dpkube.cluster.cluster import LocalCluster, State, down, leftovers
from dpkube.cluster.errors import ClusterError


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("cluster", help="a real single-node cluster on this machine (root)")
    verbs = parser.add_subparsers(dest="verb", required=True)
    up = verbs.add_parser("up", help="start it (detached) with dpkube's images in its containerd")
    up.add_argument("--context", default=".", help="the repository to build the images from (default: .)")
    up.add_argument("--no-images", action="store_true", help="start without dpkube's images")
    up.add_argument("--full", action="store_true",
                    help=f"import {images.FULL} (with torch: synthetic data) beside {images.CORE}")
    up.set_defaults(run=run_up)
    verbs.add_parser("down", help="stop every process by PID, remove the bridge and mounts").set_defaults(run=run_down)
    verbs.add_parser("status", help="what runs, and where its kubeconfig is").set_defaults(run=run_status)

    image = commands.add_parser("image", help="build dpkube's images (the Dockerfile, BuildKit)")
    image.add_argument("--context", default=".", help="the repository (default: .)")
    image.add_argument("--tag", default=images.FULL, help=f"every role, with torch (default: {images.FULL})")
    image.add_argument("--core-tag", default=images.CORE, help=f"without torch (default: {images.CORE})")
    image.set_defaults(run=run_image)


def run_up(args: argparse.Namespace) -> int:
    archives: tuple[Path, ...] = ()
    try:
        if not args.no_images:
            archives = (images.cluster_images(Path(args.context).resolve(), full=args.full).archive,)
        cluster = LocalCluster(images=archives).start()
    except ClusterError as e:
        print(f"dpkube cluster up: {e}", file=sys.stderr)
        return 1
    timings = ", ".join(f"{name} {seconds:.0f}s" for name, seconds in cluster.timings.items())
    print(f"dpkube cluster: {timings}")
    print(f"export KUBECONFIG={cluster.kubeconfig}")
    if archives:
        tag = (images.FULL if args.full else images.CORE).split(":")[1]
        print(f"helm install dpkube charts/dpkube -n dpkube-system --create-namespace --set image.tag={tag} "
              "--set image.pullPolicy=Never --set demo.datasets=true")
    return 0


def run_down(args: argparse.Namespace) -> int:
    state = State.load()
    if state is None:
        print("dpkube cluster: none recorded on this machine")
        return 0
    return 1 if down(state) else 0


def run_status(args: argparse.Namespace) -> int:
    state = State.load()
    if state is None:
        print("dpkube cluster: none recorded on this machine")
        return 1
    running = [f"{p.name} ({p.pid})" for p in state.recorded() if p.alive()]
    print(f"folder {state.workdir}\nkubeconfig {state.kubeconfig}\nAPI server {state.api_url}\n"
          f"running: {', '.join(running) or 'nothing'}\nleft on the machine: {', '.join(leftovers(state)) or '-'}")
    return 0


def run_image(args: argparse.Namespace) -> int:
    try:
        with images.engine() as docker:
            images.build(docker, Path(args.context).resolve(), {None: args.tag, "core": args.core_tag})
            for reference in (args.tag, args.core_tag):
                print(f"{reference}\t{docker.image_bytes(reference) / 1e9:.2f} GB")
    except ClusterError as e:
        print(f"dpkube image: {e}", file=sys.stderr)
        return 1
    return 0
