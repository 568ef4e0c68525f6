"""What this machine must provide for a real cluster, checked before anything starts, with the fix named."""

from __future__ import annotations

import os
import shutil

from dpkube.cluster.errors import HostNotReady
from dpkube.cluster.network import CNI_BIN_DIR

COMMANDS = {  # command -> the Debian package that has it
    "containerd": "containerd", "containerd-shim-runc-v2": "containerd", "ctr": "containerd", "runc": "runc",
    "iptables": "iptables", "ipset": "ipset", "conntrack": "conntrack", "ip": "iproute2", "gcc": "gcc",
}
CNI_PLUGINS = ("bridge", "host-local", "loopback")


def missing_packages() -> list[str]:
    """Debian packages whose commands are not here."""
    missing = {package for command, package in COMMANDS.items() if shutil.which(command) is None}
    if any(not (CNI_BIN_DIR / plugin).is_file() for plugin in CNI_PLUGINS):
        missing.add("containernetworking-plugins")
    return sorted(missing)


def check() -> None:
    """Raise HostNotReady unless this process is root and every prerequisite is installed."""
    if os.geteuid() != 0:
        raise HostNotReady("a real cluster needs root (bridges, iptables, mounts, cgroups): run it as root")
    missing = missing_packages()
    if missing:
        raise HostNotReady(f"missing Debian packages {', '.join(missing)}: run `make prereqs` (as root)")
