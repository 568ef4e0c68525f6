"""How many Gaussian SQL counts at one noise scale fit an (epsilon 1, delta 1e-5) grant: basic composition vs zCDP.

Every query is the same smartnoise-sql COUNT(*) with the gaussian mechanism, calibrated by the library for
(--epsilon, --delta), so each adds noise of the same sigma. Each is priced by the engine (the (epsilon, delta)
smartnoise-sql reports, and the rho of the scale it uses) and reserved then charged on a ledger until the grant
refuses: once on an approximate-DP grant (epsilon and delta add up), once on a zCDP grant of the same
(epsilon, delta) converted to rho (rhos add up). The goal is at least 1.5 times more queries under zCDP.

    python -m bench.zcdp [--epsilon 0.1] [--delta 1e-7]
"""

from __future__ import annotations

import argparse
import math

import snsql

from dpkube.budget import ledger as L
from dpkube.budget.zcdp import rho_of
from dpkube.engine.cost import estimate_cost
from dpkube.engine.datasets import demo_metadata, load_frame
from dpkube.engine.libraries.smartnoise_sql import privacy
from dpkube.models.cost import Cost
from dpkube.models.examples import query_payload
from dpkube.models.payloads import Library, SmartnoiseSQLPayload

GRANT = (1.0, 1e-5)
QUERY = "SELECT COUNT(*) AS n FROM df"
MAX_QUERIES = 100_000
GOAL = 1.5


def sigma(payload: SmartnoiseSQLPayload) -> float:
    """The noise scale smartnoise-sql itself picks for the query's one Gaussian mechanism."""
    metadata = demo_metadata("PENGUIN")
    reader = snsql.from_df(load_frame("demo://PENGUIN", metadata), metadata=metadata.smartnoise_sql(),
                           privacy=privacy(payload))
    (mechanism,) = [m for m in reader._get_mechanisms(reader._rewrite(payload.query_str)[0]) if m is not None]
    return float(mechanism.scale)


def queries_that_fit(data: dict[str, str], cost: Cost) -> int:
    """Reserve and charge `cost` on the grant of `data` until it refuses: how many went through."""
    ledger = L.from_data({"user": "bench", "dataset": "PENGUIN", **data})
    for count in range(MAX_QUERIES):
        try:
            ledger = L.charge(L.reserve(ledger, f"q{count}", cost), f"q{count}")
        except L.InsufficientBudget:
            return count
    return MAX_QUERIES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epsilon", type=float, default=0.1, help="each query's epsilon, as sent to smartnoise-sql")
    parser.add_argument("--delta", type=float, default=1e-7, help="each query's delta, as sent to smartnoise-sql")
    args = parser.parse_args()
    raw = query_payload(Library.SMARTNOISE_SQL, query_str=QUERY, epsilon=args.epsilon, delta=args.delta,
                        mechanisms={"count": "gaussian"})
    payload = SmartnoiseSQLPayload.model_validate(raw)
    cost = estimate_cost(Library.SMARTNOISE_SQL, payload, demo_metadata("PENGUIN"))
    assert cost.rho is not None, "a Gaussian count has a rho"
    epsilon, delta = GRANT
    basic = queries_that_fit({"initialEpsilon": repr(epsilon), "initialDelta": repr(delta)}, cost)
    zcdp = queries_that_fit({"accounting": "zCDP", "initialEpsilon": repr(epsilon), "initialDelta": repr(delta)},
                            cost)
    ratio = zcdp / basic if basic else math.inf
    print(f"query: {QUERY!r}, gaussian, sent with epsilon {args.epsilon:g}, delta {args.delta:g}")
    print(f"sigma (smartnoise-sql's noise scale)      {sigma(payload):.4f}")
    print(f"per-query cost, approximate DP            epsilon {cost.epsilon:.6g}, delta {cost.delta:.6g}")
    print(f"per-query cost, zCDP                      rho {cost.rho:.6g}")
    print(f"grant                                     epsilon {epsilon:g}, delta {delta:g} "
          f"(rho {rho_of(epsilon, delta):.6g} under zCDP)")
    print(f"queries that fit, basic composition       {basic}")
    print(f"queries that fit, zCDP                    {zcdp}")
    print(f"ratio zCDP / basic                        {ratio:.2f}x (goal >= {GOAL}x: "
          f"{'met' if ratio >= GOAL else 'NOT met'})")


if __name__ == "__main__":
    main()
