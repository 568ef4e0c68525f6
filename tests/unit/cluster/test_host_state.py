"""What the cluster finds on this machine: free private subnets, and processes told apart by PID and program."""

from __future__ import annotations

import ipaddress
import subprocess
import sys
from pathlib import Path

import pytest

from dpkube.cluster import network
from dpkube.cluster.processes import Recorded


def test_free_subnets_overlap_no_network_of_this_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    taken = [ipaddress.ip_network("10.128.0.0/10")]
    monkeypatch.setattr(network, "_taken", lambda: taken)
    found = network.free_subnets("seed", 2)
    assert len(set(found)) == 2
    assert not [net for net in found if net.overlaps(taken[0])]
    assert all(net.prefixlen == 24 and net.subnet_of(ipaddress.ip_network("10.128.0.0/9")) for net in found)


def test_free_subnets_are_stable_for_one_seed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(network, "_taken", lambda: [])
    assert network.free_subnets("a", 2) == network.free_subnets("a", 2)


def sleeper() -> subprocess.Popen[str]:
    """A child that has exec'd (before that, /proc shows the parent's command line)."""
    child = subprocess.Popen([sys.executable, "-c", "import time; print('up', flush=True); time.sleep(60)"],
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdout.readline() == "up\n"
    return child


def test_a_recorded_process_is_stopped_by_its_pid() -> None:
    child = sleeper()
    recorded = Recorded("sleeper", child.pid, sys.executable)
    assert recorded.alive()
    recorded.stop(grace=5)
    assert not recorded.alive()
    assert not Path(f"/proc/{child.pid}").exists()  # reaped: no zombie either


def test_a_pid_running_another_program_is_not_that_process() -> None:
    child = sleeper()
    try:
        assert not Recorded("kubelet", child.pid, "/usr/bin/kubelet").alive()
    finally:
        child.kill()
        child.wait()
