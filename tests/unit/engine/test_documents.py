"""JSON documents in payloads: parsed once, refused when nested deeper than any library should walk."""

from __future__ import annotations

import pytest

from dpkube.engine import documents
from dpkube.engine.errors import PayloadRejected


def test_a_document_within_the_depth_is_parsed() -> None:
    text = "[" * documents.MAX_DEPTH + "]" * documents.MAX_DEPTH
    assert documents.depth(documents.parse(text, "opendp_json")) == documents.MAX_DEPTH


def test_a_document_past_the_depth_is_refused_naming_the_field() -> None:
    depth = documents.MAX_DEPTH + 1
    with pytest.raises(PayloadRejected, match="opendp_json is nested deeper than 64 levels"):
        documents.parse('{"a": ' + "[" * depth + "]" * depth + "}", "opendp_json")


def test_a_document_too_deep_for_the_json_decoder_is_refused_alike() -> None:
    with pytest.raises(PayloadRejected, match="nested deeper than"):
        documents.parse("[" * 100_000 + "]" * 100_000, "diffprivlib_json")


def test_depth_counts_arrays_and_objects_only() -> None:
    assert documents.depth({"a": [1, {"b": "x"}]}) == 3
    assert documents.depth("text") == 0
