"""Releases: JSON-safe responses, charges equal to estimates, seed examples as Lomas sends them."""

from __future__ import annotations

import hashlib
import json

import pandas as pd
import pytest

from dpkube.engine.cost import estimate_cost
from dpkube.engine.dummy import dummy_frame
from dpkube.engine.errors import PayloadRejected
from dpkube.engine.release import run_query, to_json
from dpkube.models.cost import Cost
from dpkube.models.examples import DIFFPRIVLIB_JSON, OPENDP_JSON, query_payload
from dpkube.models.metadata import Metadata
from dpkube.models.payloads import Library, OpenDPPayload

FAST = [Library.SMARTNOISE_SQL, Library.OPENDP, Library.DIFFPRIVLIB]


def test_seed_json_strings_are_byte_identical_to_lomas_examples() -> None:
    assert hashlib.sha256(OPENDP_JSON.encode()).hexdigest() == (
        "112e64bbb5b8e5a941f01c8a37b6adbc44f50d2a977d7702f7b32c96d6b97d2b"
    )
    assert hashlib.sha256(DIFFPRIVLIB_JSON.encode()).hexdigest() == (
        "563aac6192bcf12fac445344aa2ee07954f3dfa9cb489f5f42682dabe067db9e"
    )


@pytest.mark.parametrize("library", FAST)
def test_release_survives_a_strict_json_round_trip(
    library: Library, penguin_metadata: Metadata, penguin_frame: pd.DataFrame
) -> None:
    release = run_query(library, query_payload(library), penguin_metadata, penguin_frame)
    text = json.dumps(release.response, allow_nan=False)
    assert json.loads(text) == release.response


@pytest.mark.parametrize("library", FAST)
def test_release_is_charged_exactly_the_estimate(
    library: Library, penguin_metadata: Metadata, penguin_frame: pd.DataFrame
) -> None:
    release = run_query(library, query_payload(library), penguin_metadata, penguin_frame)
    assert release.cost == estimate_cost(library, query_payload(library), penguin_metadata)


@pytest.mark.parametrize("library", FAST)
def test_seed_example_runs_on_dummy_data(library: Library, penguin_metadata: Metadata) -> None:
    frame = dummy_frame(penguin_metadata, 100, 42)
    release = run_query(library, query_payload(library), penguin_metadata, frame)
    assert release.response is not None


def test_to_json_unwraps_numpy_and_nulls_nan() -> None:
    import numpy as np

    assert to_json({"a": (np.int64(1), np.float64("nan"), pd.NA)}) == {"a": [1, None, None]}


def test_cost_is_plain_floats() -> None:
    import numpy as np

    cost = Cost(np.float64(0.5), 0)
    assert type(cost.epsilon) is float and type(cost.delta) is float


def test_payload_model_of_another_library_is_rejected(penguin_metadata: Metadata) -> None:
    with pytest.raises(PayloadRejected, match="a smartnoise-sql query needs a SmartnoiseSQLPayload"):
        estimate_cost(Library.SMARTNOISE_SQL, OpenDPPayload(opendp_json="{}"), penguin_metadata)


def test_invalid_payload_dict_is_rejected_naming_the_field(penguin_metadata: Metadata) -> None:
    payload = query_payload(Library.SMARTNOISE_SQL, epsilon=-1)
    with pytest.raises(PayloadRejected, match="invalid smartnoise-sql payload: epsilon"):
        estimate_cost(Library.SMARTNOISE_SQL, payload, penguin_metadata)
