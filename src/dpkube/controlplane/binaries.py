"""Obtains the binaries that tests and `make dev` run: the control plane (kube-apiserver, etcd, kubectl,
helm) and, for the real cluster (`dpkube cluster up`), the node's (kubelet, kube-proxy, ...), CoreDNS and
kube-router's NetworkPolicy controller.

Order of preference: `KUBEBUILDER_ASSETS` (the envtest convention: setup-envtest users get them for free),
then a per-version cache outside the repository, else a build from the Go module proxy with this machine's
Go toolchain in a throw-away wrapper module. Versions are pinned here and nowhere else.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

KUBERNETES_VERSION = "v1.34.4"
ETCD_VERSION = "v3.6.5"  # the etcd that Kubernetes 1.34 is tested with (hack/lib/etcd.sh)
HELM_VERSION = "v3.19.0"
COREDNS_VERSION = "v1.12.1"  # the CoreDNS that kubeadm 1.34 installs
KUBE_ROUTER_VERSION = "v2.1.0"  # the newest kube-router on the module proxy


class BinaryUnavailable(RuntimeError):
    """A binary could be neither found nor built; the message carries the tool's own error."""


@dataclass(frozen=True)
class GoBuild:
    """How to build one family of binaries from a Go module published on the module proxy."""

    family: str
    module: str
    version: str
    packages: dict[str, str]  # binary name -> Go package path
    ldflags: str
    local_replacement_version: Callable[[str], str]


def _kubernetes_ldflags(version: str) -> str:
    major, minor = version.lstrip("v").split(".")[:2]
    flags = ["-s", "-w"]
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [
            f"-X {pkg}.gitVersion={version}",
            f"-X {pkg}.gitMajor={major}",
            f"-X {pkg}.gitMinor={minor}",
            f"-X {pkg}.gitTreeState=clean",
        ]
    return " ".join(flags)


BUILDS: dict[str, GoBuild] = {
    "kubernetes": GoBuild(
        family="kubernetes",
        module="k8s.io/kubernetes",
        version=KUBERNETES_VERSION,
        packages={
            "kube-apiserver": "k8s.io/kubernetes/cmd/kube-apiserver",
            "kubectl": "k8s.io/kubernetes/cmd/kubectl",
        },
        ldflags=_kubernetes_ldflags(KUBERNETES_VERSION),
        # Staging modules (k8s.io/api, ...) are published as v0.<minor>.<patch>.
        local_replacement_version=lambda _module: "v0." + KUBERNETES_VERSION.split(".", 1)[1],
    ),
    # The rest of a cluster, from the same module: its own family, so the control plane never waits for it.
    "kubernetes-node": GoBuild(
        family="kubernetes-node",
        module="k8s.io/kubernetes",
        version=KUBERNETES_VERSION,
        packages={
            name: f"k8s.io/kubernetes/cmd/{name}"
            for name in ("kubelet", "kube-proxy", "kube-controller-manager", "kube-scheduler")
        },
        ldflags=_kubernetes_ldflags(KUBERNETES_VERSION),
        local_replacement_version=lambda _module: "v0." + KUBERNETES_VERSION.split(".", 1)[1],
    ),
    "coredns": GoBuild(
        family="coredns",
        module="github.com/coredns/coredns",
        version=COREDNS_VERSION,
        packages={"coredns": "github.com/coredns/coredns"},
        ldflags=f"-s -w -X github.com/coredns/coredns/coremain.GitCommit={COREDNS_VERSION}",
        local_replacement_version=lambda _module: COREDNS_VERSION,
    ),
    "kube-router": GoBuild(
        family="kube-router",
        module="github.com/cloudnativelabs/kube-router/v2",
        version=KUBE_ROUTER_VERSION,
        packages={"kube-router": "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router"},
        ldflags=f"-s -w -X github.com/cloudnativelabs/kube-router/v2/pkg/version.Version={KUBE_ROUTER_VERSION}",
        local_replacement_version=lambda _module: KUBE_ROUTER_VERSION,
    ),
    "etcd": GoBuild(
        family="etcd",
        module="go.etcd.io/etcd/server/v3",
        version=ETCD_VERSION,
        packages={"etcd": "go.etcd.io/etcd/server/v3"},
        ldflags="-s -w",
        local_replacement_version=lambda _module: ETCD_VERSION,
    ),
    "helm": GoBuild(
        family="helm",
        module="helm.sh/helm/v3",
        version=HELM_VERSION,
        packages={"helm": "helm.sh/helm/v3/cmd/helm"},
        ldflags=f"-s -w -X helm.sh/helm/v3/internal/version.version={HELM_VERSION}",
        local_replacement_version=lambda _module: HELM_VERSION,
    ),
}

FAMILY_OF = {binary: build.family for build in BUILDS.values() for binary in build.packages}
ENVTEST_BINARIES = ("kube-apiserver", "etcd", "kubectl")
CONTROL_PLANE_BINARIES = ("kube-apiserver", "etcd", "kubectl", "helm")
CLUSTER_BINARIES = (*CONTROL_PLANE_BINARIES, "kubelet", "kube-proxy", "kube-controller-manager", "kube-scheduler",
                    "coredns", "kube-router")


def cache_root() -> Path:
    """Where built binaries live, keyed by version; never inside the repository."""
    if explicit := os.environ.get("DPKUBE_CACHE_DIR"):
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "dpkube"


def _family_dir(build: GoBuild) -> Path:
    return cache_root() / "bin" / f"{build.family}-{build.version}"


def binary(name: str, *, log: Callable[[str], None] | None = None) -> Path:
    """The path of one binary, building it (and its family) when no usable copy exists."""
    if name not in FAMILY_OF:
        raise KeyError(f"unknown control-plane binary {name!r}")
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if assets and name in ENVTEST_BINARIES:
        candidate = Path(assets) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    build = BUILDS[FAMILY_OF[name]]
    target = _family_dir(build) / name
    if not target.is_file():
        _build_family(build, log=log or _stderr)
    return target


def all_binaries(names: tuple[str, ...] = CONTROL_PLANE_BINARIES, *,
                 log: Callable[[str], None] | None = None) -> dict[str, Path]:
    """The named binaries (by default the control plane's), built where needed."""
    return {name: binary(name, log=log) for name in names}


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """Serialises builds of one family across processes (pytest-xdist workers, make dev, CI)."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _go(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    proc = subprocess.run(["go", *args], cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BinaryUnavailable(f"`go {' '.join(args)}` failed:\n{proc.stderr[-4000:]}")
    return proc.stdout


_REPLACE_BLOCK = re.compile(r"^replace\s*\((.*?)^\)", re.S | re.M)
_REPLACE_LINE = re.compile(r"^replace\s+(.+)$", re.M)


def wrapper_replacements(upstream_go_mod: str, local_version: Callable[[str], str]) -> list[str]:
    """The upstream module's replace directives, rewritten for use from outside its repository.

    A replacement by a local folder (`k8s.io/api => ./staging/src/k8s.io/api`) becomes the published
    module at the matching version; guards pointing at a FORBIDDEN folder are dropped.
    """
    entries: list[str] = []
    for block in _REPLACE_BLOCK.findall(upstream_go_mod):
        entries += [line.strip() for line in block.splitlines()]
    entries += [m.strip() for m in _REPLACE_LINE.findall(upstream_go_mod) if "(" not in m]
    rewritten: list[str] = []
    for entry in entries:
        entry = entry.split("//", 1)[0].strip()
        if "=>" not in entry:
            continue
        left, right = (part.strip() for part in entry.split("=>", 1))
        module = left.split()[0]
        if "FORBIDDEN" in right:
            continue
        if right.startswith(("./", "../")):
            rewritten.append(f"{module} => {module} {local_version(module)}")
        else:
            rewritten.append(f"{left} => {right}")
    return rewritten


def _build_family(build: GoBuild, *, log: Callable[[str], None]) -> None:
    final_dir = _family_dir(build)
    with _exclusive(final_dir.with_suffix(".lock")):
        if all((final_dir / name).is_file() for name in build.packages):
            return
        if shutil.which("go") is None:
            raise BinaryUnavailable(
                "no Go toolchain on PATH: install Go or set KUBEBUILDER_ASSETS to envtest binaries"
            )
        started = time.monotonic()
        log(f"dpkube: building {', '.join(build.packages)} {build.version} from the Go module proxy")
        env = dict(os.environ, CGO_ENABLED="0", GOFLAGS="-buildvcs=false", GOWORK="off")
        with tempfile.TemporaryDirectory(prefix=f"dpkube-build-{build.family}-") as tmp:
            work = Path(tmp)
            info = json.loads(_go(["mod", "download", "-json", f"{build.module}@{build.version}"], work, env))
            upstream = Path(info["GoMod"]).read_text()
            replaces = wrapper_replacements(upstream, build.local_replacement_version)
            go_directive = re.search(r"^go\s+(\S+)", upstream, re.M)
            (work / "go.mod").write_text(
                "module dpkube.invalid/build\n\n"
                f"go {go_directive.group(1) if go_directive else '1.22'}\n\n"
                f"require {build.module} {build.version}\n\n"
                + "".join(f"replace {line}\n" for line in replaces)
            )
            staging = work / "out"
            staging.mkdir()
            for name, package in build.packages.items():
                _go(
                    ["build", "-mod=mod", "-trimpath", "-ldflags", build.ldflags,
                     "-o", str(staging / name), package],
                    work,
                    env,
                )
            final_dir.parent.mkdir(parents=True, exist_ok=True)
            if final_dir.exists():
                shutil.rmtree(final_dir)
            shutil.move(str(staging), final_dir)
        log(f"dpkube: built {build.family} {build.version} in {time.monotonic() - started:.0f}s")
