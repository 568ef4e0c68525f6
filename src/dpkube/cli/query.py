"""`dpkube query submit FILE` and `dpkube query list`, through the facade or (`--kube`) the Kubernetes API.

Through the facade the query goes to its Lomas route, which answers when the query ends; with
`--kube` the DPQuery object is created and its phases are shown as the operator moves it.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import httpx

from dpkube.cli import options, queryfile
from dpkube.client.errors import LomasClientError
from dpkube.k8s.client import KubeClient
from dpkube.k8s.results import read_published
from dpkube.models.dpquery import Mode, Phase, phase_of
from dpkube.models.kinds import DPQUERY
from dpkube.models.payloads import Library

POLL_SECONDS = 0.25


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("query", help="submit DP queries and list yours")
    actions = parser.add_subparsers(dest="action", required=True)

    submit = actions.add_parser("submit", help="submit a query and follow it until it ends")
    submit.add_argument("file", type=Path, help="a DPQuery manifest (YAML/JSON) or a Lomas request body (JSON)")
    submit.add_argument("--library", choices=[lib.lomas_name for lib in Library],
                        help="the library of a Lomas body (a manifest names its own)")
    submit.add_argument("--mode", choices=[mode.value for mode in Mode],
                        help="query (charged), dummy or cost (default: the manifest's, else query)")
    submit.add_argument("--kube", action="store_true", help="create the DPQuery through the Kubernetes API")
    submit.add_argument("--namespace", help=f"query namespace with --kube (default: $DPKUBE_QUERY_NAMESPACE or "
                        f"{options.QUERY_NAMESPACE})")
    submit.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for the end (default: 600)")
    options.add_facade_options(submit)
    options.add_kube_options(submit)
    submit.set_defaults(run=submit_query)

    listing = actions.add_parser("list", help="your successful queries on a dataset (or, with --kube, DPQueries)")
    listing.add_argument("--dataset", default="PENGUIN", help="dataset (default: PENGUIN)")
    listing.add_argument("--kube", action="store_true", help="list the DPQuery objects of the namespace")
    listing.add_argument("--namespace", help="query namespace with --kube")
    options.add_facade_options(listing)
    options.add_kube_options(listing)
    listing.set_defaults(run=list_queries)


def _namespace(args: argparse.Namespace) -> str:
    return args.namespace or os.environ.get("DPKUBE_QUERY_NAMESPACE") or options.QUERY_NAMESPACE


def _progress(message: str, started: float, out: TextIO | None = None) -> None:
    print(f"[{time.monotonic() - started:7.2f}s] {message}", file=out or sys.stderr, flush=True)


def submit_query(args: argparse.Namespace) -> int:
    try:
        query = queryfile.load(args.file, args.library, args.mode)
    except (ValueError, KeyError) as exc:
        print(f"dpkube: {exc}", file=sys.stderr)
        return 2
    if args.kube:
        return asyncio.run(_submit_kube(args, query))
    return _submit_facade(args, query)


def _submit_facade(args: argparse.Namespace, query: queryfile.QueryFile) -> int:
    """POST to the query's Lomas route, showing the time waited until the answer comes."""
    connection = options.facade(args, timeout=args.timeout)
    started = time.monotonic()
    route = query.route()
    _progress(f"submitted to {route} on {query.dataset} ({query.mode.value})", started)
    try:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            answer = pool.submit(connection.post, route, query.lomas_body())
            while not answer.done():
                try:
                    answer.exception(timeout=5.0)
                except concurrent.futures.TimeoutError:
                    _progress("waiting for the query to end ...", started)
            result = answer.result()
    except (LomasClientError, httpx.HTTPError) as exc:
        _progress(f"failed: {type(exc).__name__}: {exc}", started)
        return 1
    finally:
        connection.close()
    _progress("done", started)
    print(json.dumps(result, indent=2))
    return 0


async def _submit_kube(args: argparse.Namespace, query: queryfile.QueryFile) -> int:
    """Create the DPQuery and report each phase it passes through, then its result or its reason."""
    user = options.user(args)
    if not user:
        raise options.MissingSetting("--kube needs the query's user: pass --user or set DPKUBE_USER")
    namespace = _namespace(args)
    started = time.monotonic()
    async with options.kube(args) as client:
        created = await client.create(DPQUERY.api_path(namespace), query.manifest(user, namespace))
        name = created["metadata"]["name"]
        _progress(f"created dpquery {name} in {namespace}", started)
        final = await _follow(client, namespace, name, started, args.timeout)
        if final is None:
            _progress(f"still running after {args.timeout:g} s: `kubectl get dpquery {name} -n {namespace}`", started)
            return 3
        status = final.get("status") or {}
        if phase_of(final) != Phase.SUCCEEDED:
            return 1
        result = await read_published(client, final)
    spent = status.get("spent") or {}
    print(json.dumps({"name": name, "spent_epsilon": spent.get("epsilon"), "spent_delta": spent.get("delta"),
                      "cost": status.get("cost"), "result": result}, indent=2))
    return 0


async def _follow(client: KubeClient, namespace: str, name: str, started: float,
                  timeout: float) -> dict[str, Any] | None:
    """Poll the query, printing every phase change; the final object, or None past the timeout."""
    seen = None
    deadline = started + timeout
    while time.monotonic() < deadline:
        query = await client.get(DPQUERY.api_path(namespace, name))
        status = query.get("status") or {}
        phase = status.get("phase") or Phase.PENDING.value
        if phase != seen:
            seen = phase
            message = status.get("message")
            _progress(f"{phase}{': ' + message if message else ''}", started)
        if Phase(phase).terminal:
            return query
        await asyncio.sleep(POLL_SECONDS)
    return None


def list_queries(args: argparse.Namespace) -> int:
    if args.kube:
        return asyncio.run(_list_kube(args))
    connection = options.facade(args, timeout=60)
    try:
        records = connection.post("/get_previous_queries", {"dataset_name": args.dataset})["previous_queries"]
    except LomasClientError as exc:
        print(f"dpkube: {type(exc).__name__}: {exc.message}", file=sys.stderr)
        return 1
    finally:
        connection.close()
    print(f"{'SUBMITTED (UTC)':20} {'LIBRARY':17} {'EPSILON':>10} {'DELTA':>10}")
    for record in records:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(record["timestamp"]))
        response = record["response"]
        print(f"{when:20} {record['dp_librairy']:17} {response['spent_epsilon']:>10g} {response['spent_delta']:>10g}")
    return 0


async def _list_kube(args: argparse.Namespace) -> int:
    user = options.user(args)
    async with options.kube(args) as client:
        items = await client.list_all(DPQUERY.api_path(_namespace(args)))
    print(f"{'NAME':40} {'USER':16} {'DATASET':10} {'LIBRARY':17} {'MODE':6} {'PHASE':10} {'EPS-SPENT':>9}")
    for item in sorted(items, key=lambda q: q["metadata"].get("creationTimestamp", "")):
        spec, status = item["spec"], item.get("status") or {}
        if user and spec.get("user") != user:
            continue
        spent = (status.get("spent") or {}).get("epsilon")
        print(f"{item['metadata']['name']:40} {spec['user']:16} {spec['dataset']:10} {spec['library']:17} "
              f"{spec.get('mode', 'query'):6} {status.get('phase', 'Pending'):10} "
              f"{'' if spent is None else format(spent, 'g'):>9}")
    return 0
