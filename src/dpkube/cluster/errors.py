"""What can go wrong bringing a real cluster up or down; each message says what to do."""

from __future__ import annotations


class ClusterError(RuntimeError):
    """A cluster component failed; the message carries its log's tail."""


class HostNotReady(ClusterError):
    """This machine lacks a prerequisite (a package, root); the message names the command that fixes it."""


class ClusterBusy(ClusterError):
    """Another cluster runs on this machine (their iptables chains would clash): stop it first."""


class ImageBuildError(ClusterError):
    """An image could not be built; the message carries the builder's output."""
