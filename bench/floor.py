"""The least time any query can take with a process of its own and the books in the API server, beside
Lomas' answer to the same query, in one run.

Lomas answers in the process that holds the data and the budget. dpkube keeps its state in the API server
and runs each query in a process of its own, so a query's answer passes through at least:
  - create: the facade's DPQuery create, until the operator's watch delivers it;
  - charge (private queries): one conditioned update of the grant's ConfigMap (the ledger's own code),
    which must land before any result leaves;
  - run: the query in a child forked from a process that imported and rehearsed the libraries and that
    copied, before the query came, the pages a run writes (a warm runner already claimed, with no write for
    its pod), from the go to its result back in the parent;
  - release: the result in the query's status, until the facade's watch delivers it.
dpkube's hot path has these steps and more (the queue's serial, the reservation apart from the charge, the
claim of the pod, the admission's status write). Each part is timed on an idle control plane (etcd and
kube-apiserver as the platform runs them), alternating with Lomas' request, with a pause after each so
neither is timed on the other's background work. The sum is a floor; its ratio to Lomas says whether a
shorter hot path could ever win the row.

Usage: python -m bench.floor [--repeats 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import struct
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.lomas import DATASET, SETTLE_SECONDS, USERS, Row, client, lomas_server, post, rows
from bench.timing import median_seconds

from dpkube.budget import ledger as L
from dpkube.controlplane.local import LocalControlPlane
from dpkube.engine.cost import as_payload
from dpkube.engine.datasets import demo_metadata, load_frame
from dpkube.engine.dummy import dummy_frame
from dpkube.engine.release import run_query
from dpkube.k8s.budgets import Budgets
from dpkube.k8s.client import ApiError, KubeClient, KubeConfig
from dpkube.k8s.install import install
from dpkube.models import examples
from dpkube.models.cost import Cost
from dpkube.models.crd import API_VERSION
from dpkube.models.dpquery import PAYLOAD_FIELD, DPQuerySpec, DummySpec, Mode
from dpkube.models.kinds import DPQUERY
from dpkube.runner.pages import Run, populate, runs
from dpkube.runner.zygote import SINGLE_THREADED, learn_written_pages, preload

SYSTEM_NAMESPACE = "dpkube-system"
NAMESPACE = "dpkube"
USER = USERS[0]
PARTS = ("create", "charge", "run", "release")
WAIT_SECONDS = 30.0


class WarmChild:
    """A child forked now that copies the learnt pages, then waits for its go; it runs `query` and sends back
    its JSON, as a claimed warm runner would."""

    def __init__(self, query: Callable[[], Any], pages: list[Run]):
        self._go_read, self._go = os.pipe()
        self._answer, answer_write = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            try:
                os.close(self._go)
                os.close(self._answer)
                populate(pages)
                os.read(self._go_read, 1)
                result = json.dumps(query(), default=str).encode()
                os.write(answer_write, struct.pack("I", len(result)) + result)
            finally:
                os._exit(0)
        os.close(self._go_read)
        os.close(answer_write)

    def run(self) -> dict[str, Any]:
        """Go: the child's result (it exits after)."""
        os.write(self._go, b"g")
        with os.fdopen(self._answer, "rb") as answer:
            size = struct.unpack("I", answer.read(4))[0]
            return json.loads(answer.read(size))

    def reap(self) -> None:
        os.close(self._go)
        os.waitpid(self.pid, 0)


@dataclass
class Watched:
    """DPQueries as a watch delivers them: a future per name, set when `ready` holds for the object."""

    ready: Callable[[dict[str, Any]], bool]
    waiting: dict[str, asyncio.Future[float]] = field(default_factory=dict)

    def expect(self, name: str) -> asyncio.Future[float]:
        self.waiting[name] = asyncio.get_running_loop().create_future()
        return self.waiting[name]

    async def follow(self, kube: KubeClient) -> None:
        """Until cancelled; a watch refused while the new CRD's cache fills is tried again (it lists first, so
        nothing created meanwhile is missed)."""
        while True:
            try:
                async for event in kube.watch(DPQUERY.api_path(NAMESPACE)):
                    body = event.get("object") or {}
                    future = self.waiting.get((body.get("metadata") or {}).get("name", ""))
                    if future is not None and not future.done() and self.ready(body):
                        future.set_result(time.perf_counter())
            except ApiError:
                await asyncio.sleep(0.1)


def manifest(name: str, row: Row) -> dict[str, Any]:
    assert row.library is not None
    dummy = DummySpec(rows=row.body["dummy_nb_rows"], seed=row.body["dummy_seed"]) if row.mode == "dummy" else None
    spec = DPQuerySpec(user=USER, dataset=DATASET, library=row.library, mode=Mode.DUMMY if dummy else Mode.QUERY,
                       dummy=dummy, **{PAYLOAD_FIELD[row.library]: examples.payload_fields(row.library, row.body)})
    return {"apiVersion": API_VERSION, "kind": DPQUERY.kind,
            "metadata": {"name": name, "namespace": NAMESPACE}, "spec": spec.to_kube()}


class Floor:
    """The parts of one query's least path, on one control plane."""

    def __init__(self, facade: KubeClient, operator: KubeClient, pages: list[Run]):
        self.facade, self.operator, self.pages = facade, operator, pages
        self.created = Watched(lambda body: True)
        self.released = Watched(lambda body: (body.get("status") or {}).get("phase") == "Succeeded")
        self.budgets = Budgets(operator, SYSTEM_NAMESPACE)
        self.serial = 0

    async def once(self, row: Row, query: Callable[[], Any]) -> dict[str, float]:
        self.serial += 1
        name, uid = f"floor-{self.serial}", f"floor-uid-{self.serial}"
        child = WarmChild(query, self.pages)
        grant = await self.budgets.find_to_move(USER, DATASET)
        await asyncio.sleep(SETTLE_SECONDS)  # the child has copied its pages and waits, as a warm runner does
        created, released = self.created.expect(name), self.released.expect(name)
        started = time.perf_counter()
        await self.facade.create(DPQUERY.api_path(NAMESPACE), manifest(name, row))
        seen = await asyncio.wait_for(created, WAIT_SECONDS)
        parts = {"create": seen - started}
        if row.mode == "private":  # a dummy query is free
            cost = Cost(epsilon=0.1, delta=1e-5)
            await self.budgets.move(grant, lambda ledger: L.charge(L.reserve(ledger, uid=uid, cost=cost), uid))
            parts["charge"] = time.perf_counter() - seen
        go = time.perf_counter()
        result = child.run()
        ran = time.perf_counter()
        await self.operator.patch(DPQUERY.api_path(NAMESPACE, name) + "/status",
                                  {"status": {"phase": "Succeeded", "result": result}})
        done = await asyncio.wait_for(released, WAIT_SECONDS)
        child.reap()
        return {**parts, "run": ran - go, "release": done - ran}


def library_query(row: Row) -> Callable[[], Any]:
    """The row's query as the runner runs it: load the private CSV (or build the dummy rows), run the library,
    the response as JSON."""
    assert row.library is not None
    library, metadata = row.library, demo_metadata(DATASET)
    payload = as_payload(library, examples.payload_fields(library, row.body))

    def frame() -> Any:
        if row.mode == "dummy":
            return dummy_frame(metadata, row.body["dummy_nb_rows"], row.body["dummy_seed"])
        return load_frame(f"demo://{DATASET}", metadata)

    def query() -> Any:
        response = run_query(library, payload, metadata, frame())
        return response.model_dump(mode="json") if hasattr(response, "model_dump") else response

    return query


async def measure(config: KubeConfig, lomas_url: str, table: list[Row], pages: list[Run],
                  repeats: int) -> dict[str, dict[str, list[float]]]:
    async with KubeClient(config) as admin:
        await install(admin, SYSTEM_NAMESPACE, [NAMESPACE], demo=True)
        await Budgets(admin, SYSTEM_NAMESPACE).grant(USER, DATASET, epsilon=1_000_000.0, delta=0.5)
    samples: dict[str, dict[str, list[float]]] = {}
    async with KubeClient(config) as facade, KubeClient(config) as operator:
        floor = Floor(facade, operator, pages)
        watches = [asyncio.create_task(floor.created.follow(operator)),
                   asyncio.create_task(floor.released.follow(facade))]
        await asyncio.sleep(0.5)
        with client(lomas_url, USER) as lomas:
            for row in table:
                query = library_query(row)
                figures = samples[row.label] = {part: [] for part in (*PARTS, "floor", "lomas", "in-process")}
                for round_ in range(repeats + 1):
                    if threading.active_count() > 1:
                        raise RuntimeError("a thread would be forked into the child")
                    parts = await floor.once(row, query)
                    await asyncio.sleep(SETTLE_SECONDS)
                    lomas_seconds = post(lomas, row.path, row.body)[0]
                    await asyncio.sleep(SETTLE_SECONDS)
                    if round_ == 0:
                        continue  # warm-up
                    for part, seconds in parts.items():
                        figures[part].append(seconds)
                    figures["floor"].append(sum(parts.values()))
                    figures["lomas"].append(lomas_seconds)
                figures["in-process"] = [median_seconds(query, repeats)]
        for watch in watches:
            watch.cancel()
    return samples


def report(table: list[Row], samples: dict[str, dict[str, list[float]]], repeats: int) -> None:
    print(f"\nA query's least path in dpkube beside Lomas, p50 ms over {repeats} alternating rounds")
    header = (f"{'request':46} {'create':>7} {'charge':>7} {'run':>7} {'release':>8} {'floor':>7} {'in-process':>11} "
              f"{'Lomas':>7} {'floor/Lomas':>12}")
    print(header)
    print("-" * len(header))
    for row in table:
        p50 = {part: statistics.median(values) * 1000 for part, values in samples[row.label].items() if values}
        charge = f"{p50['charge']:>7.1f}" if "charge" in p50 else f"{'-':>7}"
        print(f"{row.label:46} {p50['create']:>7.1f} {charge} {p50['run']:>7.1f} {p50['release']:>8.1f} "
              f"{p50['floor']:>7.1f} {p50['in-process']:>11.1f} {p50['lomas']:>7.1f} "
              f"{p50['floor'] / p50['lomas']:>11.2f}x")
    print("floor = create + charge + run + release, each round's sum; in-process = the library's run in this "
          "process, after a first run")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20, help="measured rounds per row (default 20)")
    args = parser.parse_args()
    if any(os.environ.get(name) != value for name, value in SINGLE_THREADED.items()):
        # as the zygote runs: one BLAS thread, set before numpy loads
        os.execve(sys.executable, [sys.executable, "-m", "bench.floor", *sys.argv[1:]],
                  {**os.environ, **SINGLE_THREADED})
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a stopped bench still stops what it started
    table = [row for row in rows() if row.mode in ("private", "dummy")]
    preload()
    pages = runs(list(learn_written_pages().values()))
    with tempfile.TemporaryDirectory(prefix="dpkube-bench-floor-") as tmp, lomas_server(Path(tmp) / "lomas") as url:
        plane = LocalControlPlane(Path(tmp) / "controlplane").start()
        try:
            samples = asyncio.run(measure(KubeConfig.from_kubeconfig(plane.kubeconfig), url, table, pages,
                                          args.repeats))
        finally:
            plane.stop()
    report(table, samples, args.repeats)


if __name__ == "__main__":
    main()
