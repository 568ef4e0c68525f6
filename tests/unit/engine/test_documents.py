"""JSON documents in payloads: parsed once, refused when nested deeper than any library should walk."""

from __future__ import annotations

import json

import pytest

from dpkube.engine import documents
from dpkube.engine.errors import PayloadRejected
from dpkube.engine.limits import MAX_JSON_DEPTH


def test_a_document_within_the_depth_is_parsed() -> None:
    text = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    assert documents.parse(text, "opendp_json") == json.loads(text)


def test_a_document_past_the_depth_is_refused_naming_the_field() -> None:
    depth = MAX_JSON_DEPTH + 1
    with pytest.raises(PayloadRejected, match="opendp_json is nested deeper than 64 levels"):
        documents.parse('{"a": ' + "[" * depth + "]" * depth + "}", "opendp_json")


def test_a_document_too_deep_for_the_json_decoder_is_refused_alike() -> None:
    with pytest.raises(PayloadRejected, match="nested deeper than"):
        documents.parse("[" * 100_000 + "]" * 100_000, "diffprivlib_json")
