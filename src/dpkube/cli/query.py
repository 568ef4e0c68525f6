"""`dpkube query submit FILE` and `dpkube query list`, through the facade or (`--kube`) the Kubernetes API.

Through the facade the query goes to its Lomas route, which answers when the query ends; with
`--kube` the DPQuery object is created and its phases are shown as the operator moves it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from dpkube.cli import charts, options, queryfile
from dpkube.cli.progress import ProgressView
from dpkube.client.errors import LomasClientError
from dpkube.k8s.client import KubeClient
from dpkube.k8s.results import read_published
from dpkube.models.dpquery import Mode, Phase, phase_of
from dpkube.models.kinds import DPQUERY
from dpkube.models.payloads import Library
from dpkube.models.progress import QueryProgress

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
    listing.add_argument("--chart", action=argparse.BooleanOptionalAction, default=None,
                         help="a chart of the epsilon spent, query by query (default: on a terminal)")
    listing.add_argument("--namespace", help="query namespace with --kube")
    options.add_facade_options(listing)
    options.add_kube_options(listing)
    listing.set_defaults(run=list_queries)


def _namespace(args: argparse.Namespace) -> str:
    return args.namespace or os.environ.get("DPKUBE_QUERY_NAMESPACE") or options.QUERY_NAMESPACE


def submit_query(args: argparse.Namespace) -> int:
    try:
        query = queryfile.load(args.file, args.library, args.mode)
    except (ValueError, KeyError) as exc:
        print(f"dpkube: {exc}", file=sys.stderr)
        return 2
    with ProgressView() as view:
        if args.kube:
            return asyncio.run(_submit_kube(args, query, view))
        return _submit_facade(args, query, view)


def _submit_facade(args: argparse.Namespace, query: queryfile.QueryFile, view: ProgressView) -> int:
    """POST to the query's Lomas route and follow the query (phase, queue position, elapsed) until it ends."""
    connection = options.facade(args, timeout=args.timeout)
    connection.progress = view.update
    route = query.route()
    view.note(f"submitted to {route} on {query.dataset} ({query.mode.value})")
    try:
        result = connection.query(route, query.lomas_body())
    except (LomasClientError, httpx.HTTPError) as exc:
        view.note(f"failed: {type(exc).__name__}: {exc}")
        return 1
    finally:
        connection.close()
    view.note("done")
    print(json.dumps(result, indent=2))
    return 0


async def _submit_kube(args: argparse.Namespace, query: queryfile.QueryFile, view: ProgressView) -> int:
    """Create the DPQuery and report each phase it passes through, then its result or its reason."""
    user = options.user(args)
    if not user:
        raise options.MissingSetting("--kube needs the query's user: pass --user or set DPKUBE_USER")
    namespace = _namespace(args)
    async with options.kube(args) as client:
        created = await client.create(DPQUERY.api_path(namespace), query.manifest(user, namespace))
        name = created["metadata"]["name"]
        view.note(f"created dpquery {name} in {namespace}")
        final = await _follow(client, namespace, name, view, args.timeout)
        if final is None:
            view.note(f"still running after {args.timeout:g} s: `kubectl get dpquery {name} -n {namespace}`")
            return 3
        status = final.get("status") or {}
        if phase_of(final) != Phase.SUCCEEDED:
            message = status.get("message")
            view.note(f"{status.get('phase')}{': ' + message if message else ''}")
            return 1
        view.note(Phase.SUCCEEDED.value)
        result = await read_published(client, final)
    spent = status.get("spent") or {}
    print(json.dumps({"name": name, "spent_epsilon": spent.get("epsilon"), "spent_delta": spent.get("delta"),
                      "cost": status.get("cost"), "result": result}, indent=2))
    return 0


async def _follow(client: KubeClient, namespace: str, name: str, view: ProgressView,
                  timeout: float) -> dict[str, Any] | None:
    """Poll the query, showing its progress; the final object, or None past the timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        query = await client.get(DPQUERY.api_path(namespace, name))
        progress = QueryProgress.of(query)
        if progress.phase.terminal:
            return query
        view.update(progress)
        await asyncio.sleep(POLL_SECONDS)
    return None


def list_queries(args: argparse.Namespace) -> int:
    if args.kube:
        return asyncio.run(_list_kube(args))
    connection = options.facade(args, timeout=60)
    try:
        records = connection.post("/get_previous_queries", {"dataset_name": args.dataset})["previous_queries"]
        chart = sys.stdout.isatty() if args.chart is None else args.chart
        initial = connection.post("/get_initial_budget", {"dataset_name": args.dataset}) if chart else None
    except LomasClientError as exc:
        print(f"dpkube: {type(exc).__name__}: {exc.message}", file=sys.stderr)
        return 1
    finally:
        connection.close()
    print(f"{'SUBMITTED (UTC)':20} {'LIBRARY':17} {'EPSILON':>10} {'DELTA':>10}")
    for record in records:
        response = record["response"]
        print(f"{_when(record):20} {record['dp_librairy']:17} {response['spent_epsilon']:>10g} "
              f"{response['spent_delta']:>10g}")
    if initial is not None:
        print(f"\nepsilon spent on {args.dataset}, query by query:")
        spends = [(_when(record), record["response"]["spent_epsilon"]) for record in records]
        for line in charts.spend_chart(initial["initial_epsilon"], spends):
            print(line)
    return 0


def _when(record: dict[str, Any]) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(record["timestamp"]))


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
