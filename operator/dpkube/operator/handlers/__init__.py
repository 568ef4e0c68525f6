"""kopf handlers, one module per kind: each decodes the event and calls one reconciler method. DPQueries and
their pods come through the operator's own feeds (`query_feed`, `pod_feed`) instead."""

from dpkube.operator.handlers import dataset, experiment, lifecycle, queue

__all__ = ["dataset", "experiment", "lifecycle", "queue"]
