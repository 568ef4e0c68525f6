"""`dpkube token create USER [--admin]`: issue an API token (admin; written on the cluster, shown once)."""

from __future__ import annotations

import argparse
import asyncio
import sys

from dpkube.cli import options
from dpkube.k8s.tokens import create_token


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("token", help="API tokens of the facade (admin)")
    actions = parser.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="issue a token for USER and print it (only its hash is kept)")
    create.add_argument("user")
    create.add_argument("--admin", action="store_true", help="the token's holder is an admin")
    options.add_kube_options(create)
    create.set_defaults(run=create_user_token)


def create_user_token(args: argparse.Namespace) -> int:
    async def create() -> str:
        async with options.kube(args) as client:
            return await create_token(client, options.system_namespace(args), args.user, admin=args.admin)

    token = asyncio.run(create())
    print(token)
    print(f"token for {args.user}{' (admin)' if args.admin else ''}: shown once, keep it now", file=sys.stderr)
    return 0
