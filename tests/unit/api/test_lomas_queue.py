"""Which queue a Lomas query runs through: the facade's Lomas queue when it exists and warms the query's library."""

from __future__ import annotations

import time
from typing import Any

import pytest

from dpkube.api.services.lomas_queue import LomasQueue, queue_for
from dpkube.k8s.informer import Informer
from dpkube.models.payloads import CORE_LIBRARIES, Library
from dpkube.models.queue import DEFAULT_QUEUE, QueueSpec, default_queue_spec


@pytest.mark.parametrize("library", CORE_LIBRARIES)
def test_a_query_of_a_core_library_runs_through_the_default_queue(library: Library) -> None:
    assert queue_for(library, DEFAULT_QUEUE, default_queue_spec()) == DEFAULT_QUEUE


def test_a_synthetic_data_query_runs_outside_the_default_queue_whose_pods_may_lack_torch() -> None:
    assert queue_for(Library.SMARTNOISE_SYNTH, DEFAULT_QUEUE, default_queue_spec()) is None


def test_a_queue_that_warms_every_library_takes_every_query() -> None:
    assert queue_for(Library.SMARTNOISE_SYNTH, "all", QueueSpec(warm_pods=1)) == "all"


def test_a_queue_that_does_not_exist_takes_no_query() -> None:
    assert queue_for(Library.SMARTNOISE_SQL, "gone", None) is None


def test_no_lomas_queue_means_no_queue() -> None:
    assert queue_for(Library.SMARTNOISE_SQL, "", default_queue_spec()) is None


class NoReads:
    """A client whose every use fails the test: the queue must come from the watch."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the facade used the client's {name}")


def watched(*queues: dict[str, Any]) -> Informer:
    informer = Informer(NoReads(), "/unused")  # type: ignore[arg-type]
    informer.synced_at = time.monotonic()
    informer.objects = {queue["metadata"]["name"]: queue for queue in queues}
    return informer


async def test_the_lomas_queue_is_read_from_the_facades_watch_of_queues() -> None:
    queue = {"metadata": {"name": DEFAULT_QUEUE}, "spec": {"warmLibraries": ["opendp"]}}
    lomas = LomasQueue(NoReads(), "dpkube-system", DEFAULT_QUEUE, watched(queue))  # type: ignore[arg-type]
    assert await lomas.for_library(Library.OPENDP) == DEFAULT_QUEUE
    assert await lomas.for_library(Library.SMARTNOISE_SQL) is None


async def test_a_lomas_queue_absent_from_a_synced_watch_takes_no_query() -> None:
    lomas = LomasQueue(NoReads(), "dpkube-system", DEFAULT_QUEUE, watched())  # type: ignore[arg-type]
    assert await lomas.for_library(Library.SMARTNOISE_SQL) is None
