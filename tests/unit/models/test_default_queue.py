"""The default Queue (`make dev`, the chart) keeps warm runners that hold no torch."""

from __future__ import annotations

from dpkube.models.payloads import CORE_LIBRARIES, Library
from dpkube.models.queue import default_queue_spec


def test_the_default_queue_warms_the_core_libraries_only() -> None:
    assert default_queue_spec().warm_libraries == list(CORE_LIBRARIES)


def test_the_core_libraries_are_every_library_but_synthetic_data() -> None:
    assert set(CORE_LIBRARIES) == set(Library) - {Library.SMARTNOISE_SYNTH}
