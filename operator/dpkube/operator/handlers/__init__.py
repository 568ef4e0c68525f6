"""kopf handlers, one module per kind: each decodes the event and calls one reconciler method."""

from dpkube.operator.handlers import dpquery, lifecycle, pod, queue

__all__ = ["dpquery", "lifecycle", "pod", "queue"]
