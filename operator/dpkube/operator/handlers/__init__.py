"""kopf handlers, one module per kind: each decodes the event and calls one reconciler method."""

from dpkube.operator.handlers import dataset, experiment, lifecycle, pod, queue

__all__ = ["dataset", "experiment", "lifecycle", "pod", "queue"]
