"""API calls per Lomas query, by component and kind, from the API server's audit log.

The local platform as `make dev` starts it (warm default queue, node agent, trusted `user-name`
header), with the API server's audit log kept. After a warm-up, N private SQL counts go through the
Lomas route one after another; every request the API server audited meanwhile is counted per query,
by who sent it (its user agent) and what it was (verb, resource, subresource). Every call is work for
the API server and etcd, which share the machine's cores with the query: this says where they go.

Usage: python -m bench.calls [--queries 50] [--warmup 5]
"""

from __future__ import annotations

import argparse
import collections
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


def run(queries: int, warmup: int) -> tuple[collections.Counter[tuple[str, str]], float]:
    with tempfile.TemporaryDirectory(prefix="dpkube-bench-calls-") as tmp, \
            LocalPlatform(Path(tmp), users=(USER,), grants={(USER, DATASET): GRANT}, trusted_header=True,
                          audit=True) as platform, \
            httpx.Client(base_url=platform.url, headers={"user-name": USER}, timeout=60) as http:
        assert platform.plane is not None

        def ask() -> None:
            response = http.post(PATH, json=examples.SMARTNOISE_SQL_QUERY)
            if response.status_code != 200:
                raise RuntimeError(f"{PATH} answered {response.status_code}: {response.text[:300]}")

        for _ in range(warmup):
            ask()
        time.sleep(SETTLE_SECONDS)
        before = len(platform.plane.audit_events())
        started = time.perf_counter()
        for _ in range(queries):
            ask()
        elapsed = time.perf_counter() - started
        time.sleep(SETTLE_SECONDS)
        return counted(platform.plane.audit_events()[before:]), elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description="API calls per Lomas query, by component and kind")
    parser.add_argument("--queries", type=int, default=50, help="measured queries (default 50)")
    parser.add_argument("--warmup", type=int, default=5, help="queries first, not counted (default 5)")
    args = parser.parse_args()
    calls, elapsed = run(args.queries, args.warmup)
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


if __name__ == "__main__":
    main()
