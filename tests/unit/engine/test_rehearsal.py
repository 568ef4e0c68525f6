"""A rehearsal fills a library's first-run caches on dummy rows: it reads no data, and runs once per process."""

from __future__ import annotations

from typing import Any

import pytest

from dpkube.engine import rehearsal
from dpkube.models.payloads import CORE_LIBRARIES, Library


@pytest.fixture(autouse=True)
def fresh_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rehearsal, "_rehearsed", set())


@pytest.fixture
def runs(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Library, dict[str, Any]]]:
    calls: list[tuple[Library, dict[str, Any]]] = []
    real = rehearsal.run_query

    def counted(library: Library, payload: Any, metadata: Any, frame: Any) -> Any:
        calls.append((library, payload))
        return real(library, payload, metadata, frame)

    monkeypatch.setattr(rehearsal, "run_query", counted)
    return calls


def test_a_rehearsal_reads_no_dataset(monkeypatch: pytest.MonkeyPatch, runs: list) -> None:
    def no_data(*_: Any) -> Any:
        raise AssertionError("a rehearsal read a dataset")

    monkeypatch.setattr("dpkube.engine.datasets._read_bytes", no_data)
    for library in CORE_LIBRARIES:
        rehearsal.rehearse(library)
    assert {library for library, _ in runs} == set(CORE_LIBRARIES)


def test_a_library_is_rehearsed_once_per_process(runs: list) -> None:
    rehearsal.rehearse(Library.OPENDP)
    rehearsal.rehearse(Library.OPENDP)
    assert len(runs) == len(rehearsal.rehearsals(Library.OPENDP)) == 1


def test_sql_rehearses_grouping_and_aggregates_beyond_the_seed_count(runs: list) -> None:
    rehearsal.rehearse(Library.SMARTNOISE_SQL)
    assert any("GROUP BY" in payload["query_str"] for _, payload in runs)


def test_synthesizers_are_not_rehearsed(runs: list) -> None:
    rehearsal.rehearse(Library.SMARTNOISE_SYNTH)
    assert runs == []


def test_a_failed_rehearsal_is_logged_and_does_not_stop_the_process(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*_: Any) -> Any:
        raise RuntimeError("library broke")

    monkeypatch.setattr(rehearsal, "run_query", broken)
    rehearsal.rehearse(Library.DIFFPRIVLIB)
    assert "rehearsal of diffprivlib failed: library broke" in caplog.text
