"""The iptables chains and ipsets the cluster's components make (kubelet, kube-proxy and kube-router all name
theirs KUBE-*), removed at `down`: the ones that were not there before `up`, with the rules that jump to
them. kube-router v2.1.0's own `--cleanup-config` leaves its chains and then crashes in its service proxy's
cleanup, and the kubelet cleans up nothing, so this does it for all three."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from dataclasses import dataclass

TABLES = ("filter", "nat", "mangle", "raw")
PREFIX = "KUBE-"


def _commands() -> list[str]:
    return [c for c in ("iptables", "ip6tables") if shutil.which(c) and shutil.which(f"{c}-save")]


def _save(command: str, table: str) -> list[str]:
    proc = subprocess.run([f"{command}-save", "-t", table], capture_output=True, text=True)
    return proc.stdout.splitlines() if proc.returncode == 0 else []


def _chains(lines: list[str]) -> set[str]:
    return {line[1:].split()[0] for line in lines if line.startswith(":") and line[1:].startswith(PREFIX)}


def _sets() -> set[str]:
    if shutil.which("ipset") is None:
        return set()
    return set(subprocess.run(["ipset", "list", "-n"], capture_output=True, text=True).stdout.split())


@dataclass
class Snapshot:
    """The KUBE-* chains (per command and table) and the ipsets that existed before the cluster."""

    chains: dict[str, list[str]]
    sets: list[str]

    @classmethod
    def take(cls) -> Snapshot:
        chains = {f"{command}/{table}": sorted(_chains(_save(command, table)))
                  for command in _commands() for table in TABLES}
        return cls(chains, sorted(_sets()))

    def added(self) -> list[str]:
        """What the cluster's components made and left (empty once removed)."""
        now = Snapshot.take()
        found = [f"{key} chain {chain}" for key, chains in now.chains.items()
                 for chain in chains if chain not in self.chains.get(key, [])]
        return found + [f"ipset {name}" for name in now.sets if name not in self.sets]

    def remove_added(self) -> None:
        """Delete the rules that jump to new KUBE-* chains, flush and delete those chains, then the new ipsets."""
        for command in _commands():
            for table in TABLES:
                lines = _save(command, table)
                new = _chains(lines) - set(self.chains.get(f"{command}/{table}", []))
                if not new:
                    continue
                for line in lines:
                    if not line.startswith("-A "):
                        continue
                    rule = shlex.split(line)
                    targets = {rule[i + 1] for i, word in enumerate(rule[:-1]) if word in ("-j", "-g")}
                    if rule[1] not in new and targets & new:
                        subprocess.run([command, "-w", "-t", table, "-D", rule[1], *rule[2:]], capture_output=True)
                for chain in new:
                    subprocess.run([command, "-w", "-t", table, "-F", chain], capture_output=True)
                for chain in new:
                    subprocess.run([command, "-w", "-t", table, "-X", chain], capture_output=True)
        for name in _sets() - set(self.sets):
            subprocess.run(["ipset", "flush", name], capture_output=True)
            subprocess.run(["ipset", "destroy", name], capture_output=True)
