"""One sub-client per DP library, with the Lomas client's argument names and defaults.

Each has `query` (private, charged; `dummy=True` runs on dummy rows instead), `dummy_query` and `cost`.
Bodies are built here so the server sees exactly what a Lomas 0.3 client would send.
"""

from __future__ import annotations

import json
from typing import Any

from dpkube.client.connection import Connection

DUMMY_NB_ROWS = 100
DUMMY_SEED = 42


def _serialised(pipeline: Any) -> str:
    """A pipeline as the JSON text Lomas expects: text as is, a logger's object by its `to_json`, a dict dumped."""
    if isinstance(pipeline, str):
        return pipeline
    if hasattr(pipeline, "to_json"):
        return pipeline.to_json()
    return json.dumps(pipeline)


class LibraryClient:
    """The three routes of one library: /{name}_query, /dummy_{name}_query, /estimate_{name}_cost."""

    name = ""

    def __init__(self, connection: Connection, dataset_name: str) -> None:
        self.connection = connection
        self.dataset_name = dataset_name

    def _run(self, body: dict[str, Any], dummy: bool, nb_rows: int, seed: int) -> dict[str, Any]:
        body = {"dataset_name": self.dataset_name, **body}
        if dummy:
            return self.connection.query(f"/dummy_{self.name}_query",
                                         {**body, "dummy_nb_rows": nb_rows, "dummy_seed": seed})
        return self.connection.query(f"/{self.name}_query", body)

    def _cost(self, body: dict[str, Any]) -> dict[str, float]:
        return self.connection.post(f"/estimate_{self.name}_cost", {"dataset_name": self.dataset_name, **body})


class SmartnoiseSQL(LibraryClient):
    """SQL aggregates over the table `df`; answers come back as a DataFrame."""

    name = "smartnoise_sql"

    def query(self, query: str, epsilon: float, delta: float, mechanisms: dict[str, str] | None = None,
              postprocess: bool = True, dummy: bool = False, nb_rows: int = DUMMY_NB_ROWS,
              seed: int = DUMMY_SEED) -> dict[str, Any]:
        body = {"query_str": query, "epsilon": epsilon, "delta": delta, "mechanisms": mechanisms or {},
                "postprocess": postprocess}
        response = self._run(body, dummy, nb_rows, seed)
        return {**response, "query_response": _tight_frame(response["query_response"])}

    def dummy_query(self, query: str, epsilon: float, delta: float, mechanisms: dict[str, str] | None = None,
                    postprocess: bool = True, nb_rows: int = DUMMY_NB_ROWS, seed: int = DUMMY_SEED) -> dict[str, Any]:
        return self.query(query, epsilon, delta, mechanisms, postprocess, True, nb_rows, seed)

    def cost(self, query: str, epsilon: float, delta: float,
             mechanisms: dict[str, str] | None = None) -> dict[str, float]:
        return self._cost({"query_str": query, "epsilon": epsilon, "delta": delta, "mechanisms": mechanisms or {}})


class OpenDP(LibraryClient):
    """OpenDP measurements, sent as opendp_logger JSON (text, or an object with `to_json`)."""

    name = "opendp"

    def query(self, opendp_pipeline: Any, fixed_delta: float | None = None, dummy: bool = False,
              nb_rows: int = DUMMY_NB_ROWS, seed: int = DUMMY_SEED) -> dict[str, Any]:
        return self._run({"opendp_json": _serialised(opendp_pipeline), "fixed_delta": fixed_delta},
                         dummy, nb_rows, seed)

    def dummy_query(self, opendp_pipeline: Any, fixed_delta: float | None = None, nb_rows: int = DUMMY_NB_ROWS,
                    seed: int = DUMMY_SEED) -> dict[str, Any]:
        return self.query(opendp_pipeline, fixed_delta, True, nb_rows, seed)

    def cost(self, opendp_pipeline: Any, fixed_delta: float | None = None) -> dict[str, float]:
        return self._cost({"opendp_json": _serialised(opendp_pipeline), "fixed_delta": fixed_delta})


class DiffPrivLib(LibraryClient):
    """diffprivlib pipelines, sent as diffprivlib_logger JSON; the fitted model comes back pickled (base64)."""

    name = "diffprivlib"

    def _body(self, pipeline: Any, feature_columns: list[str], target_columns: list[str] | None,
              test_size: float, test_train_split_seed: int, imputer_strategy: str) -> dict[str, Any]:
        return {"diffprivlib_json": _serialised(pipeline), "feature_columns": feature_columns,
                "target_columns": target_columns, "test_size": test_size,
                "test_train_split_seed": test_train_split_seed, "imputer_strategy": imputer_strategy}

    def query(self, pipeline: Any, feature_columns: list[str], target_columns: list[str] | None = None,
              test_size: float = 0.2, test_train_split_seed: int = 1, imputer_strategy: str = "drop",
              dummy: bool = False, nb_rows: int = DUMMY_NB_ROWS, seed: int = DUMMY_SEED) -> dict[str, Any]:
        body = self._body(pipeline, feature_columns, target_columns, test_size, test_train_split_seed,
                          imputer_strategy)
        return self._run(body, dummy, nb_rows, seed)

    def dummy_query(self, pipeline: Any, feature_columns: list[str], target_columns: list[str] | None = None,
                    test_size: float = 0.2, test_train_split_seed: int = 1, imputer_strategy: str = "drop",
                    nb_rows: int = DUMMY_NB_ROWS, seed: int = DUMMY_SEED) -> dict[str, Any]:
        return self.query(pipeline, feature_columns, target_columns, test_size, test_train_split_seed,
                          imputer_strategy, True, nb_rows, seed)

    def cost(self, pipeline: Any, feature_columns: list[str], target_columns: list[str] | None = None,
             test_size: float = 0.2, test_train_split_seed: int = 1,
             imputer_strategy: str = "drop") -> dict[str, float]:
        return self._cost(self._body(pipeline, feature_columns, target_columns, test_size, test_train_split_seed,
                                     imputer_strategy))


class SmartnoiseSynth(LibraryClient):
    """Synthetic data: samples (list of rows) or the fitted synthesizer (pickled, base64)."""

    name = "smartnoise_synth"

    @staticmethod
    def _request(synth_name: str, epsilon: float, delta: float | None, select_cols: list[str] | None,
                 synth_params: dict[str, Any] | None, nullable: bool, constraints: Any) -> dict[str, Any]:
        return {"synth_name": synth_name, "epsilon": epsilon, "delta": delta, "select_cols": select_cols or [],
                "synth_params": synth_params or {}, "nullable": nullable,
                "constraints": _serialised(constraints) if constraints else ""}

    def query(self, synth_name: str, epsilon: float, delta: float | None = None,
              select_cols: list[str] | None = None, synth_params: dict[str, Any] | None = None,
              nullable: bool = True, constraints: Any = "", return_model: bool = False, condition: str = "",
              nb_samples: int = 200, dummy: bool = False, nb_rows: int = DUMMY_NB_ROWS,
              seed: int = DUMMY_SEED) -> dict[str, Any]:
        body = {**self._request(synth_name, epsilon, delta, select_cols, synth_params, nullable, constraints),
                "return_model": return_model, "condition": condition, "nb_samples": nb_samples}
        return self._run(body, dummy, nb_rows, seed)

    def dummy_query(self, synth_name: str, epsilon: float, delta: float | None = None,
                    select_cols: list[str] | None = None, synth_params: dict[str, Any] | None = None,
                    nullable: bool = True, constraints: Any = "", return_model: bool = False, condition: str = "",
                    nb_samples: int = 200, nb_rows: int = DUMMY_NB_ROWS, seed: int = DUMMY_SEED) -> dict[str, Any]:
        return self.query(synth_name, epsilon, delta, select_cols, synth_params, nullable, constraints,
                          return_model, condition, nb_samples, True, nb_rows, seed)

    def cost(self, synth_name: str, epsilon: float, delta: float | None = None,
             select_cols: list[str] | None = None, synth_params: dict[str, Any] | None = None,
             nullable: bool = True, constraints: Any = "") -> dict[str, float]:
        return self._cost(self._request(synth_name, epsilon, delta, select_cols, synth_params, nullable,
                                        constraints))


def _tight_frame(value: Any) -> Any:
    """smartnoise-sql's `to_dict(orient="tight")` answer as a DataFrame (pandas imported only here)."""
    if not isinstance(value, dict) or "columns" not in value or "data" not in value:
        return value
    import pandas as pd

    return pd.DataFrame.from_dict(value, orient="tight")
