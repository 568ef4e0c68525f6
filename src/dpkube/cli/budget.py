"""`dpkube budget show` (a user, through the facade) and `dpkube budget grant` (an admin, on the cluster)."""

from __future__ import annotations

import argparse
import asyncio
import sys

from dpkube.budget.ledger import Accounting, InvalidGrant
from dpkube.cli import options
from dpkube.k8s.budgets import Budgets


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("budget", help="privacy budgets: show yours, or grant one (admin)")
    actions = parser.add_subparsers(dest="action", required=True)

    show = actions.add_parser("show", help="your initial, spent and remaining budget on a dataset")
    show.add_argument("dataset", nargs="?", default="PENGUIN", help="dataset name (default: PENGUIN)")
    options.add_facade_options(show)
    show.set_defaults(run=show_budget)

    grant = actions.add_parser("grant", help="grant USER a budget on DATASET (replaces the initial budget)")
    grant.add_argument("user")
    grant.add_argument("dataset")
    grant.add_argument("--epsilon", type=float, help="the budget's epsilon (under zCDP: converted to rho at --delta)")
    grant.add_argument("--delta", type=float, required=True,
                       help="the budget's delta (under zCDP: the delta the budget is reported at)")
    grant.add_argument("--accounting", choices=[a.value for a in Accounting], default=Accounting.APPROX_DP.value,
                       help="approxDP adds up (epsilon, delta); zCDP adds up rho (Gaussian releases only)")
    grant.add_argument("--rho", type=float, help="a zCDP budget in rho, instead of --epsilon")
    grant.add_argument("--disable", action="store_true", help="grant, but do not allow queries yet")
    options.add_kube_options(grant)
    grant.set_defaults(run=grant_budget)


def show_budget(args: argparse.Namespace) -> int:
    connection = options.facade(args, timeout=30)
    try:
        body = {"dataset_name": args.dataset}
        initial = connection.post("/get_initial_budget", body)
        spent = connection.post("/get_total_spent_budget", body)
        remaining = connection.post("/get_remaining_budget", body)
    finally:
        connection.close()
    print(f"{'':10} {'epsilon':>12} {'delta':>12}")
    print(f"{'initial':10} {initial['initial_epsilon']:>12g} {initial['initial_delta']:>12g}")
    print(f"{'spent':10} {spent['total_spent_epsilon']:>12g} {spent['total_spent_delta']:>12g}")
    print(f"{'remaining':10} {remaining['remaining_epsilon']:>12g} {remaining['remaining_delta']:>12g}")
    return 0


def grant_budget(args: argparse.Namespace) -> int:
    accounting = Accounting(args.accounting)

    async def grant() -> None:
        async with options.kube(args) as client:
            await Budgets(client, options.system_namespace(args)).grant(
                args.user, args.dataset, args.epsilon, args.delta, may_query=not args.disable,
                accounting=accounting, rho=args.rho)

    try:
        asyncio.run(grant())
    except InvalidGrant as exc:
        print(f"dpkube budget grant: {exc}", file=sys.stderr)
        return 2
    budget = f"rho {args.rho:g}" if args.rho is not None else f"epsilon {args.epsilon:g}"
    print(f"granted {args.user} {budget}, delta {args.delta:g} ({accounting.value}) on {args.dataset}")
    return 0
