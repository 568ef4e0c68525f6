"""The MLproject convention: each entry point is one DP query, its `{param}` slots bound and typed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dpkube.api.services.dioptra.archives import Limits
from dpkube.api.services.dioptra.workflows import WorkflowError, find_project, parse_project, resolve, workflow_query
from dpkube.models import examples
from dpkube.models.payloads import Library
from dpkube_testing import hostile
from dpkube_testing.dioptra import workflow

EXAMPLE = Path(__file__).parents[3] / "examples" / "dioptra-workflow" / "MLproject"

PROJECT = b"""
name: t
entry_points:
  count:
    library: smartnoise-sql
    dataset: PENGUIN
    parameters:
      epsilon: {type: float, default: 0.1}
      rows: int
      column: {type: string, default: species}
      exact: {type: bool, default: false}
    payload:
      query_str: SELECT COUNT({column}) AS n FROM df LIMIT {rows}
      epsilon: "{epsilon}"
      delta: 0.00001
      postprocess: "{exact}"
"""


def project(text: bytes = PROJECT) -> dict:
    return parse_project(text)


def test_the_examples_first_entry_point_is_the_seed_sql_count_with_epsilon_as_a_parameter() -> None:
    document = parse_project(EXAMPLE.read_bytes())
    first = next(iter(document["entry_points"]))
    resolved = resolve(document, first, {"epsilon": "0.5"})
    assert resolved.library == Library.SMARTNOISE_SQL and resolved.dataset == examples.PENGUIN
    assert resolved.payload == {**examples.payload_fields(Library.SMARTNOISE_SQL, examples.SMARTNOISE_SQL_QUERY),
                                "epsilon": 0.5}


def test_kwargs_override_defaults_and_whole_placeholders_take_the_typed_value() -> None:
    resolved = resolve(project(), "count", {"epsilon": "1.5", "rows": "10", "exact": "true"})
    assert resolved.payload["epsilon"] == 1.5 and resolved.payload["postprocess"] is True
    assert resolved.parameters == {"epsilon": 1.5, "rows": 10, "column": "species", "exact": True}


def test_placeholders_inside_text_take_the_values_text() -> None:
    resolved = resolve(project(), "count", {"rows": "10"})
    assert resolved.payload["query_str"] == "SELECT COUNT(species) AS n FROM df LIMIT 10"


def test_an_undeclared_parameter_is_refused() -> None:
    with pytest.raises(WorkflowError, match=r"undeclared parameter.*sneaky"):
        resolve(project(), "count", {"rows": "1", "sneaky": "x"})


def test_a_parameter_without_value_or_default_is_refused() -> None:
    with pytest.raises(WorkflowError, match="'rows' has no value"):
        resolve(project(), "count", {})


@pytest.mark.parametrize(("key", "value"), [("epsilon", "lots"), ("epsilon", "nan"), ("rows", "1.5"),
                                            ("exact", "maybe")])
def test_a_badly_typed_value_is_refused(key, value) -> None:
    with pytest.raises(WorkflowError, match=f"'{key}'"):
        resolve(project(), "count", {"rows": "1", key: value})


def test_an_unknown_placeholder_is_refused() -> None:
    text = PROJECT.replace(b"FROM df", b"FROM {table}")
    with pytest.raises(WorkflowError, match=re.escape("placeholder {table}")):
        resolve(project(text), "count", {"rows": "1"})


def test_an_unknown_entry_point_is_refused() -> None:
    with pytest.raises(WorkflowError, match="unknown entry point"):
        resolve(project(), "train", {})


def test_a_shell_command_entry_point_is_refused() -> None:
    text = b"entry_points:\n  main:\n    command: python train.py\n"
    with pytest.raises(WorkflowError, match="shell command"):
        resolve(project(text), "main", {})


def test_an_unknown_library_is_refused() -> None:
    with pytest.raises(WorkflowError, match="library must be one of"):
        resolve(project(PROJECT.replace(b"smartnoise-sql", b"tensorflow")), "count", {"rows": "1"})


def test_invalid_yaml_is_refused() -> None:
    with pytest.raises(WorkflowError, match="not valid YAML"):
        parse_project(b"entry_points: [unclosed")


def test_yaml_tags_that_build_objects_are_refused() -> None:
    with pytest.raises(WorkflowError, match="not valid YAML"):
        parse_project(b"entry_points: !!python/object/apply:os.system ['true']")


def test_a_project_without_entry_points_is_refused() -> None:
    with pytest.raises(WorkflowError, match="entry_points"):
        parse_project(b"name: x\n")


def test_the_project_file_of_the_shallowest_directory_is_used() -> None:
    path, _ = find_project({"wf/deep/MLproject": b"entry_points: {}", "wf/MLproject": PROJECT})
    assert path == "wf/MLproject"


def test_an_archive_without_project_file_is_refused() -> None:
    with pytest.raises(WorkflowError, match="no project file"):
        find_project({"wf/train.py": b""})


@pytest.mark.parametrize("levels", [1, 9])
def test_yaml_aliases_are_refused(levels) -> None:
    with pytest.raises(WorkflowError, match="alias"):
        parse_project(hostile.alias_bomb(levels))


def test_an_anchor_without_alias_is_plain_yaml() -> None:
    assert parse_project(b"x: &a 1\nentry_points: {}\n") == {"x": 1, "entry_points": {}}


def test_a_merge_key_is_an_alias_and_is_refused() -> None:
    with pytest.raises(WorkflowError, match="alias"):
        parse_project(b"base: &b {library: opendp}\nentry_points:\n  e:\n    <<: *b\n")


def test_nesting_deeper_than_the_limit_is_refused() -> None:
    with pytest.raises(WorkflowError, match="nests deeper than 32"):
        parse_project(b"entry_points: {}\nx: " + b"[" * 40 + b"]" * 40 + b"\n")


def test_nesting_within_the_limit_is_accepted() -> None:
    assert parse_project(b"entry_points: {}\nx: " + b"[" * 30 + b"]" * 30 + b"\n")["entry_points"] == {}


def test_an_integer_too_long_to_convert_is_a_workflow_error() -> None:
    with pytest.raises(WorkflowError, match="not valid YAML"):
        parse_project(b"entry_points: {}\nx: " + b"9" * 5000 + b"\n")


def test_the_pool_job_reads_resolves_and_answers_the_query() -> None:
    resolved = workflow_query(workflow(PROJECT), Limits(), "count", {"rows": "5"})
    assert (resolved.library, resolved.payload["query_str"]) == (
        Library.SMARTNOISE_SQL, "SELECT COUNT(species) AS n FROM df LIMIT 5")
