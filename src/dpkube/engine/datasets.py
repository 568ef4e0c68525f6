"""Load a dataset by URI into a DataFrame typed by its metadata; name the shipped demo datasets.

URIs: `demo://NAME`, a local path (or `file://`), `http(s)://` and `s3://bucket/key` (credentials
from the environment); `.csv` (optionally `.gz`) and `.parquet` files. The frame holds exactly the
metadata's columns in metadata order (OpenDP pipelines read the table as header-less CSV). Nothing
here logs or quotes a value: a cell that does not parse is reported by column and type only.
"""

from __future__ import annotations

import csv
import gzip
import io
from functools import cache
from importlib import resources
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pandas as pd
import yaml

from dpkube.engine import s3
from dpkube.engine.errors import DatasetUnavailable
from dpkube.models.metadata import (
    BooleanColumn,
    Column,
    DatetimeColumn,
    FloatColumn,
    IntCategoricalColumn,
    IntColumn,
    Metadata,
)

MAX_DATASET_BYTES = 2 * 1024**3
"""Largest file the engine downloads or reads (2 GiB): a runner pod's memory is bounded."""

DEMO_SCHEME = "demo"
DEMO_DATASETS = {
    "PENGUIN": "penguin_metadata.yaml",
    "TITANIC": "titanic_metadata.yaml",
    "FSO_INCOME_SYNTHETIC": "fso_income_synthetic_metadata.yaml",
}
_TRUE, _FALSE = {"true", "1", "1.0", "t", "yes"}, {"false", "0", "0.0", "f", "no"}


def _demo_file(name: str) -> bytes:
    return (resources.files("dpkube.engine") / "demo" / name).read_bytes()


@cache
def demo_metadata(name: str) -> Metadata:
    """The metadata of a shipped demo dataset (parsed once per process)."""
    return Metadata.model_validate(yaml.safe_load(_demo_file(DEMO_DATASETS[name])))


def demo_datasets() -> dict[str, tuple[str | None, Metadata]]:
    """Demo name -> (URI, metadata); FSO_INCOME_SYNTHETIC has no URI: its data is not shipped."""
    return {
        name: (None if name == "FSO_INCOME_SYNTHETIC" else f"{DEMO_SCHEME}://{name}", demo_metadata(name))
        for name in DEMO_DATASETS
    }


def penguins_csv() -> bytes:
    """palmerpenguins' table reshaped into seaborn's penguins.csv (the file Lomas reads): no year, sex in
    capitals, measures as floats, sorted by species. Made with the csv module, not pandas: a runner loads it
    for every query on PENGUIN, and a pandas round trip (read, reshape, write, then parse again) took most of
    that load."""
    source = (resources.files("palmerpenguins") / "data" / "penguins.csv").read_text()
    rows = list(csv.reader(io.StringIO(source)))
    header, body = rows[0], rows[1:]
    measures = {"bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"}
    keep = [i for i, column in enumerate(header) if column != "year"]

    def cell(column: str, value: str) -> str:
        if value == "NA":
            return ""
        if column == "sex":
            return value.upper()
        return repr(float(value)) if column in measures else value

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([header[i] for i in keep])
    species = header.index("species")
    for row in sorted(body, key=lambda r: r[species]):
        writer.writerow([cell(header[i], row[i]) for i in keep])
    return out.getvalue().encode()


def _demo_bytes(name: str) -> tuple[bytes, str]:
    if name == "PENGUIN":
        return penguins_csv(), ".csv"
    if name == "TITANIC":
        return _demo_file("titanic.csv"), ".csv"
    if name == "FSO_INCOME_SYNTHETIC":
        raise DatasetUnavailable(
            "FSO_INCOME_SYNTHETIC's data is not shipped (about 2 million rows); "
            "use dummy data or register the real file under another URI"
        )
    raise DatasetUnavailable(f"unknown demo dataset {name!r}; demo datasets: {', '.join(DEMO_DATASETS)}")


def _read_bytes(uri: str) -> tuple[bytes, str]:
    """The raw file and the path it was named by (its suffix gives the format)."""
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme == DEMO_SCHEME:
        return _demo_bytes(parts.netloc)
    if scheme in ("http", "https"):
        return s3.fetch(uri, MAX_DATASET_BYTES), parts.path
    if scheme == "s3":
        key = unquote(parts.path.lstrip("/"))
        if not parts.netloc or not key:
            raise DatasetUnavailable("s3 URIs must look like s3://bucket/key")
        creds = s3.S3Credentials.from_env()
        return s3.get_object(parts.netloc, key, MAX_DATASET_BYTES, creds), key
    if scheme in ("", "file"):
        path = Path(unquote(parts.path) if scheme == "file" else uri)
        try:
            if path.stat().st_size > MAX_DATASET_BYTES:
                raise DatasetUnavailable(f"dataset is larger than {MAX_DATASET_BYTES} bytes")
            return path.read_bytes(), path.name
        except OSError as e:
            raise DatasetUnavailable(f"cannot read dataset file: {e.strerror}") from None
    raise DatasetUnavailable(f"unsupported dataset URI scheme {scheme!r}: use demo, file, http(s) or s3")


def _parse_table(data: bytes, name: str) -> pd.DataFrame:
    """Every cell as text (or missing), so each column is typed, and checked, by its metadata."""
    lower = name.lower()
    try:
        if lower.endswith((".parquet", ".pq")):
            frame = pd.read_parquet(io.BytesIO(data))
            return frame.astype("string")
        if lower.endswith(".gz"):
            data, lower = gzip.decompress(data), lower.removesuffix(".gz")
        if lower.endswith(".csv"):
            return pd.read_csv(io.BytesIO(data), dtype="string", keep_default_na=True)
    except Exception as e:
        raise DatasetUnavailable(f"dataset file is not readable as {Path(lower).suffix}: {type(e).__name__}") from None
    raise DatasetUnavailable("dataset files must end in .csv, .csv.gz or .parquet")


def _typed(values: pd.Series, column: Column) -> pd.Series:
    """One column converted to the pandas dtype its metadata declares (Lomas' dtypes)."""
    if isinstance(column, IntColumn | IntCategoricalColumn):
        numbers = pd.to_numeric(values)
        dtype = f"{'I' if column.nullable else 'i'}nt{column.precision}"
        return numbers.astype(dtype)
    if isinstance(column, FloatColumn):
        return pd.to_numeric(values).astype(f"float{column.precision}")
    if isinstance(column, BooleanColumn):
        lowered = values.str.strip().str.lower()
        unknown = lowered.notna() & ~lowered.isin(_TRUE | _FALSE)
        if unknown.any():
            raise ValueError("not a boolean")
        return lowered.map(lambda v: v in _TRUE if isinstance(v, str) else pd.NA).astype("boolean")
    if isinstance(column, DatetimeColumn):
        return pd.to_datetime(values, format="ISO8601")
    return values.astype("string")


def frame_from_bytes(data: bytes, name: str, metadata: Metadata) -> pd.DataFrame:
    """Parse a file's bytes into the metadata's columns, types and order."""
    raw = _parse_table(data, name)
    missing = [c for c in metadata.columns if c not in raw.columns]
    if missing:
        raise DatasetUnavailable(f"dataset lacks metadata columns: {', '.join(missing)}")
    typed = {}
    for name_, column in metadata.columns.items():
        is_int = isinstance(column, IntColumn | IntCategoricalColumn)
        if is_int and not column.nullable and raw[name_].isna().any():
            raise DatasetUnavailable(f"column {name_!r} has missing values but is int and not nullable")
        try:
            typed[name_] = _typed(raw[name_], column)
        except (ValueError, TypeError, OverflowError):
            raise DatasetUnavailable(f"column {name_!r} does not parse as {column.type}") from None
    return pd.DataFrame(typed)


def load_frame(uri: str, metadata: Metadata) -> pd.DataFrame:
    """The dataset at `uri`, typed by `metadata`; DatasetUnavailable if it cannot be had."""
    data, name = _read_bytes(uri)
    return frame_from_bytes(data, name, metadata)
