"""The custom resource kinds of dpkube, with the printer columns `kubectl get` shows."""

from __future__ import annotations

from dpkube.models.crd import Kind, PrinterColumn
from dpkube.models.dataset import DatasetSpec, DatasetStatus
from dpkube.models.dpquery import DPQuerySpec, DPQueryStatus
from dpkube.models.experiment import ExperimentSpec, ExperimentStatus
from dpkube.models.queue import QueueSpec, QueueStatus

DPQUERY = Kind(
    kind="DPQuery",
    plural="dpqueries",
    short_names=("dpq",),
    spec=DPQuerySpec,
    status=DPQueryStatus,
    description="A differentially private query on one dataset, charged to its user's privacy budget.",
    printer_columns=(
        PrinterColumn("User", "string", ".spec.user"),
        PrinterColumn("Dataset", "string", ".spec.dataset"),
        PrinterColumn("Library", "string", ".spec.library"),
        PrinterColumn("Mode", "string", ".spec.mode", priority=1),
        PrinterColumn("Phase", "string", ".status.phase"),
        PrinterColumn("Position", "integer", ".status.queuePosition", "Place among the queue's waiting queries"),
        PrinterColumn("Eps-Spent", "number", ".status.spent.epsilon", "Epsilon charged"),
        PrinterColumn("Delta-Spent", "number", ".status.spent.delta", "Delta charged", priority=1),
        PrinterColumn("Queue", "string", ".spec.queue", priority=1),
    ),
    selectable_fields=(".spec.user", ".spec.dataset", ".spec.library", ".spec.mode", ".spec.queue",
                       ".spec.experiment", ".status.phase"),
)

EXPERIMENT = Kind(
    kind="Experiment",
    plural="experiments",
    short_names=("dpexp",),
    spec=ExperimentSpec,
    status=ExperimentStatus,
    description="A named group of DPQueries with live counts of its queries by phase.",
    printer_columns=(
        PrinterColumn("Locked", "boolean", ".spec.locked"),
        PrinterColumn("Total", "integer", ".status.total"),
        PrinterColumn("Running", "integer", ".status.queries.running"),
        PrinterColumn("Succeeded", "integer", ".status.queries.succeeded"),
        PrinterColumn("Failed", "integer", ".status.queries.failed"),
    ),
)

QUEUE = Kind(
    kind="Queue",
    plural="queues",
    short_names=("dpqueue",),
    spec=QueueSpec,
    status=QueueStatus,
    description="Schedules DPQueries: lockable, with a concurrency cap and the settings of their pods.",
    printer_columns=(
        PrinterColumn("Locked", "boolean", ".spec.locked"),
        PrinterColumn("Max", "integer", ".spec.maxConcurrent"),
        PrinterColumn("Running", "integer", ".status.running"),
        PrinterColumn("Waiting", "integer", ".status.waiting"),
        PrinterColumn("Warm", "integer", ".status.warm", priority=1),
    ),
)

DATASET = Kind(
    kind="Dataset",
    plural="datasets",
    short_names=("dpds",),
    spec=DatasetSpec,
    status=DatasetStatus,
    description="A sensitive dataset: where it lives and its Lomas-format metadata. Written by admins.",
    printer_columns=(
        PrinterColumn("Name", "string", ".spec.displayName"),
        PrinterColumn("Format", "string", ".spec.format"),
        PrinterColumn("Ready", "boolean", ".status.ready"),
    ),
)

KINDS: tuple[Kind, ...] = (DPQUERY, EXPERIMENT, QUEUE, DATASET)
