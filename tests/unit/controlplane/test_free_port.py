"""The ports handed to the processes we start: never one the kernel may give an outgoing connection meanwhile."""

from __future__ import annotations

import socket

import pytest

from dpkube.controlplane import local
from dpkube.controlplane.local import NODE_PORTS, ControlPlaneError, ephemeral_ports, free_port, unclaimed_by_kernel


def test_a_free_port_is_outside_the_kernels_ephemeral_range_and_the_node_ports() -> None:
    ephemeral = ephemeral_ports()
    ports = [free_port() for _ in range(50)]
    assert [port for port in ports if port in ephemeral or port in NODE_PORTS] == []


def test_a_free_port_can_be_bound_at_once() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_a_port_already_listened_on_is_never_handed_out(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", free_port()))
        sock.listen()
        taken = sock.getsockname()[1]
        monkeypatch.setattr(local, "unclaimed_by_kernel", lambda ephemeral: range(taken, taken + 1))
        with pytest.raises(ControlPlaneError, match=str(taken)):
            free_port()


def test_ports_come_from_the_wider_stretch_around_the_ephemeral_range() -> None:
    assert unclaimed_by_kernel(range(32768, 61000)) == range(10000, 30000)
    assert unclaimed_by_kernel(range(1024, 20000)) == range(20000, 65536)
