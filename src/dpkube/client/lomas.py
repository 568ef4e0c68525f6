"""The Lomas-style client: one user on one dataset, the routes of a Lomas 0.3 server as methods."""

from __future__ import annotations

from typing import Any

import httpx

from dpkube.client.connection import DEFAULT_TIMEOUT, Connection, Progress
from dpkube.client.libraries import DUMMY_NB_ROWS, DUMMY_SEED, DiffPrivLib, OpenDP, SmartnoiseSQL, SmartnoiseSynth

PANDAS_DTYPES = {"string": "string", "int": "Int64", "float": "float64", "boolean": "boolean"}
"""Wire dtypes to pandas ones; nullable kinds, because dummy columns may hold nulls."""


class Client:
    """Authenticates with an API token (or, behind a trusted proxy, names the user in `user-name`). With
    `progress`, each query is followed while it runs and its progress (phase, queue position, elapsed time)
    handed to that callback."""

    def __init__(self, url: str, token: str | None = None, dataset_name: str = "PENGUIN", *,
                 user_name: str | None = None, timeout: float = DEFAULT_TIMEOUT,
                 transport: httpx.BaseTransport | None = None, progress: Progress | None = None) -> None:
        self.url = url
        self.dataset_name = dataset_name
        self.connection = Connection(url, token=token, user_name=user_name, timeout=timeout, transport=transport,
                                     progress=progress)
        self.smartnoise_sql = SmartnoiseSQL(self.connection, dataset_name)
        self.opendp = OpenDP(self.connection, dataset_name)
        self.diffprivlib = DiffPrivLib(self.connection, dataset_name)
        self.smartnoise_synth = SmartnoiseSynth(self.connection, dataset_name)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.connection.close()

    def _dataset(self, path: str) -> Any:
        return self.connection.post(path, {"dataset_name": self.dataset_name})

    def get_dataset_metadata(self) -> dict[str, Any]:
        """The dataset's metadata (columns, bounds, categories), which dummy data and queries follow."""
        return self._dataset("/get_dataset_metadata")

    def get_dummy_dataset(self, nb_rows: int = DUMMY_NB_ROWS, seed: int = DUMMY_SEED) -> Any:
        """Random rows that follow the metadata, as a DataFrame with the wire's dtypes (datetimes parsed)."""
        import pandas as pd

        answer = self.connection.post("/get_dummy_dataset", {"dataset_name": self.dataset_name,
                                                              "dummy_nb_rows": nb_rows, "dummy_seed": seed})
        frame = pd.DataFrame(answer["dummy_dict"], columns=list(answer["dtypes"]))
        for column, dtype in answer["dtypes"].items():
            if column in answer.get("datetime_columns", []):
                frame[column] = pd.to_datetime(frame[column])
            else:
                frame[column] = frame[column].astype(PANDAS_DTYPES.get(dtype, "object"))
        return frame

    def get_initial_budget(self) -> dict[str, float]:
        return self._dataset("/get_initial_budget")

    def get_total_spent_budget(self) -> dict[str, float]:
        return self._dataset("/get_total_spent_budget")

    def get_remaining_budget(self) -> dict[str, float]:
        return self._dataset("/get_remaining_budget")

    def get_previous_queries(self) -> list[dict[str, Any]]:
        """This user's successful private queries on the dataset, oldest first (Lomas archive records)."""
        return self._dataset("/get_previous_queries")["previous_queries"]
