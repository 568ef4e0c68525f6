"""Fixtures for the privacy battery: the shipped PENGUIN dataset, and fixed seeds for the process-wide
generators (Python's, numpy's, torch's). diffprivlib's mechanisms draw from the system's generator, which no
seed fixes, so a test of a diffprivlib release must hold for any noise (`recurring_findings`)."""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pytest
import torch

from dpkube.engine.datasets import demo_datasets, load_frame
from dpkube.models.metadata import Metadata


@pytest.fixture(scope="session")
def penguin_metadata() -> Metadata:
    return demo_datasets()["PENGUIN"][1]


@pytest.fixture(scope="session")
def penguin_frame(penguin_metadata: Metadata) -> pd.DataFrame:
    return load_frame("demo://PENGUIN", penguin_metadata)


@pytest.fixture(autouse=True)
def fixed_noise() -> None:
    random.seed(10)
    np.random.seed(10)
    torch.manual_seed(10)
