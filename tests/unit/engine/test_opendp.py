"""OpenDP: the seed pipeline, its privacy map as the charge, and the constructor allowlist."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import pytest

from dpkube.engine.cost import estimate_cost
from dpkube.engine.errors import InvalidQuery, PayloadRejected
from dpkube.engine.libraries.opendp import measurement
from dpkube.engine.release import run_query
from dpkube.models.examples import OPENDP_JSON
from dpkube.models.examples import query_payload as seed_query
from dpkube.models.metadata import Metadata
from dpkube.models.payloads import Library, OpenDPPayload

OPENDP = Library.OPENDP
SEED_EPSILON = 0.7080924855500751


def constructor(module: str, func: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
    return {"_type": "constructor", "module": module, "func": func, "args": list(args), "kwargs": kwargs}


def pipeline(ast: dict[str, Any], version: str = "0.10.0") -> str:
    return json.dumps({"version": version, "ast": ast})


def bounded_sum(measurement: dict[str, Any]) -> dict[str, Any]:
    """Sum of bill_length_mm clamped to [30, 65], then `measurement`."""
    split = constructor(
        "transformations", "make_split_dataframe", separator=",",
        col_names={"_type": "list", "_items": ["species", "island", "bill_length_mm"]},
    )  # fmt: skip
    select = constructor("transformations", "make_select_column", key="bill_length_mm", TOA="String")
    chain = constructor("combinators", "make_chain_tt", select, split)
    for step in (
        constructor("transformations", "then_cast_default", TOA="f64"),
        constructor("transformations", "then_clamp", bounds=[30.0, 65.0]),
        constructor("transformations", "then_sum"),
        measurement,
    ):
        chain = {"_type": "partial_chain", "lhs": chain, "rhs": step}
    return chain


def test_seed_example_releases_a_positive_number(penguin_metadata: Metadata, penguin_frame: pd.DataFrame) -> None:
    release = run_query(OPENDP, seed_query(OPENDP), penguin_metadata, penguin_frame)
    assert isinstance(release.response, float)
    assert release.response > 0


def test_seed_example_costs_its_privacy_map_at_max_ids(penguin_metadata: Metadata) -> None:
    payload = OpenDPPayload(opendp_json=OPENDP_JSON, fixed_delta=1e-5)
    cost = estimate_cost(OPENDP, payload, penguin_metadata)
    assert cost.epsilon == measurement(payload).map(penguin_metadata.max_ids) == SEED_EPSILON
    assert cost.delta == 0.0


def test_gaussian_is_read_off_its_curve_at_fixed_delta(penguin_metadata: Metadata) -> None:
    ast = bounded_sum(constructor("measurements", "then_gaussian", scale=100.0))
    cost = estimate_cost(OPENDP, {"opendp_json": pipeline(ast), "fixed_delta": 1e-6}, penguin_metadata)
    assert cost.delta == 1e-6
    assert cost.epsilon > 0


def test_a_zcdp_measurement_carries_the_rho_of_its_own_privacy_map(penguin_metadata: Metadata) -> None:
    payload = OpenDPPayload(opendp_json=pipeline(bounded_sum(constructor("measurements", "then_gaussian",
                                                                           scale=100.0))), fixed_delta=1e-6)
    cost = estimate_cost(OPENDP, payload, penguin_metadata)
    assert cost.rho == measurement(payload).map(penguin_metadata.max_ids)


def test_a_pure_dp_measurement_has_no_rho(penguin_metadata: Metadata) -> None:
    payload = OpenDPPayload(opendp_json=OPENDP_JSON, fixed_delta=1e-5)
    assert estimate_cost(OPENDP, payload, penguin_metadata).rho is None


def test_a_pure_dp_measurement_converted_to_zcdp_carries_its_rho(penguin_metadata: Metadata) -> None:
    ast = constructor("combinators", "make_pureDP_to_zCDP",
                      bounded_sum(constructor("measurements", "then_laplace", scale=100.0)))
    payload = OpenDPPayload(opendp_json=pipeline(ast), fixed_delta=1e-6)
    cost = estimate_cost(OPENDP, payload, penguin_metadata)
    assert cost.rho == measurement(payload).map(penguin_metadata.max_ids)


def test_gaussian_without_fixed_delta_is_refused(penguin_metadata: Metadata) -> None:
    ast = bounded_sum(constructor("measurements", "then_gaussian", scale=100.0))
    with pytest.raises(InvalidQuery, match="fixed_delta must be set for smooth max divergence"):
        estimate_cost(OPENDP, {"opendp_json": pipeline(ast)}, penguin_metadata)


def test_zcdp_converted_pipeline_charges_fixed_delta(penguin_metadata: Metadata) -> None:
    ast = constructor(
        "combinators", "make_zCDP_to_approxDP",
        bounded_sum(constructor("measurements", "then_gaussian", scale=100.0)),
    )  # fmt: skip
    cost = estimate_cost(OPENDP, {"opendp_json": pipeline(ast), "fixed_delta": 1e-6}, penguin_metadata)
    assert cost.delta == 1e-6


def test_transformation_is_refused_as_not_a_measurement(penguin_metadata: Metadata) -> None:
    ast = constructor(
        "transformations", "make_split_dataframe", separator=",", col_names={"_type": "list", "_items": ["a"]}
    )
    with pytest.raises(InvalidQuery, match="The pipeline provided is not a measurement"):
        estimate_cost(OPENDP, {"opendp_json": pipeline(ast)}, penguin_metadata)


def test_newer_version_line_is_accepted(penguin_metadata: Metadata) -> None:
    ast = json.loads(OPENDP_JSON)["ast"]
    cost = estimate_cost(OPENDP, {"opendp_json": pipeline(ast, "0.12.1")}, penguin_metadata)
    assert cost.epsilon == SEED_EPSILON


def test_newer_constructor_name_is_translated(penguin_metadata: Metadata) -> None:
    ast = constructor(
        "combinators", "make_composition", {"_type": "list", "_items": [json.loads(OPENDP_JSON)["ast"]] * 2}
    )
    cost = estimate_cost(OPENDP, {"opendp_json": pipeline(ast, "0.12.0")}, penguin_metadata)
    assert cost.epsilon == pytest.approx(2 * SEED_EPSILON)


def test_unsupported_version_is_rejected_naming_accepted_ones(penguin_metadata: Metadata) -> None:
    ast = json.loads(OPENDP_JSON)["ast"]
    with pytest.raises(PayloadRejected, match=r"version '0.9.2' is not supported; accepted: 0.10.x"):
        estimate_cost(OPENDP, {"opendp_json": pipeline(ast, "0.9.2")}, penguin_metadata)


@pytest.mark.parametrize(
    ("module", "func"),
    [
        ("transformations", "make_user_transformation"),
        ("measurements", "make_user_measurement"),
        ("combinators", "make_sequential_composition"),
        ("domains", "enable_features"),
        ("core", "new_function"),
        ("mod", "enable_features"),
    ],
)
def test_constructor_outside_allowlist_is_rejected(penguin_metadata: Metadata, module: str, func: str) -> None:
    with pytest.raises(PayloadRejected, match=f"opendp constructor {module}.{func} is not allowed"):
        estimate_cost(OPENDP, {"opendp_json": pipeline(constructor(module, func))}, penguin_metadata)


@pytest.mark.parametrize("name", [["transformations"], {"a": 1}])
def test_a_constructor_named_by_a_non_string_is_rejected(penguin_metadata: Metadata, name: Any) -> None:
    node = {**constructor("transformations", "make_split_dataframe"), "module": name}
    with pytest.raises(PayloadRejected, match="module and func must be strings"):
        estimate_cost(OPENDP, {"opendp_json": pipeline(node)}, penguin_metadata)


def test_unknown_node_type_is_rejected(penguin_metadata: Metadata) -> None:
    with pytest.raises(PayloadRejected, match="node type 'pickle' is not supported"):
        estimate_cost(OPENDP, {"opendp_json": pipeline({"_type": "pickle"})}, penguin_metadata)


def test_deep_ast_is_rejected(penguin_metadata: Metadata) -> None:
    ast: Any = 1.0
    for _ in range(100):
        ast = [ast]
    with pytest.raises(PayloadRejected, match="nested deeper than 64"):
        estimate_cost(OPENDP, {"opendp_json": pipeline(ast)}, penguin_metadata)


def test_invalid_json_is_rejected(penguin_metadata: Metadata) -> None:
    with pytest.raises(PayloadRejected, match="opendp_json is not valid JSON"):
        estimate_cost(OPENDP, {"opendp_json": "{not json"}, penguin_metadata)


def test_measurement_not_reading_csv_text_is_refused_before_reading(penguin_metadata: Metadata) -> None:
    floats = constructor("domains", "vector_domain", constructor("domains", "atom_domain", T="f64"))
    count = constructor("transformations", "make_count", floats, constructor("metrics", "symmetric_distance"))
    ast = {"_type": "partial_chain", "lhs": count, "rhs": constructor("measurements", "then_laplace", scale=1.0)}
    with pytest.raises(InvalidQuery, match=r"input domain must be AtomDomain\(T=String\), not VectorDomain"):
        estimate_cost(OPENDP, {"opendp_json": pipeline(ast)}, penguin_metadata)
