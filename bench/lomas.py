"""dpkube beside Lomas 0.3.5 on this machine: latency of each query route, and closed-loop throughput.

Lomas is lomas-server 0.3.5 from PyPI in a venv of its own (~/.cache/dpkube/lomas-0.3.5/, built on
first use), served by uvicorn on 127.0.0.1 with a YAML admin database; it reads PENGUIN from the CSV
our engine loads and its metadata in Lomas' format. dpkube is the local platform as `make dev`
starts it (defaults, trusted `user-name` header). Both know the same users with the same budget,
and get the same bodies (the seed examples of dpkube.models.examples) with the same `user-name`
header over keep-alive HTTP from this process.

Measured, in one run:
  - per route: after a warm-up, N rounds of one request to Lomas then the same request to dpkube, each
    followed by a pause (SETTLE_SECONDS) so that neither system's work after its answer is timed as the other's;
    p50 and p95 of each, the dpkube/Lomas ratios and their geometric mean over the rows, and each
    dpkube p50 against the engine's own in-process time for the same work (its floor);
  - throughput: private SQL counts in a closed loop for S seconds, Lomas with one user (it runs one
    query per user at a time), dpkube with one user and with eight.

Lomas' venv, so that it runs: setuptools < 81 (lomas_server imports pkg_resources); the libraries
both sides share at the versions dpkube's image pins (numpy, pandas, scipy, scikit-learn, opendp,
smartnoise-sql, SQLAlchemy); diffprivlib at dpkube's 0.6.4 over Lomas' pin of 0.6.5, because
diffprivlib_logger refuses a pipeline serialised by another version and the seed's pipeline (also
Lomas' own documented example) says 0.6.4. Lomas' timing-attack padding is off (stall, 0 s): dpkube
pads nothing, and the padding would measure the setting, not the server.

Bench only (it installs from PyPI): never run by tests or CI.
Usage: python -m bench.lomas [--repeats 30] [--warmup 3] [--seconds 20]
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml
from bench.timing import median_seconds

from dpkube.controlplane.local import free_port
from dpkube.controlplane.platform import LocalPlatform
from dpkube.controlplane.processes import ChildProcess
from dpkube.engine.cost import as_payload
from dpkube.engine.datasets import demo_metadata, load_frame, penguins_csv
from dpkube.engine.dummy import dummy_frame
from dpkube.engine.libraries import library_module
from dpkube.engine.release import run_query
from dpkube.models import examples
from dpkube.models.payloads import Library

LOMAS_VERSION = "0.3.5"
LOMAS_HOME = Path.home() / ".cache" / "dpkube" / f"lomas-{LOMAS_VERSION}"
IMAGE_LOCK = Path(__file__).resolve().parents[1] / "requirements" / "image.lock"
SHARED_LIBRARIES = ("numpy", "pandas", "scipy", "scikit-learn", "opendp", "smartnoise-sql", "sqlalchemy")
"""Installed in Lomas' venv at dpkube's pins, so both sides run the same library code."""

DATASET = "PENGUIN"
USERS = tuple(f"bench-{i}" for i in range(8))
GRANT = (1_000_000.0, 0.5)
"""(epsilon, delta) of every bench user on PENGUIN, in both systems: no run comes near it."""
TIMEOUT = 300.0
SETTLE_SECONDS = 0.25
"""Pause after each request: what a system does after its answer (dpkube's clean-up and a warm pod's
replacement) ends before the other system's request is timed, as it would between a user's queries."""

GROUP_BY = "SELECT species, COUNT(*) AS n FROM df GROUP BY species"
SQL_COUNT = examples.SMARTNOISE_SQL_QUERY
SQL_GROUP_BY = {**examples.SMARTNOISE_SQL_QUERY, "query_str": GROUP_BY}


# --- Lomas ------------------------------------------------------------------------------------

def image_pins() -> dict[str, str]:
    """name -> version of each `name==version` line of dpkube's image lock."""
    pins = {}
    for line in IMAGE_LOCK.read_text().splitlines():
        requirement = line.split("#")[0].split(";")[0].strip()
        if "==" in requirement:
            name, version = requirement.split("==", 1)
            pins[name.strip().lower()] = version.strip()
    return pins


def lomas_constraints() -> tuple[str, str]:
    """(pip constraints for lomas-server, the diffprivlib requirement installed over its pin)."""
    pins = image_pins()
    lines = ["setuptools<81"] + [f"{name}=={pins[name]}" for name in SHARED_LIBRARIES]
    return "\n".join(lines) + "\n", f"diffprivlib=={pins['diffprivlib']}"


def lomas_python() -> Path:
    """Lomas' venv interpreter; the venv is (re)built when missing or built with other constraints."""
    constraints, diffprivlib = lomas_constraints()
    venv = LOMAS_HOME / "venv"
    python = venv / "bin" / "python"
    stamp = venv / ".bench-installed"
    wanted = hashlib.sha256(f"{LOMAS_VERSION}\n{constraints}{diffprivlib}".encode()).hexdigest()
    if stamp.exists() and stamp.read_text() == wanted and python.exists():
        return python
    print(f"installing lomas-server {LOMAS_VERSION} into {venv} (once; several minutes) ...", flush=True)
    shutil.rmtree(venv, ignore_errors=True)
    LOMAS_HOME.mkdir(parents=True, exist_ok=True)
    constraints_file = LOMAS_HOME / "constraints.txt"
    constraints_file.write_text(constraints)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, f"lomas-server=={LOMAS_VERSION}", "-c", str(constraints_file)], check=True)
    subprocess.run([*pip, "--no-deps", diffprivlib], check=True)
    stamp.write_text(wanted)
    return python


def write_lomas_files(workdir: Path, port: int) -> dict[str, str]:
    """Lomas' runtime config, secrets and YAML admin database, and PENGUIN; returns its environment."""
    workdir.mkdir(parents=True)
    data, metadata = workdir / "penguin.csv", workdir / "penguin_metadata.yaml"
    data.write_bytes(penguins_csv())
    metadata.write_text(yaml.safe_dump(demo_metadata(DATASET).lomas_dict()))
    access = {"database_type": "PATH_DB"}
    admin_db = {
        "users": [{"user_name": user, "may_query": True, "datasets_list": [{
            "dataset_name": DATASET, "initial_epsilon": GRANT[0], "initial_delta": GRANT[1],
            "total_spent_epsilon": 0.0, "total_spent_delta": 0.0}]} for user in USERS],
        "datasets": [{"dataset_name": DATASET, "dataset_access": {**access, "path": str(data)},
                      "metadata_access": {**access, "path": str(metadata)}}],
        "queries": [],
    }
    settings = {
        "develop_mode": False,
        "submit_limit": 300,
        "server": {"time_attack": {"method": "stall", "magnitude": 0}, "host_ip": "127.0.0.1",
                   "host_port": port, "log_level": "warning", "reload": False, "workers": 1},
        "admin_database": {"db_type": "yaml", "db_file": str(workdir / "admin_db.yaml")},
        "dp_libraries": {"opendp": {"contrib": True, "floating_point": True, "honest_but_curious": True}},
    }
    (workdir / "admin_db.yaml").write_text(yaml.safe_dump(admin_db))
    (workdir / "runtime.yaml").write_text(yaml.safe_dump({"runtime_args": {"settings": settings}}))
    (workdir / "secrets.yaml").write_text(yaml.safe_dump({"private_db_credentials": []}))
    return {"LOMAS_CONFIG_PATH": str(workdir / "runtime.yaml"), "LOMAS_SECRETS_PATH": str(workdir / "secrets.yaml")}


@contextmanager
def lomas_server(workdir: Path) -> Iterator[str]:
    """Lomas on 127.0.0.1 until the block ends (stopped by its PID); yields its URL."""
    python = lomas_python()
    port = free_port()
    env = {**os.environ, **write_lomas_files(workdir, port)}
    child = ChildProcess("lomas", [str(python), "-m", "uvicorn", "lomas_server.app:app", "--host", "127.0.0.1",
                                   "--port", str(port), "--no-access-log", "--log-level", "warning"],
                         workdir / "lomas.log", env).start()
    url = f"http://127.0.0.1:{port}"
    try:
        child.wait_until_ok(f"{url}/state", timeout=300)
        state = httpx.get(f"{url}/state").json()["state"]
        if not state["LIVE"]:
            raise RuntimeError(f"Lomas did not start: {state['message']}\n{child.log_tail()}")
        yield url
    finally:
        child.stop()


@contextmanager
def dpkube_platform(workdir: Path) -> Iterator[str]:
    """dpkube's local platform as `make dev` runs it, with the bench users' grants; yields the facade URL."""
    grants = {(user, DATASET): GRANT for user in USERS}
    with LocalPlatform(workdir, users=USERS, grants=grants, trusted_header=True) as platform:
        yield platform.url


# --- requests ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Row:
    """One line of the table: a route, its body, and the engine work that floors it."""

    label: str
    path: str
    body: dict[str, Any]
    library: Library | None = None
    mode: str = ""
    """cost, dummy or private: what the engine floor times."""


def rows() -> list[Row]:
    sql, opendp, dpl = Library.SMARTNOISE_SQL, Library.OPENDP, Library.DIFFPRIVLIB
    return [
        Row("SQL count, cost estimate", "/estimate_smartnoise_sql_cost", examples.SMARTNOISE_SQL_COST, sql, "cost"),
        Row("SQL count, private query", "/smartnoise_sql_query", SQL_COUNT, sql, "private"),
        Row("SQL group by, dummy query", "/dummy_smartnoise_sql_query", {**SQL_GROUP_BY, **examples.DUMMY},
            sql, "dummy"),
        Row("SQL group by, private query", "/smartnoise_sql_query", SQL_GROUP_BY, sql, "private"),
        Row("OpenDP variance, cost", "/estimate_opendp_cost", examples.OPENDP_COST, opendp, "cost"),
        Row("OpenDP variance, dummy query", "/dummy_opendp_query", {**examples.OPENDP_QUERY, **examples.DUMMY},
            opendp, "dummy"),
        Row("OpenDP variance, private query", "/opendp_query", examples.OPENDP_QUERY, opendp, "private"),
        Row("diffprivlib logistic regression, cost", "/estimate_diffprivlib_cost", examples.DIFFPRIVLIB_COST,
            dpl, "cost"),
        Row("diffprivlib logistic regression, dummy query", "/dummy_diffprivlib_query",
            {**examples.DIFFPRIVLIB_QUERY, **examples.DUMMY}, dpl, "dummy"),
        Row("diffprivlib logistic regression, private query", "/diffprivlib_query", examples.DIFFPRIVLIB_QUERY,
            dpl, "private"),
        Row("remaining budget", "/get_remaining_budget", examples.GET_DB_DATA),
        Row("previous queries", "/get_previous_queries", examples.GET_DB_DATA),
    ]


def client(url: str, user: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"user-name": user}, timeout=TIMEOUT)


def post(http: httpx.Client, path: str, body: dict[str, Any]) -> tuple[float, httpx.Response]:
    """Seconds to the whole answer; anything but 200 stops the bench (a failed query measures nothing)."""
    started = time.perf_counter()
    response = http.post(path, json=body)
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        raise RuntimeError(f"{http.base_url}{path} answered {response.status_code}: {response.text[:500]}")
    return elapsed, response


def alternate(clients: dict[str, httpx.Client], row: Row, repeats: int, warmup: int) -> dict[str, list[float]]:
    """Rounds of the same request to each system in turn, SETTLE_SECONDS apart; the warm-up rounds are not kept."""
    samples: dict[str, list[float]] = {name: [] for name in clients}
    for round_ in range(warmup + repeats):
        for name, http in clients.items():
            seconds, _ = post(http, row.path, row.body)
            if round_ >= warmup:
                samples[name].append(seconds)
            time.sleep(SETTLE_SECONDS)
    return samples


def stored_queries(http: httpx.Client) -> int:
    _, response = post(http, "/get_previous_queries", examples.GET_DB_DATA)
    return len(response.json()["previous_queries"])


# --- engine floor -------------------------------------------------------------------------------

def engine_floors(table: list[Row], repeats: int) -> dict[str, float]:
    """Row label -> median seconds of the engine's own work for it, in-process (cost unmemoised)."""
    metadata = demo_metadata(DATASET)
    frames = {"private": load_frame(f"demo://{DATASET}", metadata),
              "dummy": dummy_frame(metadata, examples.DUMMY["dummy_nb_rows"], examples.DUMMY["dummy_seed"])}
    floors = {}
    for row in table:
        if row.library is None:
            continue
        library, payload = row.library, as_payload(row.library, examples.payload_fields(row.library, row.body))
        if row.mode == "cost":
            module = library_module(library)
            floors[row.label] = median_seconds(lambda: module.cost(payload, metadata), repeats)  # noqa: B023
        else:
            frame = frames[row.mode]
            floors[row.label] = median_seconds(
                lambda: run_query(library, payload, metadata, frame), repeats)  # noqa: B023
    return floors


# --- throughput ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Loop:
    completed: int
    rate: float
    p50: float
    p95: float


def closed_loop(url: str, users: tuple[str, ...], seconds: float) -> Loop:
    """Each user sends private SQL counts back to back for `seconds`; the rate counts every completed
    query over the time to the last one (queries in flight at the deadline are awaited)."""
    deadline = time.monotonic() + seconds
    latencies: list[float] = []

    def user_loop(user: str) -> None:
        with client(url, user) as http:
            while time.monotonic() < deadline:
                latencies.append(post(http, "/smartnoise_sql_query", SQL_COUNT)[0])

    started = time.monotonic()
    with ThreadPoolExecutor(len(users)) as pool:
        for future in [pool.submit(user_loop, user) for user in users]:
            future.result()
    elapsed = time.monotonic() - started
    return Loop(len(latencies), len(latencies) / elapsed, statistics.median(latencies), percentile(latencies, 0.95))


# --- report -------------------------------------------------------------------------------------

def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def geometric_mean(values: list[float]) -> float:
    return math.exp(statistics.fmean(math.log(v) for v in values))


def print_floors(table: list[Row], floors: dict[str, float]) -> None:
    print("engine floor (in-process, median ms; cost unmemoised, dummy on 100 rows, private on PENGUIN)")
    for row in table:
        if row.label in floors:
            print(f"  {row.label:50} {floors[row.label] * 1000:9.1f}")


def print_latencies(table: list[Row], samples: dict[str, dict[str, list[float]]], floors: dict[str, float],
                    labels: dict[str, str]) -> None:
    header = (f"{'request':58} {'dpkube p50':>10} {'p95':>8} {'Lomas p50':>10} {'p95':>8} "
              f"{'ratio p50':>9} {'p95':>7} {'dpkube/engine':>13}")
    print(header)
    print("-" * len(header))
    p50_ratios, p95_ratios = [], []
    for row in table:
        ours, theirs = samples[row.label]["dpkube"], samples[row.label]["lomas"]
        d50, d95, l50, l95 = (statistics.median(ours), percentile(ours, 0.95),
                              statistics.median(theirs), percentile(theirs, 0.95))
        p50_ratios.append(d50 / l50)
        p95_ratios.append(d95 / l95)
        floor = f"{d50 / floors[row.label]:12.2f}x" if row.label in floors else ""
        print(f"{labels.get(row.label, row.label):58} {d50 * 1000:10.1f} {d95 * 1000:8.1f} {l50 * 1000:10.1f} "
              f"{l95 * 1000:8.1f} {d50 / l50:9.2f} {d95 / l95:7.2f} {floor:>13}")
    print(f"{'geometric mean of dpkube/Lomas over the rows':58} {'':>40} "
          f"{geometric_mean(p50_ratios):9.2f} {geometric_mean(p95_ratios):7.2f}")


def print_throughput(loops: dict[str, Loop], seconds: float) -> None:
    print(f"throughput: private SQL counts in a closed loop, {seconds:.0f} s each")
    print(f"  {'system':24} {'completed':>9} {'queries/s':>10} {'p50 ms':>9} {'p95 ms':>9}")
    for name, loop in loops.items():
        print(f"  {name:24} {loop.completed:9d} {loop.rate:10.2f} {loop.p50 * 1000:9.1f} {loop.p95 * 1000:9.1f}")
    ratio = loops["dpkube, 8 users"].rate / loops["Lomas, 1 user"].rate
    print(f"  dpkube 8 users / Lomas 1 user: {ratio:.2f}")


def load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


# --- run ----------------------------------------------------------------------------------------

def measure(lomas_url: str, dpkube_url: str, table: list[Row], args: argparse.Namespace) -> dict[str, Any]:
    user = USERS[0]
    with client(lomas_url, user) as lomas, client(dpkube_url, user) as dpkube:
        clients = {"lomas": lomas, "dpkube": dpkube}
        samples = {}
        for row in table:
            print(f"  {row.label} ...", flush=True)
            samples[row.label] = alternate(clients, row, args.repeats, args.warmup)
        stored = {name: stored_queries(http) for name, http in clients.items()}
    print("  throughput ...", flush=True)
    loops = {
        "Lomas, 1 user": closed_loop(lomas_url, USERS[:1], args.seconds),
        "dpkube, 1 user": closed_loop(dpkube_url, USERS[:1], args.seconds),
        "dpkube, 8 users": closed_loop(dpkube_url, USERS, args.seconds),
    }
    return {"samples": samples, "stored": stored, "loops": loops}


def main() -> None:
    parser = argparse.ArgumentParser(description="dpkube beside Lomas 0.3.5: latency per route and throughput")
    parser.add_argument("--repeats", type=int, default=30, help="measured rounds per row (default 30)")
    parser.add_argument("--warmup", type=int, default=3, help="unmeasured rounds per row first (default 3)")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each closed loop (default 20)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    table = rows()
    print(f"load average at start: {load()}", flush=True)
    floors = engine_floors(table, args.repeats)
    with tempfile.TemporaryDirectory(prefix="dpkube-bench-lomas-") as tmp, \
            lomas_server(Path(tmp) / "lomas") as lomas_url, dpkube_platform(Path(tmp) / "dpkube") as dpkube_url:
        print(f"Lomas {lomas_url}, dpkube {dpkube_url}; measuring ...", flush=True)
        results = measure(lomas_url, dpkube_url, table, args)
    stored = results["stored"]
    count = str(stored["dpkube"]) if stored["dpkube"] == stored["lomas"] else \
        f"dpkube {stored['dpkube']}, Lomas {stored['lomas']}"
    print(f"\ndpkube beside Lomas {LOMAS_VERSION}: {args.repeats} alternating rounds per row after "
          f"{args.warmup} warm-up rounds; ms")
    print_latencies(table, results["samples"], floors, {"previous queries": f"previous queries ({count} stored)"})
    print()
    print_floors(table, floors)
    print()
    print_throughput(results["loops"], args.seconds)
    print(f"\nload average at the end: {load()} ({os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
