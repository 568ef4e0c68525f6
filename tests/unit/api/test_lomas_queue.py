"""Which queue a Lomas query runs through: the facade's Lomas queue when it exists and warms the query's library."""

from __future__ import annotations

import pytest

from dpkube.api.services.lomas_queue import queue_for
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
