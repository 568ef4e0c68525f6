"""Copy-on-write pages: the zygote learns which pages a run writes, and a warm runner copies those before its
query, leaving every byte as it was."""

from __future__ import annotations

import ctypes
import mmap
from collections.abc import Iterator

import numpy as np
import pytest

from dpkube.runner.pages import PAGE, learn, populate, runs
from dpkube.runner.zygote import copy_written_pages


@pytest.fixture
def memory() -> Iterator[tuple[mmap.mmap, list[int]]]:
    """Four private pages, each present and filled with its own number; and their addresses."""
    pages = mmap.mmap(-1, 4 * PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    for number in range(4):
        pages[number * PAGE:(number + 1) * PAGE] = bytes([number + 1]) * PAGE
    start = ctypes.addressof(ctypes.c_char.from_buffer(pages))
    yield pages, [start + number * PAGE for number in range(4)]
    pages.close()


def test_the_pages_a_run_writes_are_learnt_and_no_other(memory: tuple[mmap.mmap, list[int]]) -> None:
    pages, addresses = memory

    def run() -> None:
        pages[0] = 9
        pages[2 * PAGE] = 9

    written = set(learn(run).tolist())

    assert addresses[0] in written and addresses[2] in written
    assert addresses[1] not in written and addresses[3] not in written
    assert pages[0] == 1 and pages[2 * PAGE] == 3  # the run wrote in a child only


def test_copied_pages_are_the_children_own_and_keep_every_byte(memory: tuple[mmap.mmap, list[int]]) -> None:
    pages, addresses = memory

    def copy_and_check() -> None:
        assert populate(runs([np.array(addresses[1:3], dtype=np.uint64)])) == 1
        assert pages[:] == b"".join(bytes([number + 1]) * PAGE for number in range(4))

    copied = set(learn(copy_and_check).tolist())

    assert {addresses[1], addresses[2]} <= copied and addresses[0] not in copied and addresses[3] not in copied


def test_pages_are_copied_in_runs_of_contiguous_pages() -> None:
    pages = np.array([5 * PAGE, 2 * PAGE, 3 * PAGE, 9 * PAGE, 3 * PAGE], dtype=np.uint64)

    assert runs([pages]) == [(2 * PAGE, 2 * PAGE), (5 * PAGE, PAGE), (9 * PAGE, PAGE)]
    assert runs([]) == []


def test_a_warm_runner_copies_the_pages_of_its_own_libraries_only(
    memory: tuple[mmap.mmap, list[int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, addresses = memory
    written = {"opendp": np.array(addresses[:2], dtype=np.uint64),
               "diffprivlib": np.array(addresses[2:], dtype=np.uint64)}
    monkeypatch.setenv("DPKUBE_LIBRARIES", "opendp")

    copied = set(learn(lambda: copy_written_pages(written)).tolist())

    assert set(addresses[:2]) <= copied and not set(addresses[2:]) & copied
