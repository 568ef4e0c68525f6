"""The request bodies of Lomas 0.3's route examples (PENGUIN), on the wire as its clients send them.

Shared by tests, OpenAPI examples and docs so that all three show the same, runnable requests.
Bodies are snake_case dicts; `payload_fields` strips the route-only keys (dataset, dummy rows).
"""

from __future__ import annotations

import json
from typing import Any

from dpkube.models.payloads import PAYLOAD_TYPES, Library

PENGUIN = "PENGUIN"
PENGUIN_COLUMNS = [
    "species", "island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g",
    "sex",
]  # fmt: skip
PENGUIN_FEATURES = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]

DUMMY = {"dummy_nb_rows": 100, "dummy_seed": 42}
"""The dummy fields the Lomas client sends by default."""


def _constructor(module: str, func: str, **parts: Any) -> dict[str, Any]:
    """An opendp_logger AST node, keys in the logger's order (the JSON text must match)."""
    return {"_type": "constructor", "func": func, "module": module, **parts}


def _chain(lhs: dict[str, Any], rhs: dict[str, Any]) -> dict[str, Any]:
    return {"_type": "partial_chain", "lhs": lhs, "rhs": rhs}


_SELECT_BILL_LENGTH = _constructor(
    "combinators",
    "make_chain_tt",
    args=[
        _constructor("transformations", "make_select_column", kwargs={"key": "bill_length_mm", "TOA": "String"}),
        _constructor(
            "transformations",
            "make_split_dataframe",
            kwargs={"separator": ",", "col_names": {"_type": "list", "_items": PENGUIN_COLUMNS}},
        ),
    ],
)
_VARIANCE_PIPELINE = _SELECT_BILL_LENGTH
for _step in (
    _constructor("transformations", "then_cast_default", kwargs={"TOA": "f64"}),
    _constructor("transformations", "then_clamp", kwargs={"bounds": [30.0, 65.0]}),
    _constructor("transformations", "then_resize", kwargs={"size": 346, "constant": 43.61}),
    _constructor("transformations", "then_variance"),
    _constructor("measurements", "then_laplace", kwargs={"scale": 5.0}),
):
    _VARIANCE_PIPELINE = _chain(_VARIANCE_PIPELINE, _step)

OPENDP_JSON = json.dumps({"version": "0.10.0", "ast": _VARIANCE_PIPELINE})
"""Variance of bill_length_mm with Laplace noise, serialised by opendp_logger for opendp 0.10.0."""

DIFFPRIVLIB_JSON = json.dumps(
    {
        "module": "diffprivlib",
        "version": "0.6.4",
        "pipeline": [
            {
                "type": "_dpl_type:StandardScaler",
                "name": "scaler",
                "params": {
                    "with_mean": True,
                    "with_std": True,
                    "copy": True,
                    "epsilon": 0.5,
                    "bounds": {
                        "_tuple": True,
                        "_items": [[30.0, 13.0, 150.0, 2000.0], [65.0, 23.0, 250.0, 7000.0]],
                    },
                    "random_state": None,
                    "accountant": "_dpl_instance:BudgetAccountant",
                },
            },
            {
                "type": "_dpl_type:LogisticRegression",
                "name": "classifier",
                "params": {
                    "tol": 0.0001,
                    "C": 1.0,
                    "fit_intercept": True,
                    "random_state": None,
                    "max_iter": 100,
                    "verbose": 0,
                    "warm_start": False,
                    "n_jobs": None,
                    "epsilon": 1.0,
                    "data_norm": 83.69469642643347,
                    "accountant": "_dpl_instance:BudgetAccountant",
                },
            },
        ],
    }
)
"""StandardScaler (epsilon 0.5) then LogisticRegression (epsilon 1.0), by diffprivlib_logger 0.6.4."""

SMARTNOISE_SQL_QUERY: dict[str, Any] = {
    "query_str": "SELECT COUNT(*) AS NB_ROW FROM df",
    "dataset_name": PENGUIN,
    "epsilon": 0.1,
    "delta": 1e-05,
    "mechanisms": {"count": "gaussian"},
    "postprocess": True,
}
SMARTNOISE_SQL_COST: dict[str, Any] = {k: v for k, v in SMARTNOISE_SQL_QUERY.items() if k != "postprocess"}

OPENDP_QUERY: dict[str, Any] = {
    "dataset_name": PENGUIN,
    "opendp_json": OPENDP_JSON,
    "fixed_delta": 1e-05,
}
OPENDP_COST = dict(OPENDP_QUERY)

DIFFPRIVLIB_QUERY: dict[str, Any] = {
    "dataset_name": PENGUIN,
    "diffprivlib_json": DIFFPRIVLIB_JSON,
    "feature_columns": PENGUIN_FEATURES,
    "target_columns": ["species"],
    "test_size": 0.2,
    "test_train_split_seed": 4,
    "imputer_strategy": "drop",
}
DIFFPRIVLIB_COST = dict(DIFFPRIVLIB_QUERY)

SMARTNOISE_SYNTH_COST: dict[str, Any] = {
    "dataset_name": PENGUIN,
    "synth_name": "dpctgan",
    "epsilon": 0.1,
    "delta": 1e-05,
    "select_cols": [],
    "synth_params": {"embedding_dim": 128, "batch_size": 50, "epochs": 5},
    "nullable": True,
    "constraints": "",
}
SMARTNOISE_SYNTH_QUERY: dict[str, Any] = {
    **SMARTNOISE_SYNTH_COST,
    "return_model": True,
    "condition": "",
    "nb_samples": 200,
}

GET_DB_DATA: dict[str, Any] = {"dataset_name": PENGUIN}
GET_DUMMY_DATASET: dict[str, Any] = {"dataset_name": PENGUIN, **DUMMY}

QUERIES: dict[Library, dict[str, Any]] = {
    Library.SMARTNOISE_SQL: SMARTNOISE_SQL_QUERY,
    Library.OPENDP: OPENDP_QUERY,
    Library.DIFFPRIVLIB: DIFFPRIVLIB_QUERY,
    Library.SMARTNOISE_SYNTH: SMARTNOISE_SYNTH_QUERY,
}
"""The private-query body of each library's seed example (add DUMMY for the dummy routes)."""

COSTS: dict[Library, dict[str, Any]] = {
    Library.SMARTNOISE_SQL: SMARTNOISE_SQL_COST,
    Library.OPENDP: OPENDP_COST,
    Library.DIFFPRIVLIB: DIFFPRIVLIB_COST,
    Library.SMARTNOISE_SYNTH: SMARTNOISE_SYNTH_COST,
}
"""The cost-estimate body of each library's seed example."""


def payload_fields(library: Library, body: dict[str, Any]) -> dict[str, Any]:
    """The body's keys that belong to the library's payload model (route keys dropped)."""
    names = PAYLOAD_TYPES[Library(library)].model_fields
    return {k: v for k, v in body.items() if k in names}


def query_payload(library: Library, **changes: Any) -> dict[str, Any]:
    """The seed example's query payload for `library`, with some fields replaced."""
    return {**payload_fields(library, QUERIES[Library(library)]), **changes}


def cost_payload(library: Library, **changes: Any) -> dict[str, Any]:
    """The seed example's cost-route payload for `library`, with some fields replaced."""
    return {**payload_fields(library, COSTS[Library(library)]), **changes}
