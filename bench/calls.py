"""API calls per Lomas query, by component and kind, from the API server's audit log.

The local platform as `make dev` starts it (warm default queue, node agent, trusted `user-name`
header), with the API server's audit log kept. After a warm-up, N private SQL counts go through the
Lomas route one after another; every request the API server audited meanwhile is counted per query,
by who sent it (its user agent) and what it was (verb, resource, subresource). Every call is work for
the API server and etcd, which share the machine's cores with the query: this says where they go.
Then, on a platform without the audit log (which costs the API server CPU of its own), the CPU time per
query of each process the platform started and of its descendants (the node agent's runners), from /proc.

Usage: python -m bench.calls [--queries 50] [--warmup 5]
"""

from __future__ import annotations

import argparse
import collections
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from dpkube.controlplane.platform import LocalPlatform
from dpkube.models import examples

USER = "bench-calls"
DATASET = "PENGUIN"
GRANT = (1_000_000.0, 0.5)
PATH = "/smartnoise_sql_query"
SETTLE_SECONDS = 2.0
"""After the last answer: the clean-ups that follow a release (finalizer, pod) are counted with it."""


def kind(event: dict[str, Any]) -> str:
    ref = event.get("objectRef") or {}
    subresource = f"/{ref['subresource']}" if ref.get("subresource") else ""
    return f"{event['verb']} {ref.get('resource', '?')}{subresource}"


def caller(event: dict[str, Any]) -> str:
    """The component: the first word of its user agent (kopf's requests are the operator's)."""
    agent = event.get("userAgent", "?").split("/")[0].split(" ")[0]
    return "dpkube-operator (kopf)" if agent.startswith("kopf") else agent


def counted(events: list[dict[str, Any]]) -> collections.Counter[tuple[str, str]]:
    """Requests by (caller, kind); a watch's request is one call however long it lasts."""
    return collections.Counter((caller(e), kind(e)) for e in events if e.get("stage") == "ResponseComplete")


def cpu_by_child() -> dict[str, float]:
    """CPU seconds so far of each child of this process, and of its descendants (reaped ones included), by the
    child's command line."""
    parents: dict[int, int] = {}
    seconds: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry.name)] = int(fields[1])
        seconds[int(entry.name)] = sum(int(value) for value in fields[11:15]) / tick
    me, totals = os.getpid(), collections.Counter[str]()
    for pid in parents:
        child = pid
        while parents.get(child, 0) not in (me, 0):
            child = parents[child]
        if parents.get(child) == me:
            totals[label(child) + ("" if child == pid else " (its descendants)")] += seconds[pid]
    return dict(totals)


def label(pid: int) -> str:
    try:
        argv = (Path("/proc") / str(pid) / "cmdline").read_bytes().split(b"\0")
    except OSError:
        return str(pid)
    words = [Path(word.decode()).name for word in argv if word]
    return " ".join(words[2:3] if words[:2] == [words[0], "-m"] and len(words) > 2 else words[:1])


def run(queries: int, warmup: int, audit: bool) -> tuple[collections.Counter[tuple[str, str]], float, dict[str, float]]:
    """The calls (when `audit`), seconds and CPU of `queries` private SQL counts after `warmup` others."""
    with tempfile.TemporaryDirectory(prefix="dpkube-bench-calls-") as tmp, \
            LocalPlatform(Path(tmp), users=(USER,), grants={(USER, DATASET): GRANT}, trusted_header=True,
                          audit=audit) as platform, \
            httpx.Client(base_url=platform.url, headers={"user-name": USER}, timeout=60) as http:
        assert platform.plane is not None

        def ask() -> None:
            response = http.post(PATH, json=examples.SMARTNOISE_SQL_QUERY)
            if response.status_code != 200:
                raise RuntimeError(f"{PATH} answered {response.status_code}: {response.text[:300]}")

        for _ in range(warmup):
            ask()
        time.sleep(SETTLE_SECONDS)
        before, cpu = len(platform.plane.audit_events()), cpu_by_child()
        started = time.perf_counter()
        for _ in range(queries):
            ask()
        elapsed = time.perf_counter() - started
        time.sleep(SETTLE_SECONDS)
        spent = {name: seconds - cpu.get(name, 0.0) for name, seconds in cpu_by_child().items()}
        return counted(platform.plane.audit_events()[before:]), elapsed, spent


def main() -> None:
    parser = argparse.ArgumentParser(description="API calls per Lomas query, by component and kind")
    parser.add_argument("--queries", type=int, default=50, help="measured queries (default 50)")
    parser.add_argument("--warmup", type=int, default=5, help="queries first, not counted (default 5)")
    args = parser.parse_args()
    calls, _, _ = run(args.queries, args.warmup, audit=True)
    _, elapsed, cpu = run(args.queries, args.warmup, audit=False)  # the audit log costs the API server CPU
    total = sum(calls.values())
    print(f"{args.queries} private SQL counts through {PATH}, one after another, in {elapsed:.1f} s: "
          f"{total / args.queries:.1f} API calls per query (watches and periodic work included)")
    by_caller: collections.Counter[str] = collections.Counter()
    for (who, _), n in calls.items():
        by_caller[who] += n
    for who, n in by_caller.most_common():
        print(f"  {who}: {n / args.queries:.1f}")
        for (_, what), m in sorted(((k, m) for k, m in calls.items() if k[0] == who), key=lambda item: -item[1]):
            print(f"      {what:40} {m / args.queries:5.2f}")
    print(f"CPU ms per query by process (the {SETTLE_SECONDS:g} s after the last answer included), "
          f"{sum(cpu.values()) * 1000 / args.queries:.0f} in all:")
    for name, seconds in sorted(cpu.items(), key=lambda item: -item[1]):
        print(f"  {name:32} {seconds * 1000 / args.queries:7.1f}")


if __name__ == "__main__":
    main()
