"""The images the cluster needs besides dpkube's, made here from source: the pod sandbox (`pause`, from
Kubernetes' own pause.c built with `gcc -static`) and CoreDNS (the binary built from the Go module proxy).
Both are single-layer archives in the binaries' cache, imported into containerd; nothing is pulled."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from dpkube.cluster.archive import File, SingleLayerImage
from dpkube.cluster.errors import HostNotReady
from dpkube.controlplane import binaries

PAUSE_IMAGE = "registry.k8s.io/pause:3.10"  # the sandbox image Kubernetes 1.34 names; containerd is told so
COREDNS_IMAGE = f"dpkube.local/coredns:{binaries.COREDNS_VERSION}"


def _kubernetes_source() -> Path:
    """The k8s.io/kubernetes module's files, from the Go module cache (the proxy fills it on first use)."""
    proc = subprocess.run(["go", "mod", "download", "-json", f"k8s.io/kubernetes@{binaries.KUBERNETES_VERSION}"],
                          capture_output=True, text=True, env={**os.environ, "GOFLAGS": "-mod=mod"})
    if proc.returncode != 0:
        raise HostNotReady(f"cannot fetch the Kubernetes source for pause.c: {proc.stdout[-2000:]}{proc.stderr}")
    return Path(json.loads(proc.stdout)["Dir"])


def pause_binary() -> Path:
    """A static `pause`, built once per Kubernetes version."""
    target = binaries.cache_root() / "bin" / f"pause-{binaries.KUBERNETES_VERSION}" / "pause"
    if target.is_file():
        return target
    if shutil.which("gcc") is None:
        raise HostNotReady("no gcc to build the pause image: run `make prereqs` as root")
    source = _kubernetes_source() / "build" / "pause" / "linux" / "pause.c"
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    proc = subprocess.run(["gcc", "-Os", "-Wall", "-Werror", "-static", f"-DVERSION=v{PAUSE_IMAGE.rsplit(':', 1)[1]}",
                           "-o", str(partial), str(source)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise HostNotReady(f"gcc -static pause.c failed (libc6-dev holds the static libc: `make prereqs`):\n"
                           f"{proc.stderr[-2000:]}")
    subprocess.run(["strip", str(partial)], check=False)
    partial.rename(target)
    return target


def _archive(name: str) -> Path:
    return binaries.cache_root() / "images" / name


def pause_archive() -> Path:
    target = _archive(f"pause-{binaries.KUBERNETES_VERSION}.tar")
    if not target.is_file():
        SingleLayerImage(PAUSE_IMAGE, (File("/pause", pause_binary()),), ("/pause",)).write(target)
    return target


def coredns_archive() -> Path:
    target = _archive(f"coredns-{binaries.COREDNS_VERSION}.tar")
    if not target.is_file():
        SingleLayerImage(COREDNS_IMAGE, (File("/coredns", binaries.binary("coredns")),), ("/coredns",)).write(target)
    return target
