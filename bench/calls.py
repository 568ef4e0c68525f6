"""API calls per Lomas query, by component and kind, from the API server's audit log.

The local platform as `make dev` starts it (warm default queue, node agent, trusted `user-name`
header), with the API server's audit log kept. After a warm-up, N private SQL counts go through the
Lomas route one after another; every request the API server audited meanwhile is counted per query,
by who sent it (its user agent) and what it was (verb, resource, subresource). Every call is work for
the API server and etcd, which share the machine's cores with the query: this says where they go.
Then, on a platform without the audit log (which costs the API server CPU of its own), the CPU time per
query of each process the platform started and of its descendants (the node agent's runners), from /proc.
It also prints the hot path (of the queries that got a pod of their own, and of those that got a warm one):
each call of a query in the order the API server received them, at its median time since the facade's
DPQuery create arrived, beside the facade's answer: the gaps between
calls are what the query waited for outside the API server (watch delivery, the runner, pricing).

Usage: python -m bench.calls [--queries 50] [--warmup 5] [--library smartnoise_sql|opendp|diffprivlib] [--dummy]
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import os
import statistics
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
QUERIES = {"smartnoise_sql": examples.SMARTNOISE_SQL_QUERY, "opendp": examples.OPENDP_QUERY,
           "diffprivlib": examples.DIFFPRIVLIB_QUERY}
"""The Lomas query routes by library, each with its seed's body."""
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
    me, totals = os.getpid(), collections.defaultdict[str, float](float)
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


def instant(stamp: str) -> float:
    """An audit timestamp in seconds since the epoch."""
    return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


HotPath = tuple[int, list[tuple[str, float, float]], float]
"""How many queries took it, each call as (name, median ms to its arrival, to its response), the answer's."""


def hot_paths(events: list[dict[str, Any]], answers: list[float]) -> dict[str, HotPath]:
    """Each query's calls in the order the API server received them, with median times since the query's
    DPQuery create arrived, for the queries that claimed a warm pod (its label) and for those that created one
    (a claim starts the pod that replaces it, so a creation alone does not tell them apart).

    The queries ran one after another, so a query's calls are those between its create and the next one's;
    a call is named by its caller, kind and how many of the same came before it in that query."""
    done = sorted((e for e in events if e.get("stage") == "ResponseComplete"),
                  key=lambda e: instant(e["requestReceivedTimestamp"]))
    starts = [i for i, e in enumerate(done) if e["verb"] == "create"
              and (e.get("objectRef") or {}).get("resource") == "dpqueries"]
    queries: dict[str, list[tuple[dict[str, tuple[float, float]], float | None]]] = collections.defaultdict(list)
    order: dict[str, int] = {}
    for n, first in enumerate(starts):
        t0 = instant(done[first]["requestReceivedTimestamp"])
        seen: collections.Counter[str] = collections.Counter()
        calls = {}
        for position, event in enumerate(done[first:starts[n + 1] if n + 1 < len(starts) else None]):
            name = f"{caller(event)}: {kind(event)}"
            seen[name] += 1
            name += f" #{seen[name]}" if seen[name] > 1 else ""
            calls[name] = (instant(event["requestReceivedTimestamp"]) - t0, instant(event["stageTimestamp"]) - t0)
            order.setdefault(name, position)
        path = "a warm pod" if "dpkube-operator: patch pods" in calls else "a pod of its own"  # the claim's label
        queries[path].append((calls, answers[n] - t0 if n < len(answers) else None))
    paths = {}
    for path, taken in queries.items():
        names = {name for calls, _ in taken for name in calls}
        rows = [(name, statistics.median(c[name][0] for c, _ in taken if name in c) * 1000,
                 statistics.median(c[name][1] for c, _ in taken if name in c) * 1000)
                for name in names if sum(name in c for c, _ in taken) * 2 > len(taken)]
        rows.sort(key=lambda row: (row[1], order[row[0]]))
        answered = [a for _, a in taken if a is not None]
        paths[path] = (len(taken), rows, statistics.median(answered) * 1000 if answered else float("nan"))
    return paths


def run(queries: int, warmup: int, audit: bool, library: str = "smartnoise_sql", dummy: bool = False) \
        -> tuple[list[dict[str, Any]], list[float], float, dict[str, float]]:
    """The audited requests (when `audit`), answer times, seconds and CPU of `queries` Lomas queries of a
    library after `warmup` others."""
    path = f"/{'dummy_' if dummy else ''}{library}_query"
    body = {**QUERIES[library], **(examples.DUMMY if dummy else {})}
    with tempfile.TemporaryDirectory(prefix="dpkube-bench-calls-") as tmp, \
            LocalPlatform(Path(tmp), users=(USER,), grants={(USER, DATASET): GRANT}, trusted_header=True,
                          audit=audit) as platform, \
            httpx.Client(base_url=platform.url, headers={"user-name": USER}, timeout=60) as http:
        assert platform.plane is not None

        def ask() -> float:
            response = http.post(path, json=body)
            if response.status_code != 200:
                raise RuntimeError(f"{path} answered {response.status_code}: {response.text[:300]}")
            return time.time()

        for _ in range(warmup):
            ask()
        time.sleep(SETTLE_SECONDS)
        before, cpu = len(platform.plane.audit_events()), cpu_by_child()
        started = time.perf_counter()
        answers = [ask() for _ in range(queries)]
        elapsed = time.perf_counter() - started
        time.sleep(SETTLE_SECONDS)
        spent = {name: total - cpu.get(name, 0.0) for name, total in cpu_by_child().items()}
        return platform.plane.audit_events()[before:], answers, elapsed, spent


def main() -> None:
    parser = argparse.ArgumentParser(description="API calls per Lomas query, by component and kind")
    parser.add_argument("--queries", type=int, default=50, help="measured queries (default 50)")
    parser.add_argument("--warmup", type=int, default=5, help="queries first, not counted (default 5)")
    parser.add_argument("--library", choices=sorted(QUERIES), default="smartnoise_sql",
                        help="whose Lomas query route (default smartnoise_sql: a SQL count)")
    parser.add_argument("--dummy", action="store_true", help="the dummy query route instead of the private one")
    args = parser.parse_args()
    events, answers, _, _ = run(args.queries, args.warmup, True, args.library, args.dummy)
    _, _, elapsed, cpu = run(args.queries, args.warmup, False, args.library, args.dummy)  # auditing costs CPU
    calls = counted(events)
    total = sum(calls.values())
    route = f"/{'dummy_' if args.dummy else ''}{args.library}_query"
    print(f"{args.queries} queries through {route}, one after another, in {elapsed:.1f} s: "
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
    for path, (taken, rows, answer) in hot_paths(events, answers).items():
        print(f"Hot path of the {taken} queries (audited run) that got {path}: the calls in more than half of them, "
              "median ms since the DPQuery create arrived, received -> answered:")
        for name, received, answered in rows:
            print(f"  {received:7.1f} -> {answered:7.1f}  {name}")
        print(f"  facade's answer at {answer:.1f} ms")

if __name__ == "__main__":
    main()
