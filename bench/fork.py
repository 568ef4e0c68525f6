"""What a query costs in a runner forked from the zygote, beside the same query in a process that ran it before.

The node agent forks each runner from a zygote that imported and rehearsed the core libraries. A forked
child shares the zygote's memory copy-on-write: every page the query touches first (a refcount is a
write) is copied then. This measures, per core library, on PENGUIN:
  - hot: the seed's private query (load the CSV, run) in the zygote-like process itself, after a first run;
  - forked: the same in a fresh child of it: the query's CPU and page faults there (the child's start and
    exit apart), and the parent's CPU for the fork;
  - warm: the same in a child that first copied the pages the zygote learnt a run writes, as a warm runner
    does while it waits (the copy's CPU apart: a warm runner spends it before its query comes);
  - a bare child that exits at once (the fork and exit alone), and one that reads its command line and
    settings as a runner's start does.
It runs single-threaded, as the zygote does. Ratios are forked / hot and warm / hot.
Usage: python -m bench.fork [--repeats 10]
"""

from __future__ import annotations

import argparse
import os
import resource
import struct
import sys
import time
from collections.abc import Callable
from typing import Any

from bench.timing import median_seconds

from dpkube.engine.datasets import demo_metadata, load_frame
from dpkube.engine.release import run_query
from dpkube.models.examples import query_payload
from dpkube.models.payloads import CORE_LIBRARIES, Library
from dpkube.models.runner import RunnerSettings
from dpkube.runner.__main__ import parse_args
from dpkube.runner.pages import populate, runs
from dpkube.runner.zygote import SINGLE_THREADED, learn_written_pages, preload

DATASET = "PENGUIN"


def cpu_ms(usage: resource.struct_rusage) -> float:
    return (usage.ru_utime + usage.ru_stime) * 1000


def in_children(action: Callable[[], object], repeats: int) -> tuple[float, float, float]:
    """Means over `repeats` children that each run `action` and exit: a child's CPU ms, its minor page faults,
    and the parent's CPU ms for its fork."""
    children, me = resource.getrusage(resource.RUSAGE_CHILDREN), resource.getrusage(resource.RUSAGE_SELF)
    for _ in range(repeats):
        pid = os.fork()
        if pid == 0:
            try:
                action()
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
    after_children, after_me = resource.getrusage(resource.RUSAGE_CHILDREN), resource.getrusage(resource.RUSAGE_SELF)
    return ((cpu_ms(after_children) - cpu_ms(children)) / repeats,
            (after_children.ru_minflt - children.ru_minflt) / repeats,
            (cpu_ms(after_me) - cpu_ms(me)) / repeats)


def in_warm_children(copy: Callable[[], object], action: Callable[[], object],
                     repeats: int) -> tuple[float, float, float]:
    """Means over `repeats` children that `copy`, then run `action`, as a warm runner does: the CPU ms of the
    copy, and the CPU ms and minor page faults of the action after it."""
    totals = [0.0, 0.0, 0.0]
    for _ in range(repeats):
        readable, writable = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                start = resource.getrusage(resource.RUSAGE_SELF)
                copy()
                copied = resource.getrusage(resource.RUSAGE_SELF)
                action()
                done = resource.getrusage(resource.RUSAGE_SELF)
                os.write(writable, struct.pack("ddd", cpu_ms(copied) - cpu_ms(start), cpu_ms(done) - cpu_ms(copied),
                                               done.ru_minflt - copied.ru_minflt))
            finally:
                os._exit(0)
        os.close(writable)
        with os.fdopen(readable, "rb") as answer:
            measured = struct.unpack("ddd", answer.read())
        os.waitpid(pid, 0)
        totals = [total + value for total, value in zip(totals, measured, strict=True)]
    copy_ms, action_ms, faults = (total / repeats for total in totals)
    return copy_ms, action_ms, faults


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    if any(os.environ.get(name) != value for name, value in SINGLE_THREADED.items()):
        # as the zygote runs: one BLAS thread, set before numpy loads (this process already loaded it)
        again = [sys.executable, "-m", "bench.fork", *sys.argv[1:]]
        os.execve(sys.executable, again, {**os.environ, **SINGLE_THREADED})
    preload()
    metadata = demo_metadata(DATASET)
    bare_child, bare_faults, bare_parent = in_children(lambda: None, args.repeats)
    print(f"zygote resident {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB; a child that exits "
          f"at once: child {bare_child:.1f} ms CPU ({bare_faults:.0f} faults), fork {bare_parent:.1f} ms in the parent")
    start_child, start_faults, _ = in_children(lambda: (parse_args(["--warm", "--claim"]), RunnerSettings()),
                                               args.repeats)
    print(f"a child that reads its command line and settings, as a runner starts: {start_child:.1f} ms CPU "
          f"({start_faults:.0f} faults)")
    written = learn_written_pages()
    print("pages a run writes, learnt by the zygote: "
          + ", ".join(f"{name} {len(found)}" for name, found in written.items()))
    everything = runs(list(written.values()))
    header = (f"{'library':<16} {'hot ms':>8} {'forked ms':>10} {'faults':>8} {'warm ms':>8} {'faults':>8} "
              f"{'copy ms':>8} {'fork ms':>8} {'forked/hot':>11} {'warm/hot':>9}")
    print(header)
    print("-" * len(header))
    for library in CORE_LIBRARIES:
        payload = query_payload(library)

        def query(library: Library = library, payload: dict[str, Any] = payload) -> None:
            run_query(library, payload, metadata, load_frame(f"demo://{DATASET}", metadata))

        _, _, parent = in_children(query, args.repeats)
        _, forked, faults = in_warm_children(lambda: None, query, args.repeats)
        copy, warm, warm_faults = in_warm_children(lambda: populate(everything), query, args.repeats)
        hot = median_seconds(query, args.repeats, clock=time.process_time) * 1000
        print(f"{library.value:<16} {hot:>8.1f} {forked:>10.1f} {faults:>8.0f} {warm:>8.1f} {warm_faults:>8.0f} "
              f"{copy:>8.1f} {parent:>8.1f} {forked / hot:>10.2f}x {warm / hot:>8.2f}x")


if __name__ == "__main__":
    main()
