"""Whether a pending DPQuery may be admitted now, must wait, or can never run: pure rules over facts.

The order is the order of the checks users see: dataset, experiment, dependencies, queue. The
budget check comes after (it moves money, so it is the reconciler's last step before admission).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from dpkube.models.conditions import Reason
from dpkube.models.dpquery import Phase


class Verdict(Enum):
    ADMIT = "admit"
    WAIT = "wait"
    REJECT = "reject"
    FAIL = "fail"


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    reason: str = ""
    message: str = ""


ADMIT = Decision(Verdict.ADMIT)


@dataclass(frozen=True)
class QueueFacts:
    """What the operator knows of the query's queue right now."""

    exists: bool
    locked: bool = False
    max_concurrent: int | None = None
    running: int = 0
    ahead: int = 0
    """Waiting queries of this queue that came first and are ready to run."""


@dataclass(frozen=True)
class Facts:
    """Everything admission looks at, gathered by the reconciler."""

    dataset: str
    dataset_exists: bool
    experiment: str | None = None
    experiment_exists: bool = True
    experiment_locked: bool = False
    dependencies: dict[str, Phase | None] = field(default_factory=dict)
    queue_name: str | None = None
    queue: QueueFacts | None = None


FAILED_DEPENDENCY_PHASES = {Phase.FAILED, Phase.REJECTED, Phase.TIMED_OUT, Phase.CANCELLED}


def dependencies_ready(dependencies: dict[str, Phase | None]) -> Decision:
    """Every dependency Succeeded (admit), one failed or is unknown (fail), or some still run (wait)."""
    for name, phase in dependencies.items():
        if phase is None:
            return Decision(Verdict.FAIL, Reason.DEPENDENCY_FAILED, f"dependency {name} does not exist")
        if phase in FAILED_DEPENDENCY_PHASES:
            return Decision(Verdict.FAIL, Reason.DEPENDENCY_FAILED, f"dependency {name} ended {phase.value}")
    pending = [name for name, phase in dependencies.items() if phase != Phase.SUCCEEDED]
    if pending:
        return Decision(Verdict.WAIT, Reason.WAITING_FOR_DEPENDENCY, f"waiting for {', '.join(pending)}")
    return ADMIT


def queue_ready(name: str, queue: QueueFacts) -> Decision:
    """A queue admits when it exists, is unlocked, has a free slot and nobody ready is ahead (FIFO)."""
    if not queue.exists:
        return Decision(Verdict.WAIT, Reason.QUEUE_NOT_FOUND, f"queue {name} does not exist")
    if queue.locked:
        return Decision(Verdict.WAIT, Reason.QUEUE_LOCKED, f"queue {name} is locked")
    if queue.ahead:
        # No count in the message: a position changes with every admission ahead, and writing each change
        # would cost one status write per waiting query per admission (kueue#8095).
        return Decision(Verdict.WAIT, Reason.WAITING_FOR_QUEUE, f"waiting for its turn in queue {name}")
    if queue.max_concurrent is not None and queue.running >= queue.max_concurrent:
        return Decision(
            Verdict.WAIT, Reason.QUEUE_FULL, f"queue {name} runs its maximum of {queue.max_concurrent} queries"
        )
    return ADMIT


def decide(facts: Facts) -> Decision:
    """The admission decision, budget aside."""
    if not facts.dataset_exists:
        return Decision(
            Verdict.REJECT, Reason.DATASET_NOT_FOUND,
            f"Dataset {facts.dataset} does not exist. Please, verify the client object initialisation.",
        )
    if facts.experiment is not None:
        if not facts.experiment_exists:
            return Decision(
                Verdict.REJECT, Reason.EXPERIMENT_NOT_FOUND, f"experiment {facts.experiment} does not exist"
            )
        if facts.experiment_locked:
            return Decision(Verdict.REJECT, Reason.EXPERIMENT_LOCKED, f"experiment {facts.experiment} is locked")
    ready = dependencies_ready(facts.dependencies)
    if ready.verdict is not Verdict.ADMIT:
        return ready
    if facts.queue_name is not None and facts.queue is not None:
        return queue_ready(facts.queue_name, facts.queue)
    return ADMIT
