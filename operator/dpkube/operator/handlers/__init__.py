"""kopf handlers, one module per kind: each decodes the event and calls one reconciler method. DPQueries come
through the operator's own `query_feed` instead."""

from dpkube.operator.handlers import dataset, experiment, lifecycle, pod, queue

__all__ = ["dataset", "experiment", "lifecycle", "pod", "queue"]
