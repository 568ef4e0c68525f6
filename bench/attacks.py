"""The facade under attack: `/healthz` and another user's requests while one user sends hostile input.

Starts its own platform (etcd, kube-apiserver, operator, node agent, the facade under uvicorn on
127.0.0.1) in a temporary folder. For each attack, the attacker (alice) repeats it for SECONDS while
three probes run side by side: `/healthz`, bob's remaining budget, and bob's cost estimate of the
seed's SQL count. An attack still unanswered after WINDOW seconds is cut off (the facade is then
restarted for the next one). Attacks (tests/dpkube_testing/hostile.py, shared with the test battery):
  - none (the baseline),
  - bad tokens: 8 threads of distinct wrong tokens (half `dpk_`-shaped, half for TokenReview), and
    the API server's own count of Secret reads and TokenReviews per bad request,
  - nested SQL: a WHERE with 1000 nested parentheses on /estimate_smartnoise_sql_cost,
  - alias bomb: a ~500-byte MLproject with 7 and with 9 levels of nested YAML aliases, as a Dioptra job,
  - bz2 bomb: a bz2 workflow tar whose one member claims 1 TiB (about 400 GB of zeros behind it).
Prints one table: statuses the attacker got, and p50 / p99 / max latency of each probe (target: the
p99 of /healthz under 100 ms). Usage: python -m bench.attacks [--seconds 5] [--window 30]
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from dpkube.controlplane.platform import LocalPlatform
from dpkube.models import examples
from dpkube_testing import hostile

ATTACKER, OTHER = "alice", "bob"
GRANT = (10.0, 0.005)
HEALTHZ_PAUSE = 0.02
"""Seconds between two /healthz probes."""
OTHER_USER_PAUSE = 0.15
"""Seconds between two requests of each of bob's probes: he stays under the per-user request rate."""
FLOOD_THREADS = 8


@dataclass
class Probe:
    """One kind of request repeated until stopped; latencies in seconds (a timeout counts as the window)."""

    name: str
    send: Callable[[httpx.Client], httpx.Response]
    window: float
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)

    def loop(self, url: str, stop: threading.Event, pause: float) -> None:
        with httpx.Client(base_url=url, timeout=self.window) as client:
            while not stop.is_set():
                started = time.perf_counter()
                try:
                    status = str(self.send(client).status_code)
                except httpx.TimeoutException:
                    status = "timeout"
                self.latencies.append(time.perf_counter() - started)
                self.statuses[status] += 1
                if pause:
                    stop.wait(pause)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else float("nan")


def api_server_counts(platform: LocalPlatform) -> dict[str, float]:
    """The API server's request counters: Secret reads and TokenReviews (from its /metrics)."""
    config = platform.kube_config()
    with httpx.Client(base_url=config.server, verify=config.ssl_context(),
                      headers={"Authorization": f"Bearer {platform.admin_token}"}) as client:
        text = client.get("/metrics").text
    counts = {"secret reads": 0.0, "token reviews": 0.0}
    for line in text.splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', line))
        value = float(line.rsplit(" ", 1)[1])
        if labels.get("resource") == "secrets" and labels.get("verb") == "GET":
            counts["secret reads"] += value
        if labels.get("resource") == "tokenreviews" and labels.get("verb") == "POST":
            counts["token reviews"] += value
    return counts


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def basic(user: str, token: str) -> httpx.BasicAuth:
    return httpx.BasicAuth(user, token)


def job_form(archive: bytes, experiment: str, queue: str) -> dict[str, Any]:
    return {"data": {"experimentName": experiment, "queue": queue, "entryPoint": "main", "timeout": "1h"},
            "files": {"workflow": ("workflow.tar", archive, "application/octet-stream")}}


def attacks(platform: LocalPlatform, experiment: str, queue: str) -> dict[str, Callable[..., Any] | None]:
    """name -> the attacker's request (or None for the baseline); `flood` is special-cased."""
    token = platform.tokens[ATTACKER]
    sql = hostile.nested_sql()
    alias7 = hostile.tar_gz_project(hostile.alias_bomb(7))
    alias9 = hostile.tar_gz_project(hostile.alias_bomb(9))
    bomb = hostile.bz2_bomb()
    return {
        "none": None,
        "bad tokens": None,
        "nested SQL (1000 parentheses)": lambda c: c.post(
            "/estimate_smartnoise_sql_cost", json=sql, headers=bearer(token)),
        "YAML alias bomb, 7 levels": lambda c: c.post(
            "/api/v0/job/", auth=basic(ATTACKER, token), **job_form(alias7, experiment, queue)),
        "YAML alias bomb, 9 levels": lambda c: c.post(
            "/api/v0/job/", auth=basic(ATTACKER, token), **job_form(alias9, experiment, queue)),
        "bz2 bomb (claims 1 TiB)": lambda c: c.post(
            "/api/v0/job/", auth=basic(ATTACKER, token), **job_form(bomb, experiment, queue)),
    }


def measure(platform: LocalPlatform, name: str, attack: Callable[..., Any] | None, seconds: float,
            window: float) -> dict[str, Any]:
    other = platform.tokens[OTHER]
    pauses = [HEALTHZ_PAUSE, OTHER_USER_PAUSE, OTHER_USER_PAUSE]
    probes = [
        Probe("healthz", lambda c: c.get("/healthz"), window),
        Probe("bob budget", lambda c: c.post("/get_remaining_budget", json=examples.GET_DB_DATA,
                                             headers=bearer(other)), window),
        Probe("bob cost", lambda c: c.post("/estimate_smartnoise_sql_cost", json=examples.SMARTNOISE_SQL_COST,
                                           headers=bearer(other)), window),
    ]
    counter = iter(range(10**9))
    lock = threading.Lock()

    def next_bad(c: httpx.Client) -> httpx.Response:
        with lock:
            index = next(counter)
        return c.post("/get_remaining_budget", json=examples.GET_DB_DATA, headers=bearer(hostile.bad_token(index)))

    if name == "bad tokens":
        attackers = [Probe("attack", next_bad, window) for _ in range(FLOOD_THREADS)]
    elif attack is not None:
        attackers = [Probe("attack", attack, window)]
    else:
        attackers = []
    before = api_server_counts(platform)
    stop_probes, stop_attack = threading.Event(), threading.Event()
    threads = [threading.Thread(target=p.loop, args=(platform.url, stop_probes, pause))
               for p, pause in zip(probes, pauses, strict=True)]
    threads += [threading.Thread(target=a.loop, args=(platform.url, stop_attack, 0.0)) for a in attackers]
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop_attack.set()
    for thread in threads[len(probes):]:
        thread.join()
    stop_probes.set()
    for thread in threads[:len(probes)]:
        thread.join()
    after = api_server_counts(platform)
    attack_statuses: Counter[str] = Counter()
    attack_latencies: list[float] = []
    for attacker in attackers:
        attack_statuses.update(attacker.statuses)
        attack_latencies += attacker.latencies
    requests = sum(attack_statuses.values())
    calls = {key: (after[key] - before[key]) / requests if requests else 0.0 for key in before}
    return {"probes": probes, "statuses": attack_statuses, "latencies": attack_latencies, "calls": calls,
            "stuck": attack_statuses["timeout"] > 0}


def warm_up(platform: LocalPlatform) -> None:
    """One cost estimate per user at once, so that the measures start with the libraries imported."""
    def estimate(user: str) -> None:
        with httpx.Client(base_url=platform.url, timeout=300) as client:
            client.post("/estimate_smartnoise_sql_cost", json=examples.SMARTNOISE_SQL_COST,
                        headers=bearer(platform.tokens[user]))

    threads = [threading.Thread(target=estimate, args=(user,)) for user in (ATTACKER, OTHER)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def prepare(platform: LocalPlatform) -> tuple[str, str]:
    """An experiment of the attacker's and a queue (registered by the admin) for the Dioptra attacks."""
    warm_up(platform)
    with httpx.Client(base_url=platform.url, timeout=30) as client:
        queue = client.post("/api/v0/queue/", json={"name": "attacks"},
                            auth=basic("admin", platform.tokens["admin"])).json()
        experiment = client.post("/api/v0/experiment/", json={"name": "attacks"},
                                 auth=basic(ATTACKER, platform.tokens[ATTACKER])).json()
    return experiment["name"], queue["name"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0, help="how long each attack is repeated")
    parser.add_argument("--window", type=float, default=30.0, help="client timeout of every request")
    parser.add_argument("--only", default="", help="run only the attacks whose name contains this")
    args = parser.parse_args()
    rows = []
    grants = {(ATTACKER, "PENGUIN"): GRANT, (OTHER, "PENGUIN"): GRANT}
    with tempfile.TemporaryDirectory(prefix="dpkube-bench-attacks-") as tmp, \
            LocalPlatform(Path(tmp), users=(ATTACKER, OTHER), grants=grants) as platform:
        experiment, queue = prepare(platform)
        for name, attack in attacks(platform, experiment, queue).items():
            if args.only and args.only not in name and name != "none":
                continue
            print(f"... {name}", file=sys.stderr, flush=True)
            result = measure(platform, name, attack, args.seconds, args.window)
            rows.append((name, result))
            if result["stuck"]:
                print(f"... {name}: the facade did not answer within {args.window:g} s; restarting it",
                      file=sys.stderr, flush=True)
                platform.restart_facade()
                warm_up(platform)

    def ms(seconds: float) -> str:
        return f"{seconds * 1000:9.1f}"

    print(f"{'attack':32} {'attacker got':34} {'probe':11} {'p50 ms':>9} {'p99 ms':>9} {'max ms':>9}  n")
    for name, result in rows:
        got = ", ".join(f"{status} x{count}" for status, count in sorted(result["statuses"].items())) or "-"
        if result["latencies"]:
            got += f" (max {max(result['latencies']):.2f} s)"
        for index, probe in enumerate(result["probes"]):
            label, shown = (name, got) if index == 0 else ("", "")
            print(f"{label:32} {shown:34} {probe.name:11} {ms(statistics.median(probe.latencies))} "
                  f"{ms(percentile(probe.latencies, 0.99))} {ms(max(probe.latencies))}  {len(probe.latencies)}")
        if name == "bad tokens":
            calls = result["calls"]
            print(f"{'':32} API server per bad request: {calls['secret reads']:.2f} Secret reads, "
                  f"{calls['token reviews']:.2f} TokenReviews")
    print("target: /healthz p99 < 100 ms during every attack")


if __name__ == "__main__":
    main()
