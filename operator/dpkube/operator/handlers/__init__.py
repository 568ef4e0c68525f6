"""kopf handlers, one module per kind: each decodes the event and calls one reconciler method."""

from dpkube.operator.handlers import dpquery, experiment, lifecycle, pod, queue

__all__ = ["dpquery", "experiment", "lifecycle", "pod", "queue"]
