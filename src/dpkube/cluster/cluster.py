"""One real single-node cluster on this machine, brought up in dependency order and taken down in reverse.

`up` records everything it makes (PIDs, bridge, kernel switches it changed, the folder) in a state file
before making it, so `down`, in this process or another, removes exactly that: pods first (the kubelet
tears their sandboxes down), then the NetworkPolicy and Service rules, the node, containerd and its shims,
leftover mounts and network namespaces, the control plane, the bridge. One cluster per machine: two would
fight over the same iptables chains.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from dpkube.cluster import dns, firewall, host, systemimages
from dpkube.cluster.components import NODE_NAME, Node, identities
from dpkube.cluster.containerd import Containerd
from dpkube.cluster.errors import ClusterBusy, ClusterError
from dpkube.cluster.network import Network, free_subnets
from dpkube.cluster.processes import Recorded
from dpkube.controlplane import binaries
from dpkube.controlplane.local import ADMIN, LocalControlPlane, free_port
from dpkube.controlplane.processes import ChildProcess

NETNS_DIR = Path("/var/run/netns")  # where containerd 1.6's CRI pins pod network namespaces
CGROUP_ROOT = Path("/sys/fs/cgroup")
CONTAINER_LOG_LINKS = Path("/var/log/containers")  # the kubelet's symlinks (not configurable)


def state_file() -> Path:
    """Where the cluster of this machine is recorded (one per machine)."""
    return binaries.cache_root() / "cluster" / "state.json"


def _log(message: str) -> None:
    print(f"dpkube cluster: {message}", flush=True)


@dataclass
class State:
    """What `up` made, as `down` needs it."""

    workdir: str
    network: dict
    processes: list[dict] = field(default_factory=list)
    netns_before: list[str] = field(default_factory=list)
    cgroups_before: list[str] = field(default_factory=list)
    firewall_before: dict = field(default_factory=dict)
    log_links_existed: bool = True
    kubeconfig: str = ""
    api_url: str = ""

    def save(self) -> None:
        path = state_file()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.__dict__, indent=1))

    @classmethod
    def load(cls) -> State | None:
        path = state_file()
        return cls(**json.loads(path.read_text())) if path.exists() else None

    def recorded(self) -> list[Recorded]:
        return [Recorded(**p) for p in self.processes]


@dataclass
class LocalCluster:
    """A real cluster: `start()` returns once the node is Ready and DNS answers; `stop()` removes it all."""

    images: tuple[Path, ...] = ()
    """`docker save` archives to import into containerd (dpkube's images)."""
    workdir: Path | None = None
    log: Callable[[str], None] = _log
    plane: LocalControlPlane | None = None
    network: Network | None = None
    containerd: Containerd | None = None
    kubeconfig: Path = Path()
    timings: dict[str, float] = field(default_factory=dict)
    state: State | None = None
    children: dict[str, ChildProcess] = field(default_factory=dict)

    # Bring-up.

    def start(self) -> LocalCluster:
        host.check()
        _refuse_or_clean_previous(self.log)
        started = time.monotonic()
        tools = binaries.all_binaries(binaries.CLUSTER_BINARIES, log=self.log)
        system_archives = (systemimages.pause_archive(), systemimages.coredns_archive())
        self._lap("binaries", started)
        self.workdir = Path(self.workdir or tempfile.mkdtemp(prefix="dpkube-cluster-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        pods, services = free_subnets(str(self.workdir), 2)
        bridge = "dpk" + hashlib.sha256(str(self.workdir).encode()).hexdigest()[:8]
        self.network = Network(bridge, str(pods), str(services))
        self.state = State(str(self.workdir), {}, netns_before=_netns(), cgroups_before=_kubepods_cgroups(),
                           firewall_before=firewall.Snapshot.take().__dict__,
                           log_links_existed=CONTAINER_LOG_LINKS.exists())
        self._record()
        try:
            self._start(tools, system_archives, started)
        except BaseException:
            self._record()
            self.stop()
            raise
        self.timings["total"] = time.monotonic() - started
        return self

    def _start(self, tools: dict[str, Path], system_archives: tuple[Path, ...], started: float) -> None:
        assert self.network is not None and self.workdir is not None
        net = self.network
        net.up()
        self._record()
        self.log(f"bridge {net.bridge}: pods {net.pod_cidr} (node {net.gateway}), Services {net.service_cidr}")

        lap = time.monotonic()
        ids = identities()
        self.plane = LocalControlPlane(
            self.workdir / "controlplane", users=("alice", "bob"), address=net.gateway,
            service_cidr=net.service_cidr, components=tuple(ids.values()), authorization_modes="Node,RBAC",
            # The kubelet by its address: its host name is nowhere in DNS (and no lookup may leave the machine).
            extra_args=("--kubelet-preferred-address-types=InternalIP",))
        try:
            self.plane.start()
        finally:
            self._record()
        self.kubeconfig = self.plane.kubeconfig
        self._lap("control plane", lap)

        lap = time.monotonic()
        containerd = self.containerd = Containerd(self.workdir / "containerd")
        containerd.write_config()
        (containerd.cni_conf_dir / "10-dpkube.conflist").write_text(
            json.dumps(net.cni_config(self.workdir / "cni-ipam"), indent=1))
        self._spawn("containerd", containerd.argv(), env=containerd.environment())
        self._wait(lambda: containerd.ctr("version", check=False).returncode == 0, 30, "containerd")
        for archive in (*system_archives, *self.images):
            containerd.import_image(archive)
        self._lap("containerd and images", lap)

        lap = time.monotonic()
        assert self.plane.keys is not None
        node = Node(self.workdir / "node", self.plane.url, self.plane.ca_file, net.gateway, net.pod_cidr,
                    net.service_cidr, net.service_ip(10), self.containerd.endpoint, free_port(net.gateway))
        node.home.mkdir(parents=True, exist_ok=True)
        config = {name: node.kubeconfig(name, ids[name].token) for name in ids}
        admin = node.kubeconfig("kube-router", self.plane.token(ADMIN))
        self._spawn("kube-controller-manager", node.controller_manager(config["kube-controller-manager"],
                                                                        self.plane.keys.sa_private_key))
        self._spawn("kube-scheduler", node.scheduler(config["kube-scheduler"]))
        self._spawn("kubelet", node.kubelet(config["kubelet"]))
        self._spawn("kube-proxy", node.kube_proxy(config["kube-proxy"]))
        self._wait(self._node_ready, 120, "kubelet (node Ready)")
        self._spawn("kube-router", node.kube_router(admin))
        self._lap("node Ready", lap)

        lap = time.monotonic()
        self.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                           "items": dns.manifests(net.service_ip(10))}))
        self._wait(self._dns_ready, 120, "CoreDNS")
        self._lap("DNS", lap)
        assert self.state is not None
        self.state.kubeconfig, self.state.api_url = str(self.kubeconfig), self.plane.url
        self._record()
        (self.workdir / "env").write_text(f"export KUBECONFIG={self.kubeconfig}\n")
        self.log(f"ready in {time.monotonic() - started:.0f}s: export KUBECONFIG={self.kubeconfig}")

    def _lap(self, name: str, since: float) -> None:
        self.timings[name] = time.monotonic() - since

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> ChildProcess:
        assert self.workdir is not None
        child = ChildProcess(name, argv, self.workdir / "logs" / f"{name}.log", env).start()
        self.children[name] = child
        self._record()
        return child

    def _record(self) -> None:
        """Write down every process and the network before anything else can fail."""
        assert self.state is not None
        processes = [Recorded(name, child.pid, child.argv[0]) for name, child in self.children.items()
                     if child.pid is not None]
        if self.plane is not None:
            processes += [Recorded(name, child.pid, child.argv[0]) for name, child in self.plane._procs.items()
                          if child.pid is not None]
        self.state.processes = [p.to_json() for p in processes]
        if self.network is not None:
            self.state.network = dict(self.network.__dict__)
        self.state.save()

    def _wait(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for child in self.children.values():
                if not child.running():
                    raise ClusterError(f"{child.name} exited while waiting for {what}:\n{child.log_tail()}")
            if ready():
                return
            time.sleep(0.5)
        tails = "\n".join(f"--- {c.name}\n{c.log_tail(15)}" for c in self.children.values())
        raise ClusterError(f"{what} not ready after {timeout:.0f}s:\n{tails}")

    def restart(self, name: str) -> None:
        """Stop one node process (SIGTERM) and start it again with the same command line, as systemd would."""
        child = self.children[name]
        child.stop()
        child.start()
        self._record()

    def kubectl(self, *args: str, input: str | None = None, check: bool = True,
                timeout: float = 120) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([str(binaries.binary("kubectl")), "--kubeconfig", str(self.kubeconfig), *args],
                              input=input, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise ClusterError(f"kubectl {' '.join(args)}: {proc.stderr.strip()}")
        return proc

    def _node_ready(self) -> bool:
        proc = self.kubectl("get", "node", NODE_NAME, "-o", "json", check=False)
        if proc.returncode != 0:
            return False
        node = json.loads(proc.stdout)
        ready = [c for c in node["status"].get("conditions", []) if c["type"] == "Ready"]
        return bool(ready) and ready[0]["status"] == "True" and bool(node["spec"].get("podCIDR"))

    def _dns_ready(self) -> bool:
        proc = self.kubectl("-n", dns.NAMESPACE, "get", "deployment", "coredns", "-o", "json", check=False)
        return proc.returncode == 0 and json.loads(proc.stdout).get("status", {}).get("readyReplicas", 0) >= 1

    # Tear-down.

    def stop(self) -> None:
        """Remove everything `start` made (also after a failed start)."""
        if self.state is not None:
            down(self.state, self.log)
            self.state = None

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _refuse_or_clean_previous(log: Callable[[str], None]) -> None:
    previous = State.load()
    if previous is None:
        return
    alive = [p.name for p in previous.recorded() if p.alive()]
    if alive:
        raise ClusterBusy(f"a cluster runs on this machine ({', '.join(alive)} of {previous.workdir}): "
                          "stop it with `dpkube cluster down`")
    log(f"cleaning up after a cluster that was not taken down ({previous.workdir})")
    down(previous, log)


def _netns() -> list[str]:
    return sorted(p.name for p in NETNS_DIR.iterdir()) if NETNS_DIR.is_dir() else []


def _kubepods_cgroups() -> list[str]:
    return sorted(str(p) for p in CGROUP_ROOT.glob("*/kubepods"))


def _mounts_under(prefixes: list[str]) -> list[str]:
    """Mount points at or below any of `prefixes`, deepest first (the order to unmount them)."""
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if any(point == p or point.startswith(p.rstrip("/") + "/") for p in prefixes):
            points.append(point)
    return sorted(set(points), key=lambda p: -p.count("/"))


def down(state: State, log: Callable[[str], None] = _log) -> list[str]:
    """Stop and remove what `state` records; return what could not be removed (empty when all went)."""
    processes = {p.name: p for p in state.recorded()}
    workdir = Path(state.workdir)
    kubeconfig = Path(state.kubeconfig) if state.kubeconfig else workdir / "controlplane" / "kubeconfig"
    containerd = Containerd(workdir / "containerd")

    for name in ("kube-controller-manager", "kube-scheduler"):
        if name in processes:
            processes[name].stop()
    if all(name in processes and processes[name].alive() for name in ("kube-apiserver", "kubelet")):
        _delete_pods(kubeconfig, containerd, log)
    for name in ("kube-router", "kube-proxy", "kubelet"):
        if name in processes:
            processes[name].stop()
    firewall.Snapshot(**state.firewall_before).remove_added()
    if "containerd" in processes and processes["containerd"].alive():
        _remove_containers(containerd)
        processes["containerd"].stop()
    for pid in containerd.shim_pids():
        Recorded("shim", pid, Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()).stop(grace=2)
    for name in ("kube-apiserver", "etcd"):
        if name in processes:
            processes[name].stop()

    new_netns = [NETNS_DIR / n for n in _netns() if n.startswith("cni-") and n not in state.netns_before]
    for point in _mounts_under([str(workdir), *map(str, new_netns)]):
        subprocess.run(["umount", "--lazy", point], capture_output=True)
    for path in new_netns:
        with contextlib.suppress(OSError):
            path.unlink()
    if state.network:
        Network(**state.network).down()
    for cgroup in _kubepods_cgroups():
        if cgroup not in state.cgroups_before:
            _remove_cgroup_tree(Path(cgroup))
    if not state.log_links_existed and CONTAINER_LOG_LINKS.is_dir() and not any(CONTAINER_LOG_LINKS.iterdir()):
        CONTAINER_LOG_LINKS.rmdir()

    left = leftovers(state)
    if not left:
        for _ in range(10):  # a process that just exited may still be closing its files in there
            shutil.rmtree(workdir, ignore_errors=True)
            if not workdir.exists():
                break
            time.sleep(1)
        else:
            left.append(f"folder {workdir}")
    if not left:
        state_file().unlink(missing_ok=True)
        log("down: no process, bridge, mount, network namespace, iptables chain or folder left")
    else:
        log("down: left behind: " + "; ".join(left))
    return left


def leftovers(state: State) -> list[str]:
    """What of the cluster still exists on this machine."""
    left = [f"process {p.name} ({p.pid})" for p in state.recorded() if p.alive()]
    workdir = Path(state.workdir)
    left += [f"shim {pid}" for pid in Containerd(workdir / "containerd").shim_pids()]
    if state.network and Network(**state.network).exists():
        left.append(f"bridge {state.network['bridge']}")
    left += [f"mount {m}" for m in _mounts_under([str(workdir)])]
    left += [f"netns {n}" for n in _netns() if n.startswith("cni-") and n not in state.netns_before]
    return left + firewall.Snapshot(**state.firewall_before).added()


def _delete_pods(kubeconfig: Path, containerd: Containerd, log: Callable[[str], None]) -> None:
    """Delete every pod and let the kubelet tear its containers, sandbox and network down."""
    kubectl = [str(binaries.binary("kubectl")), "--kubeconfig", str(kubeconfig)]
    subprocess.run([*kubectl, "delete", "pods", "--all", "--all-namespaces", "--grace-period=0", "--force",
                    "--wait=false"], capture_output=True, timeout=60)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        # Stopped sandboxes have had their network torn down; what is left of them ctr removes below.
        tasks = containerd.ctr("tasks", "list", check=False).stdout.splitlines()[1:]
        if not [line for line in tasks if line.split()[-1:] == ["RUNNING"]]:
            return
        time.sleep(0.5)
    log("down: the kubelet left containers running; killing them with ctr")


def _remove_containers(containerd: Containerd) -> None:
    for container in containerd.ctr("containers", "list", "--quiet", check=False).stdout.split():
        containerd.ctr("tasks", "kill", "--signal", "SIGKILL", container, check=False)
        containerd.ctr("tasks", "delete", "--force", container, check=False)
        containerd.ctr("containers", "delete", container, check=False)


def _remove_cgroup_tree(path: Path) -> None:
    """rmdir a cgroup v1 folder and its children, deepest first (the kernel refuses files inside them)."""
    if not path.is_dir():
        return
    for child in sorted((p for p in path.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        with contextlib.suppress(OSError):
            child.rmdir()
    with contextlib.suppress(OSError):
        path.rmdir()


