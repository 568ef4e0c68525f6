"""Why a container could not start, as the kubelet reports it (the reason is the status field's value)."""

from __future__ import annotations


class ContainerConfigError(Exception):
    """The container's environment refers to something missing (a Secret, a key): retried, pod stays Pending."""

    reason = "CreateContainerConfigError"


class ContainerStartError(Exception):
    """The process could not be started (no command, executable or working directory): exit code 128."""

    reason = "StartError"
