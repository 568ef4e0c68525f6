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
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Children:
    """Means over the children of one measurement: CPU ms and minor page faults."""

    whole: float
    """A child's CPU from its fork to its exit."""
    whole_faults: float
    before: float
    """What the child ran before the action (a warm runner's copy)."""
    action: float
    """The action alone, in the child."""
    action_faults: float
    parent: float
    """The parent's CPU for the fork."""


def in_children(action: Callable[[], object], repeats: int,
                before: Callable[[], object] = lambda: None) -> Children:
    """`repeats` children that each run `before`, then `action`, and exit; each reports its own two parts."""
    children, me = resource.getrusage(resource.RUSAGE_CHILDREN), resource.getrusage(resource.RUSAGE_SELF)
    parts = [0.0, 0.0, 0.0]
    for _ in range(repeats):
        readable, writable = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                start = resource.getrusage(resource.RUSAGE_SELF)
                before()
                ready = resource.getrusage(resource.RUSAGE_SELF)
                action()
                done = resource.getrusage(resource.RUSAGE_SELF)
                os.write(writable, struct.pack("ddd", cpu_ms(ready) - cpu_ms(start), cpu_ms(done) - cpu_ms(ready),
                                               done.ru_minflt - ready.ru_minflt))
            finally:
                os._exit(0)
        os.close(writable)
        with os.fdopen(readable, "rb") as answer:
            measured = struct.unpack("ddd", answer.read())
        os.waitpid(pid, 0)
        parts = [total + value for total, value in zip(parts, measured, strict=True)]
    after_children, after_me = resource.getrusage(resource.RUSAGE_CHILDREN), resource.getrusage(resource.RUSAGE_SELF)
    return Children(whole=(cpu_ms(after_children) - cpu_ms(children)) / repeats,
                    whole_faults=(after_children.ru_minflt - children.ru_minflt) / repeats,
                    before=parts[0] / repeats, action=parts[1] / repeats, action_faults=parts[2] / repeats,
                    parent=(cpu_ms(after_me) - cpu_ms(me)) / repeats)


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
    bare = in_children(lambda: None, args.repeats)
    print(f"zygote resident {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB; a child that exits "
          f"at once: child {bare.whole:.1f} ms CPU ({bare.whole_faults:.0f} faults), fork {bare.parent:.1f} ms in "
          f"the parent")
    start = in_children(lambda: (parse_args(["--warm", "--claim"]), RunnerSettings()), args.repeats)
    print(f"a child that reads its command line and settings, as a runner starts: {start.whole:.1f} ms CPU "
          f"({start.whole_faults:.0f} faults)")
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

        forked = in_children(query, args.repeats)
        warm = in_children(query, args.repeats, before=lambda: populate(everything))
        hot = median_seconds(query, args.repeats, clock=time.process_time) * 1000
        print(f"{library.value:<16} {hot:>8.1f} {forked.action:>10.1f} {forked.action_faults:>8.0f} "
              f"{warm.action:>8.1f} {warm.action_faults:>8.0f} {warm.before:>8.1f} {forked.parent:>8.1f} "
              f"{forked.action / hot:>10.2f}x {warm.action / hot:>8.2f}x")


if __name__ == "__main__":
    main()
