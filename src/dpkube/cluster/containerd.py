"""A containerd of the cluster's own: its config, root, state and socket live in the cluster's folder,
runc runs the containers, CNI wires pods to the bridge. `ctr` imports images and kills containers."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from dpkube.cluster.errors import ClusterError
from dpkube.cluster.network import CNI_BIN_DIR
from dpkube.cluster.systemimages import PAUSE_IMAGE

NAMESPACE = "k8s.io"  # the CRI plugin's containerd namespace


@dataclass(frozen=True)
class Containerd:
    """Paths of one containerd instance, under `home`."""

    home: Path

    @property
    def socket(self) -> Path:
        return self.home / "containerd.sock"

    @property
    def config(self) -> Path:
        return self.home / "config.toml"

    @property
    def cni_conf_dir(self) -> Path:
        return self.home / "net.d"

    @property
    def root(self) -> Path:
        return self.home / "root"

    @property
    def state(self) -> Path:
        return self.home / "state"

    @property
    def endpoint(self) -> str:
        return f"unix://{self.socket}"

    def write_config(self) -> Path:
        """containerd 1.6's config (version 2). restrict_oom_score_adj: this machine forbids lowering a
        process's oom_score_adj, and the kubelet asks -998 for sandboxes, which runc then fails to set."""
        self.home.mkdir(parents=True, exist_ok=True)
        self.cni_conf_dir.mkdir(exist_ok=True)
        cri = 'plugins."io.containerd.grpc.v1.cri"'
        self.config.write_text(f"""version = 2
root = "{self.root}"
state = "{self.state}"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
                    "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
                    "io.containerd.internal.v1.tracing", "io.containerd.tracing.processor.v1.otlp"]

[grpc]
  address = "{self.socket}"

[ttrpc]
  address = "{self.home / 'containerd.ttrpc.sock'}"

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{self.home / 'opt'}"

[{cri}]
  sandbox_image = "{PAUSE_IMAGE}"
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  disable_apparmor = true

[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[{cri}.containerd.runtimes.runc.options]
  BinaryName = "runc"
  SystemdCgroup = false

[{cri}.cni]
  bin_dir = "{CNI_BIN_DIR}"
  conf_dir = "{self.cni_conf_dir}"
  max_conf_num = 1
""")
        return self.config

    def argv(self) -> list[str]:
        return ["containerd", "--config", str(self.config), "--log-level", "warn"]

    def ctr(self, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(["ctr", "--address", str(self.socket), "--namespace", NAMESPACE, *args],
                              capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise ClusterError(f"`ctr {' '.join(args)}` failed: {proc.stderr.strip()[-2000:]}")
        return proc

    def import_image(self, archive: Path) -> None:
        """An image archive (`docker save` format) into the CRI namespace, unpacked for overlayfs."""
        self.ctr("images", "import", str(archive))

    def images(self) -> list[str]:
        return self.ctr("images", "list", "--quiet").stdout.split()

    def kill_container(self, container_id: str) -> None:
        """SIGKILL the container's process: a crash, as the kubelet sees one."""
        self.ctr("tasks", "kill", "--signal", "SIGKILL", container_id)

    def shim_pids(self) -> list[int]:
        """The shims this containerd started: they outlive it, so they are found by its socket in their argv."""
        pids = []
        marker = str(self.socket).encode()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv and argv[0].endswith(b"containerd-shim-runc-v2") and marker in argv:
                pids.append(int(entry.name))
        return pids

    def environment(self) -> dict[str, str]:
        """containerd finds runc and the shim on PATH."""
        return {**os.environ, "PATH": os.environ.get("PATH", "") + ":/usr/sbin:/usr/bin:/sbin:/bin"}
