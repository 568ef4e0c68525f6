"""Lomas dataset metadata: the public facts (types, bounds, categories) every DP library relies on.

Metadata is what the engine may read without touching data: costs, dummy data and refusals are
computed from it alone. A broken file is refused here, with a message naming the field, rather
than surfacing later as a library error that may quote private values.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    Discriminator,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    Tag,
    model_validator,
)

from dpkube.models.base import KubeModel

SMARTNOISE_SQL_TABLE = "df"
"""The only table a SQL query may read; each dataset is exposed under this name."""

MAX_CATEGORIES = 10_000

PositiveCount = Annotated[int, Field(gt=0)]
Precision = Literal[32, 64]


class _Column(KubeModel):
    """Keys every column may carry (Lomas passes the `max_*` ones through, unused)."""

    private_id: StrictBool = False
    """The column identifies an individual (smartnoise-sql's private key)."""
    nullable: StrictBool = False
    """The column may hold missing values."""
    max_partition_length: PositiveCount | None = None
    """Largest number of rows of one partition (passed through to the libraries)."""
    max_influenced_partitions: PositiveCount | None = None
    """Most partitions one individual may appear in (passed through)."""
    max_partition_contributions: PositiveCount | None = None
    """Most rows one individual may contribute to a partition (passed through)."""


class _Categorical(_Column):
    cardinality: PositiveCount
    """Number of categories."""

    @model_validator(mode="after")
    def _categories_match_cardinality(self) -> _Categorical:
        categories = self.categories  # type: ignore[attr-defined]
        if len(categories) != self.cardinality:
            raise ValueError(f"categories has {len(categories)} values but cardinality is {self.cardinality}")
        if len(set(categories)) != len(categories):
            raise ValueError("categories must not repeat a value")
        return self


class _Bounded(_Column):
    @model_validator(mode="after")
    def _lower_not_above_upper(self) -> _Bounded:
        if self.lower > self.upper:  # type: ignore[attr-defined]
            raise ValueError(
                f"lower ({self.lower}) must not exceed upper ({self.upper})"  # type: ignore[attr-defined]
            )
        return self


class StrColumn(_Column):
    """Free text: no bounds, so only counts are meaningful."""

    type: Literal["string"]


class StrCategoricalColumn(_Categorical):
    """Text from a known, public set of categories."""

    type: Literal["string"]
    categories: list[StrictStr] = Field(min_length=1, max_length=MAX_CATEGORIES)
    """The categories, as text."""


class IntColumn(_Bounded):
    """A bounded integer."""

    type: Literal["int"]
    precision: Precision
    """Bits of the integer: 32 or 64."""
    lower: StrictInt
    """Smallest value."""
    upper: StrictInt
    """Largest value."""


class IntCategoricalColumn(_Categorical):
    """An integer code from a known, public set."""

    type: Literal["int"]
    precision: Precision
    """Bits of the integer: 32 or 64."""
    categories: list[StrictInt] = Field(min_length=1, max_length=MAX_CATEGORIES)
    """The codes, as integers."""


class FloatColumn(_Bounded):
    """A bounded real number."""

    type: Literal["float"]
    precision: Precision
    """Bits of the float: 32 or 64."""
    lower: float
    """Smallest value."""
    upper: float
    """Largest value."""


class BooleanColumn(_Column):
    """True or false."""

    type: Literal["boolean"]


class DatetimeColumn(_Bounded):
    """A timestamp between two bounds (ISO 8601)."""

    type: Literal["datetime"]
    lower: datetime
    """Earliest timestamp."""
    upper: datetime
    """Latest timestamp."""


_COLUMN_KINDS = ("string", "int", "float", "boolean", "datetime")


def _column_kind(value: Any) -> str | None:
    """Tell the column model apart by `type` and, for strings and ints, by `cardinality`."""
    if isinstance(value, dict):
        kind, categorical = value.get("type"), "cardinality" in value
    else:
        kind, categorical = getattr(value, "type", None), hasattr(value, "cardinality")
    if kind not in _COLUMN_KINDS:
        return None
    if kind in ("string", "int") and categorical:
        return f"{kind}_categorical"
    return str(kind)


Column = Annotated[
    Annotated[StrColumn, Tag("string")]
    | Annotated[StrCategoricalColumn, Tag("string_categorical")]
    | Annotated[IntColumn, Tag("int")]
    | Annotated[IntCategoricalColumn, Tag("int_categorical")]
    | Annotated[FloatColumn, Tag("float")]
    | Annotated[BooleanColumn, Tag("boolean")]
    | Annotated[DatetimeColumn, Tag("datetime")],
    Discriminator(
        _column_kind,
        custom_error_type="invalid_column_type",
        custom_error_message=f"type must be one of {', '.join(_COLUMN_KINDS)}",
        custom_error_context={"discriminator": "type"},
    ),
]
"""One column: its kind is chosen by `type` and the presence of `cardinality`."""


class Metadata(KubeModel):
    """A dataset's metadata in the Lomas 0.3 format (the YAML files admins register)."""

    max_ids: PositiveCount
    """Most rows one individual may contribute (the d_in of every DP computation)."""
    rows: PositiveCount
    """Number of rows, a public approximation (used for dummy data and synth checks)."""
    row_privacy: StrictBool
    """Each row is one individual."""
    censor_dims: StrictBool = False
    """smartnoise-sql hides GROUP BY keys with few rows."""
    columns: dict[Annotated[str, Field(min_length=1, max_length=256)], Column] = Field(min_length=1, max_length=1_000)
    """Columns in file order."""

    def lomas_dict(self) -> dict[str, Any]:
        """The `/get_dataset_metadata` response: defaults filled in, datetimes ISO, snake_case."""
        return self.model_dump(mode="json", by_alias=False)

    def smartnoise_sql(self) -> dict[str, Any]:
        """smartnoise-sql's metadata: the dataset as the one table `df`, only the keys it reads."""
        table: dict[str, Any] = {
            "max_ids": self.max_ids,
            "rows": self.rows,
            "row_privacy": self.row_privacy,
            "censor_dims": self.censor_dims,
        }
        for name, column in self.columns.items():
            entry: dict[str, Any] = {"type": column.type, "nullable": column.nullable}
            if column.private_id:
                entry["private_id"] = True
            if isinstance(column, IntColumn | FloatColumn):
                entry["lower"], entry["upper"] = column.lower, column.upper
            elif isinstance(column, DatetimeColumn):
                entry["lower"] = column.lower.isoformat()
                entry["upper"] = column.upper.isoformat()
            table[name] = entry
        return {"": {"": {SMARTNOISE_SQL_TABLE: table}}}

    def datetime_columns(self) -> list[str]:
        """Names of the datetime columns, in file order."""
        return [name for name, c in self.columns.items() if isinstance(c, DatetimeColumn)]
