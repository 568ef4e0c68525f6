"""Fixtures for engine tests: the shipped PENGUIN dataset and builders for payloads."""

from __future__ import annotations

import pandas as pd
import pytest

from dpkube.engine.datasets import demo_datasets, load_frame
from dpkube.models.metadata import Metadata


@pytest.fixture(scope="session")
def penguin_metadata() -> Metadata:
    return demo_datasets()["PENGUIN"][1]


@pytest.fixture(scope="session")
def penguin_frame(penguin_metadata: Metadata) -> pd.DataFrame:
    return load_frame("demo://PENGUIN", penguin_metadata)
