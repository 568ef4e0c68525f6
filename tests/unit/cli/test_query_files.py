"""Query files: a DPQuery manifest or a Lomas body becomes the same query, sent to a route or created as a DPQuery."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from dpkube.cli import queryfile
from dpkube.models import examples
from dpkube.models.dpquery import Mode
from dpkube.models.payloads import Library

MANIFEST = {
    "apiVersion": "dpkube.io/v1alpha1",
    "kind": "DPQuery",
    "metadata": {"name": "penguin-count", "labels": {"team": "a"}},
    "spec": {"user": "alice", "dataset": "PENGUIN", "library": "smartnoise-sql", "queue": "default",
             "smartnoiseSql": {"queryStr": "SELECT COUNT(*) AS NB_ROW FROM df", "epsilon": 0.1, "delta": 1e-05,
                               "mechanisms": {"count": "gaussian"}}},
}


def write(tmp_path: Path, name: str, document: dict) -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(document) if name.endswith(".yaml") else json.dumps(document))
    return path


def test_a_manifest_is_sent_to_its_librarys_route_as_the_seed_body(tmp_path: Path) -> None:
    query = queryfile.load(write(tmp_path, "q.yaml", MANIFEST))
    assert (query.library, query.mode) == (Library.SMARTNOISE_SQL, Mode.QUERY)
    assert query.route() == "/smartnoise_sql_query"
    assert query.lomas_body() == examples.SMARTNOISE_SQL_QUERY


def test_a_lomas_body_needs_its_library(tmp_path: Path) -> None:
    path = write(tmp_path, "q.json", examples.SMARTNOISE_SQL_QUERY)
    with pytest.raises(ValueError, match="--library"):
        queryfile.load(path)
    assert queryfile.load(path, "smartnoise_sql").lomas_body() == examples.SMARTNOISE_SQL_QUERY


def test_the_mode_chooses_the_dummy_or_cost_route_and_its_fields(tmp_path: Path) -> None:
    path = write(tmp_path, "q.json", examples.SMARTNOISE_SYNTH_QUERY)
    dummy = queryfile.load(path, "smartnoise_synth", "dummy")
    assert dummy.route() == "/dummy_smartnoise_synth_query"
    assert dummy.lomas_body() == {**examples.SMARTNOISE_SYNTH_QUERY, **examples.DUMMY}
    cost = queryfile.load(path, "smartnoise_synth", "cost")
    assert cost.route() == "/estimate_smartnoise_synth_cost"
    assert cost.lomas_body() == examples.SMARTNOISE_SYNTH_COST


def test_dummy_fields_of_a_lomas_body_are_kept(tmp_path: Path) -> None:
    body = {**examples.OPENDP_QUERY, "dummy_nb_rows": 10, "dummy_seed": 7}
    query = queryfile.load(write(tmp_path, "q.json", body), "opendp", "dummy")
    assert query.lomas_body() == body


def test_a_lomas_body_becomes_a_dpquery_in_the_callers_name(tmp_path: Path) -> None:
    query = queryfile.load(write(tmp_path, "q.json", examples.DIFFPRIVLIB_QUERY), "diffprivlib")
    manifest = query.manifest("bob", "team-a")
    assert manifest["kind"] == "DPQuery" and manifest["metadata"]["namespace"] == "team-a"
    assert manifest["metadata"]["name"].startswith("cli-query-")
    assert manifest["spec"]["user"] == "bob" and manifest["spec"]["library"] == "diffprivlib"
    assert manifest["spec"]["diffprivlib"]["featureColumns"] == examples.PENGUIN_FEATURES


def test_a_manifest_keeps_its_name_labels_and_queue_but_not_its_user(tmp_path: Path) -> None:
    manifest = queryfile.load(write(tmp_path, "q.yaml", MANIFEST)).manifest("carol", "dpkube")
    assert manifest["metadata"] == {"name": "penguin-count", "labels": {"team": "a"}, "namespace": "dpkube"}
    assert manifest["spec"]["user"] == "carol" and manifest["spec"]["queue"] == "default"


def test_a_file_that_is_not_a_mapping_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "q.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(ValueError, match="mapping"):
        queryfile.load(path)
