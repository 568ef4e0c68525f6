"""`dpkube queue lock|unlock NAME` (admin): a locked Queue admits nothing new; its waiting queries stay."""

from __future__ import annotations

import argparse
import asyncio

from dpkube.cli import options
from dpkube.k8s.client import KubeClient, NotFound
from dpkube.models.kinds import QUEUE


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("queue", help="lock or unlock a queue (admin)")
    actions = parser.add_subparsers(dest="action", required=True)
    for action, locked in (("lock", True), ("unlock", False)):
        command = actions.add_parser(action, help=f"{action} the Queue NAME (object name, or its Dioptra name)")
        command.add_argument("name")
        options.add_kube_options(command)
        command.set_defaults(run=set_lock, locked=locked)


async def queue_object_name(client: KubeClient, namespace: str, name: str) -> str:
    """The Queue's object name: NAME itself, else the Queue whose Dioptra name annotation is NAME."""
    try:
        await client.get(QUEUE.api_path(namespace, name))
        return name
    except NotFound:
        pass
    for item in await client.list_all(QUEUE.api_path(namespace)):
        annotations = item["metadata"].get("annotations") or {}
        if any(key.endswith("/name") and value == name for key, value in annotations.items()):
            return str(item["metadata"]["name"])
    raise SystemExit(f"dpkube: no queue {name} in namespace {namespace}")


def set_lock(args: argparse.Namespace) -> int:
    async def patch() -> str:
        async with options.kube(args) as client:
            namespace = options.system_namespace(args)
            object_name = await queue_object_name(client, namespace, args.name)
            await client.patch(QUEUE.api_path(namespace, object_name), {"spec": {"locked": args.locked}})
            return object_name

    object_name = asyncio.run(patch())
    print(f"queue {object_name} {'locked' if args.locked else 'unlocked'}")
    return 0
