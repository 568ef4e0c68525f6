"""dpkube's images, built from the repository's Dockerfile with a Docker engine and BuildKit.

The engine is the one that answers (`docker info`), else, as root, a private `dockerd` of Debian's
docker.io started for the build (its layer cache kept in the binaries' cache, no bridge, no iptables) and
stopped by PID after it. The base is the Dockerfile's pinned python image where it can be pulled, else one
made from Debian's packages (mmdebstrap, then `docker import`). torch comes from the PyTorch CPU index where
it answers, else from PyPI. The images a cluster imports are saved in an archive keyed by a digest of
everything the build reads, so an unchanged tree is never built twice.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dpkube.cluster.errors import HostNotReady, ImageBuildError
from dpkube.controlplane import binaries
from dpkube.controlplane.processes import ChildProcess
from dpkube.models.queue import DEFAULT_QUEUE, default_queue_spec

VERSION = "0.1.0"
REPOSITORY = "dpkube"
FULL = f"{REPOSITORY}:{VERSION}"
CORE = f"{REPOSITORY}:{VERSION}-core"
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
PYPI_INDEX = "https://pypi.org/simple"
BASE_SUITE = "bookworm"  # the Debian release of the pinned python:3.11-slim-bookworm
BASE_PACKAGES = ("python3", "python3-venv", "python-is-python3", "ca-certificates", "passwd")
DEBIAN_MIRRORS = (
    f"deb http://deb.debian.org/debian {BASE_SUITE} main",
    f"deb http://deb.debian.org/debian {BASE_SUITE}-updates main",
    f"deb http://deb.debian.org/debian-security {BASE_SUITE}-security main",
)
BUILD_INPUTS = ("Dockerfile", ".dockerignore", "pyproject.toml", "README.md", "requirements/image.lock",
                "requirements/image-build.lock", "requirements/image-torch-cuda.lock", "src", "operator", "api")


def _log(message: str) -> None:
    print(f"dpkube image: {message}", flush=True)


@dataclass(frozen=True)
class Docker:
    """A client bound to one engine; `build` runs BuildKit."""

    env: dict[str, str]
    client: str
    private: bool

    def run(self, *args: str, check: bool = True, timeout: float = 3600,
            input: bytes | None = None) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([self.client, *args], env=self.env, capture_output=True, timeout=timeout, input=input)
        result = subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout.decode(errors="replace"),
                                             proc.stderr.decode(errors="replace"))
        if check and proc.returncode != 0:
            raise ImageBuildError(f"`docker {' '.join(args[:3])} ...` failed:\n{result.stderr[-6000:]}")
        return result

    def has_image(self, reference: str) -> bool:
        return self.run("image", "inspect", reference, check=False).returncode == 0

    def image_bytes(self, reference: str) -> int:
        return int(self.run("image", "inspect", "--format", "{{.Size}}", reference).stdout.strip())


def _buildkit_client(env: dict[str, str]) -> str:
    """A docker client that builds with BuildKit: one with buildx, else one from before buildx was needed
    (Debian's docker.io 20.10 has BuildKit built in); the Docker 23+ CLI without buildx has neither."""
    candidates = [c for c in (shutil.which("docker"), "/usr/bin/docker") if c and os.access(c, os.X_OK)]
    for client in dict.fromkeys(candidates):
        if subprocess.run([client, "buildx", "version"], env=env, capture_output=True).returncode == 0:
            return client
        version = subprocess.run([client, "version", "--format", "{{.Client.Version}}"], env=env,
                                 capture_output=True, text=True).stdout.strip()
        if re.match(r"^(1\d|20|21|22)\.", version):
            return client
    raise HostNotReady("no docker client that builds with BuildKit: install buildx, or Debian's docker.io "
                       "(`make prereqs`)")


@contextlib.contextmanager
def engine(log: Callable[[str], None] = _log) -> Iterator[Docker]:
    """The engine that answers, else a private dockerd for the duration of the block."""
    env = {**os.environ, "DOCKER_BUILDKIT": "1"}
    if shutil.which("docker") and subprocess.run(["docker", "info"], env=env, capture_output=True).returncode == 0:
        yield Docker(env, _buildkit_client(env), private=False)
        return
    if shutil.which("dockerd") is None or os.geteuid() != 0:
        raise HostNotReady("no Docker engine answers (`docker info` failed), and none can be started here: "
                           "run `make prereqs` as root (Debian's docker.io), or start your engine")
    home = Path(tempfile.mkdtemp(prefix="dpkube-docker-"))
    env["DOCKER_HOST"] = f"unix://{home / 'docker.sock'}"
    data_root = binaries.cache_root() / "docker"
    data_root.mkdir(parents=True, exist_ok=True)
    daemon = ChildProcess("dockerd", [
        shutil.which("dockerd") or "dockerd", f"--data-root={data_root}", f"--exec-root={home / 'exec'}",
        f"--pidfile={home / 'dockerd.pid'}", f"--host={env['DOCKER_HOST']}", "--bridge=none", "--iptables=false",
        "--ip-forward=false", "--ip-masq=false", "--containerd-namespace=dpkube-docker",
        "--containerd-plugins-namespace=dpkube-docker-plugins", "--log-level=warn",
    ], home / "dockerd.log").start()
    try:
        deadline = time.monotonic() + 60
        while subprocess.run(["docker", "info"], env=env, capture_output=True).returncode != 0:
            if not daemon.running() or time.monotonic() > deadline:
                raise HostNotReady(f"dockerd did not start:\n{daemon.log_tail()}")
            time.sleep(0.5)
        log(f"started a private dockerd (pid {daemon.pid}, layers in {data_root})")
        yield Docker(env, _buildkit_client(env), private=True)
    finally:
        daemon.stop(grace=30)  # dockerd stops the containerd it started
        shutil.rmtree(home, ignore_errors=True)


def _reachable(url: str) -> bool:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=10):
            return True
    except (urllib.error.URLError, OSError):
        return False


def torch_index(log: Callable[[str], None] = _log) -> str:
    """The PyTorch CPU index where it answers, else PyPI (whose torch needs its CUDA wheels to import)."""
    if _reachable(f"{TORCH_CPU_INDEX}/torch/"):
        return TORCH_CPU_INDEX
    log(f"{TORCH_CPU_INDEX} is out of reach: torch comes from PyPI, with the CUDA wheels it links (no triton)")
    return PYPI_INDEX


def _dockerfile_default_base(context: Path) -> str:
    match = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", (context / "Dockerfile").read_text(), re.M)
    if match is None:
        raise ImageBuildError("the Dockerfile declares no ARG PYTHON_IMAGE=...")
    return match.group(1)


def debian_base(docker: Docker, log: Callable[[str], None] = _log) -> str:
    """A python:3.11-slim-bookworm stand-in made from Debian's packages: mmdebstrap's root filesystem,
    imported; its tarball is kept in the cache, so only the first build reaches the Debian mirror."""
    key = hashlib.sha256("\n".join((*BASE_PACKAGES, *DEBIAN_MIRRORS)).encode()).hexdigest()[:12]
    reference = f"dpkube-base:{BASE_SUITE}-{key}"
    if docker.has_image(reference):
        return reference
    tarball = binaries.cache_root() / "images" / f"base-{BASE_SUITE}-{key}.tar"
    if not tarball.is_file():
        if shutil.which("mmdebstrap") is None:
            raise HostNotReady("no registry answers for the base image, and no mmdebstrap to make one from "
                               "Debian's packages: run `make prereqs` as root")
        log(f"making the base image from Debian {BASE_SUITE} packages ({', '.join(BASE_PACKAGES)})")
        tarball.parent.mkdir(parents=True, exist_ok=True)
        partial = tarball.with_suffix(".partial")
        proc = subprocess.run([
            "mmdebstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}",
            "--dpkgopt=path-exclude=/usr/share/doc/*", "--dpkgopt=path-exclude=/usr/share/man/*",
            "--dpkgopt=path-exclude=/usr/share/locale/*", "--format=tar", BASE_SUITE, str(partial), *DEBIAN_MIRRORS,
        ], capture_output=True, text=True)
        if proc.returncode != 0:
            raise ImageBuildError(f"mmdebstrap failed:\n{proc.stderr[-4000:]}")
        partial.rename(tarball)
    docker.run("import", "--change", "ENV LANG=C.UTF-8", "--change", 'CMD ["python3"]', str(tarball), reference)
    return reference


def base_image(docker: Docker, context: Path, log: Callable[[str], None] = _log) -> str:
    """The Dockerfile's pinned base where the engine has it or can pull it, else the Debian-made one."""
    pinned = _dockerfile_default_base(context)
    if docker.has_image(pinned) or docker.run("pull", pinned, check=False, timeout=600).returncode == 0:
        return pinned
    log(f"{pinned} cannot be pulled: using a base made from Debian's packages")
    return debian_base(docker, log)


def inputs_digest(context: Path, *extra: str) -> str:
    """A digest of every file the build reads (the Dockerfile's COPY sources) and of `extra` (its arguments)."""
    digest = hashlib.sha256()
    for name in BUILD_INPUTS:
        path = context / name
        files = [path] if path.is_file() else sorted(
            p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc")
        for file in files:
            digest.update(file.relative_to(context).as_posix().encode() + b"\0" + file.read_bytes() + b"\0")
    for value in extra:
        digest.update(value.encode() + b"\0")
    return digest.hexdigest()


@dataclass(frozen=True)
class Built:
    """Images saved in one archive (their shared layers once), with what made them."""

    archive: Path
    sizes: dict[str, int]
    base: str
    torch_index: str | None
    """Where torch came from; None when only the core image (no torch) was built."""
    seconds: float


def build(docker: Docker, context: Path, tags: dict[str | None, str],
          log: Callable[[str], None] = _log) -> tuple[str, str | None]:
    """`docker build` of each target (None: the default, full one) under its tag; the base and torch index used."""
    base = base_image(docker, context, log)
    index = torch_index(log) if None in tags else None  # the core target never reaches torch's stage
    args = ["build", "--build-arg", f"PYTHON_IMAGE={base}", "--progress", "plain",
            *(["--build-arg", f"TORCH_INDEX_URL={index}"] if index else [])]
    if docker.private:
        args += ["--network", "host"]  # a private engine has no bridge
    ca = os.environ.get("DPKUBE_BUILD_CA") or os.environ.get("PIP_CERT") or os.environ.get("SSL_CERT_FILE")
    if ca and Path(ca).is_file():
        args += ["--secret", f"id=build_ca,src={ca}"]
    for target, tag in tags.items():
        log(f"building {tag} (base {base})")
        docker.run(*args, *(["--target", target] if target else []), "-t", tag, str(context))
    return base, index


def cluster_images(context: Path, full: bool = False, log: Callable[[str], None] = _log) -> Built:
    """The archive of the core image (and, with `full`, of the full one) for the current tree: from the cache,
    or built and saved now. The core image serves every role but synthetic data (see the Dockerfile)."""
    started = time.monotonic()
    store = binaries.cache_root() / "images"
    tags: dict[str | None, str] = {"core": CORE, **({None: FULL} if full else {})}
    archive = store / f"dpkube-{'full' if full else 'core'}-{inputs_digest(context)[:16]}.tar"
    about = archive.with_suffix(".json")
    if archive.is_file() and about.is_file():
        known = json.loads(about.read_text())
        return Built(archive, known["sizes"], known["base"], known["torch_index"], time.monotonic() - started)
    with engine(log) as docker:
        base, index = build(docker, context, tags, log=log)
        sizes = {tag: docker.image_bytes(tag) for tag in tags.values()}
        store.mkdir(parents=True, exist_ok=True)
        kind = "full" if full else "core"
        for old in (*store.glob(f"dpkube-{kind}-*.tar"), *store.glob(f"dpkube-{kind}-*.json")):
            old.unlink()
        partial = archive.with_suffix(".partial")
        docker.run("save", "-o", str(partial), *tags.values())
        partial.rename(archive)
        # The engine keeps the layers of the newest build only (earlier trees' images are untagged now).
        docker.run("image", "prune", "--force")
        docker.run("builder", "prune", "--force", "--keep-storage", str(8 * 2**30))
        about.write_text(json.dumps({"sizes": sizes, "base": base, "torch_index": index}))
    log(", ".join(f"{tag} {size / 1e9:.2f} GB" for tag, size in sizes.items()) + f"; saved to {archive}")
    return Built(archive, sizes, base, index, time.monotonic() - started)


def core_default_queue() -> dict[str, Any]:
    """The chart's default Queue (a `queues` entry), for a `queues` value that adds others: the core image runs
    its pods, since it warms the core libraries only."""
    spec = default_queue_spec().model_dump(mode="json", by_alias=True, exclude_none=True)
    return {"name": DEFAULT_QUEUE, "spec": spec}
