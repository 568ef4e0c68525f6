"""Loading datasets by URI, typed by metadata, and the shipped demo registry."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from dpkube.engine.datasets import demo_datasets, frame_from_bytes, load_frame, penguins_csv
from dpkube.engine.errors import DatasetUnavailable
from dpkube.models.metadata import Metadata

SMALL = Metadata.model_validate(
    {
        "max_ids": 1,
        "rows": 3,
        "row_privacy": True,
        "columns": {
            "age": {"type": "int", "precision": 32, "lower": 0, "upper": 120},
            "ok": {"type": "boolean"},
            "when": {"type": "datetime", "lower": "2000-01-01", "upper": "2030-01-01"},
        },
    }
)
CSV = b"age,ok,when,secret\n30,true,2020-01-02,x\n40,0,2021-05-06,y\n"


def test_demo_registry_names_the_three_lomas_datasets() -> None:
    assert set(demo_datasets()) == {"PENGUIN", "TITANIC", "FSO_INCOME_SYNTHETIC"}


PENGUIN_CSV_SHA256 = "92da526b754b0a95edd6069aefcfc3c670ceecf61fc67f9aa1be0fc82fe342fe"
"""The demo PENGUIN file as pandas reshaped palmerpenguins' table before: made without pandas, it is unchanged."""


def test_the_demo_penguin_table_keeps_its_bytes() -> None:
    text = penguins_csv()
    lines = text.decode().splitlines()
    assert lines[:2] == ["species,island,bill_length_mm,bill_depth_mm,flipper_length_mm,body_mass_g,sex",
                         "Adelie,Torgersen,39.1,18.7,181.0,3750.0,MALE"]
    assert len(lines) == 345 and "Adelie,Torgersen,,,,," in lines
    assert hashlib.sha256(text).hexdigest() == PENGUIN_CSV_SHA256


def test_fso_income_has_metadata_but_no_data_uri() -> None:
    uri, metadata = demo_datasets()["FSO_INCOME_SYNTHETIC"]
    assert uri is None
    assert metadata.rows == 2032543


def test_fso_income_data_is_refused_as_not_shipped() -> None:
    metadata = demo_datasets()["FSO_INCOME_SYNTHETIC"][1]
    with pytest.raises(DatasetUnavailable, match="not shipped"):
        load_frame("demo://FSO_INCOME_SYNTHETIC", metadata)


def test_penguin_matches_seaborn_file(penguin_frame: pd.DataFrame) -> None:
    assert list(penguin_frame.columns) == [
        "species", "island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm",
        "body_mass_g", "sex",
    ]  # fmt: skip
    assert len(penguin_frame) == 344
    assert set(penguin_frame["sex"].dropna()) == {"MALE", "FEMALE"}
    assert penguin_frame.iloc[0]["bill_length_mm"] == 39.1
    assert penguin_frame.iloc[-1]["species"] == "Gentoo"


def test_penguin_keeps_missing_values_missing(penguin_frame: pd.DataFrame) -> None:
    assert penguin_frame["sex"].isna().sum() == 11
    assert penguin_frame["bill_length_mm"].isna().sum() == 2


def test_titanic_metadata_matches_csv_columns() -> None:
    uri, metadata = demo_datasets()["TITANIC"]
    frame = load_frame(uri, metadata)
    assert list(frame.columns) == list(metadata.columns)
    assert len(frame) == 887
    assert str(frame["Survived"].dtype) == "boolean"


def test_local_csv_is_typed_by_metadata_and_extra_columns_dropped(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_bytes(CSV)
    frame = load_frame(str(path), SMALL)
    assert list(frame.columns) == ["age", "ok", "when"]
    assert str(frame["age"].dtype) == "int32"
    assert frame["ok"].tolist() == [True, False]
    assert str(frame["when"].dtype).startswith("datetime64")


def test_gzipped_csv_and_file_uri_are_read(tmp_path: Path) -> None:
    path = tmp_path / "data.csv.gz"
    path.write_bytes(gzip.compress(CSV))
    assert len(load_frame(path.as_uri(), SMALL)) == 2


def test_parquet_is_read(tmp_path: Path) -> None:
    path = tmp_path / "data.parquet"
    frame_from_bytes(CSV, "x.csv", SMALL).to_parquet(path)
    assert load_frame(str(path), SMALL)["age"].tolist() == [30, 40]


def test_unparsable_cell_is_reported_by_column_without_its_value() -> None:
    with pytest.raises(DatasetUnavailable) as error:
        frame_from_bytes(b"age,ok,when\nforty-two,true,2020-01-01\n", "a.csv", SMALL)
    assert "age" in error.value.message
    assert "forty-two" not in error.value.message


def test_missing_metadata_column_is_refused() -> None:
    with pytest.raises(DatasetUnavailable, match="lacks metadata columns: when"):
        frame_from_bytes(b"age,ok\n1,true\n", "a.csv", SMALL)


def test_unknown_scheme_is_refused() -> None:
    with pytest.raises(DatasetUnavailable, match="unsupported dataset URI scheme 'ftp'"):
        load_frame("ftp://host/data.csv", SMALL)


def test_unknown_format_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "data.xlsx"
    path.write_bytes(b"")
    with pytest.raises(DatasetUnavailable, match=r"\.csv, \.csv\.gz or \.parquet"):
        load_frame(str(path), SMALL)


def test_s3_without_credentials_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)
    with pytest.raises(DatasetUnavailable, match="AWS_ACCESS_KEY_ID"):
        load_frame("s3://bucket/data.csv", SMALL)


@pytest.fixture
def http_server() -> Iterator[tuple[str, list[dict[str, str]]]]:
    """A loopback HTTP server serving CSV at any path and recording request headers."""
    seen: list[dict[str, str]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append({k.lower(): v for k, v in self.headers.items()})
            status = 404 if "missing" in self.path else 200
            self.send_response(status)
            self.end_headers()
            if status == 200:
                self.wfile.write(CSV)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", seen
    server.shutdown()


def test_http_csv_is_downloaded(http_server: tuple[str, list]) -> None:
    url, _ = http_server
    assert len(load_frame(f"{url}/data.csv", SMALL)) == 2


def test_http_error_status_is_reported(http_server: tuple[str, list]) -> None:
    url, _ = http_server
    with pytest.raises(DatasetUnavailable, match="HTTP 404"):
        load_frame(f"{url}/missing.csv", SMALL)


def test_s3_object_is_fetched_path_style_with_a_signature(
    http_server: tuple[str, list], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, seen = http_server
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKID")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.setenv("AWS_ENDPOINT_URL", url)
    assert len(load_frame("s3://bucket/dir/data.csv", SMALL)) == 2
    assert seen[-1]["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKID/")
