"""Dummy data: random rows that follow the metadata, so users can try queries without budget.

Bit-exact with Lomas 0.3's method: one numpy generator seeded by the request, columns drawn in
metadata order, then five null draws per nullable column. Never reads the real data.
"""

from __future__ import annotations

import string
from typing import Any

import numpy as np
import pandas as pd

from dpkube.engine.errors import PayloadRejected
from dpkube.models.metadata import (
    BooleanColumn,
    Column,
    DatetimeColumn,
    FloatColumn,
    IntCategoricalColumn,
    IntColumn,
    Metadata,
    StrCategoricalColumn,
    StrColumn,
)

MIN_ROWS, MAX_ROWS = 1, 100_000
NULLS_PER_NULLABLE_COLUMN = 5
FREE_TEXT_CHARS = list(string.ascii_letters + string.digits)
DATETIME_FORMAT = "%Y-%m-%dT%H:%M:%S"


def _draw(column: Column, rng: np.random.Generator, n: int) -> pd.Series:
    """One column's values, consuming the generator exactly as Lomas does."""
    match column:
        case StrCategoricalColumn():
            return pd.Series(rng.choice(column.categories, n))
        case IntCategoricalColumn():
            return pd.Series(rng.choice(column.categories, n)).astype(f"int{column.precision}")
        case StrColumn():
            return pd.Series(rng.choice(FREE_TEXT_CHARS, n))
        case BooleanColumn():
            return pd.Series(rng.choice([True, False], n)).astype("boolean")
        case IntColumn():
            values = rng.integers(column.lower, column.upper, endpoint=True, size=n)
            return pd.Series(values).astype(f"int{column.precision}")
        case FloatColumn():
            unit = rng.random(n, dtype=np.float32 if column.precision == 32 else np.float64)
            return pd.Series(column.lower + (column.upper - column.lower) * unit)
        case DatetimeColumn():
            days = pd.date_range(column.lower, column.upper, freq="D")
            return pd.Series(rng.choice(days, n))
    raise TypeError(f"no dummy generator for {type(column).__name__}")


def dummy_frame(metadata: Metadata, nb_rows: int, seed: int) -> pd.DataFrame:
    """`nb_rows` random rows within the metadata's bounds and categories, deterministic in `seed`."""
    if not MIN_ROWS <= nb_rows <= MAX_ROWS:
        raise PayloadRejected(f"dummy_nb_rows must be between {MIN_ROWS} and {MAX_ROWS}, got {nb_rows}")
    rng = np.random.default_rng(seed)
    columns = {}
    for name, column in metadata.columns.items():
        values = _draw(column, rng, nb_rows)
        if column.nullable:
            if pd.api.types.is_integer_dtype(values.dtype):
                values = values.astype("float64")
            elif not isinstance(column, BooleanColumn | DatetimeColumn):
                values = values.astype(object)
            indexes = values.index.tolist()
            for _ in range(NULLS_PER_NULLABLE_COLUMN):
                values.at[rng.choice(indexes)] = None
        columns[name] = values
    return pd.DataFrame(columns)


_WIRE_DTYPES = {"string": "string", "int": "int", "float": "float", "boolean": "boolean"}


def _json_cell(value: Any) -> Any:
    """A JSON-safe cell: missing values become null (Lomas' NaN here was a 500)."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and np.isnan(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.strftime(DATETIME_FORMAT)
    if isinstance(value, np.generic):
        return value.item()
    return value


def dummy_dataset_response(metadata: Metadata, nb_rows: int, seed: int) -> dict[str, Any]:
    """The `/get_dummy_dataset` body: rows as dicts, wire dtypes and the datetime columns."""
    frame = dummy_frame(metadata, nb_rows, seed)
    rows = [
        {name: _json_cell(value) for name, value in zip(frame.columns, row, strict=True)}
        for row in frame.itertuples(index=False, name=None)
    ]
    dtypes = {name: _WIRE_DTYPES.get(column.type, "string") for name, column in metadata.columns.items()}
    return {"dummy_dict": rows, "dtypes": dtypes, "datetime_columns": metadata.datetime_columns()}
