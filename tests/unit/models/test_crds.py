"""The CRDs in crds/ are generated from the models and structural."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dpkube.cli.manifests import render_crds
from dpkube.models.dpquery import DPQuerySpec
from dpkube.models.kinds import KINDS

CRDS = Path(__file__).resolve().parents[3] / "crds"


def test_committed_crds_match_the_models() -> None:
    committed = {path.name: path.read_text() for path in CRDS.glob("*.yaml")}
    assert committed == render_crds(), "crds/ is stale: run `make crds`"


def _walk(schema: dict, path: str = ""):
    yield path, schema
    for name, prop in schema.get("properties", {}).items():
        yield from _walk(prop, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        yield from _walk(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from _walk(schema["additionalProperties"], f"{path}{{}}")


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
def test_every_field_is_typed_and_described(kind) -> None:
    schema = kind.crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for section in ("spec", "status"):
        for path, node in _walk(schema["properties"][section], section):
            assert "$ref" not in node and "anyOf" not in node, path
            assert "type" in node or node.get("x-kubernetes-preserve-unknown-fields"), path
            if path.count(".") >= 1 and not path.endswith(("{}", "[]")):
                assert node.get("description"), f"{kind.kind}.{path} has no description"


def test_dpquery_spec_refuses_two_payloads_in_python_too() -> None:
    with pytest.raises(ValueError, match="exactly one payload"):
        DPQuerySpec.model_validate({
            "user": "alice", "dataset": "PENGUIN", "library": "opendp",
            "opendp": {"opendpJson": "{}"},
            "smartnoiseSql": {"queryStr": "SELECT COUNT(*) FROM df", "epsilon": 1, "delta": 1e-5},
        })


def test_dpquery_spec_reads_camel_case_and_snake_case_alike() -> None:
    body = {"user": "alice", "dataset": "PENGUIN", "library": "smartnoise-sql",
            "smartnoise_sql": {"query_str": "SELECT COUNT(*) FROM df", "epsilon": 1, "delta": 1e-5}}
    spec = DPQuerySpec.model_validate(body)
    assert spec.to_kube()["smartnoiseSql"]["queryStr"] == "SELECT COUNT(*) FROM df"
    assert DPQuerySpec.model_validate(spec.to_kube()) == spec


def test_crd_manifests_are_valid_yaml_documents() -> None:
    for text in render_crds().values():
        assert yaml.safe_load(text)["kind"] == "CustomResourceDefinition"


def test_committed_examples_match_the_models_and_seed() -> None:
    from dpkube.cli.manifests import render_examples

    examples = Path(__file__).resolve().parents[3] / "examples"
    committed = {path.name: path.read_text() for path in examples.glob("*.yaml")}
    assert committed == render_examples(), "examples/ is stale: run `make crds`"
