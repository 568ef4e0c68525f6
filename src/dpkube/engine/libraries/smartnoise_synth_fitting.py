"""smartnoise-synth synthesizers trained over public facts where the library reads private ones.

- MWEM sizes each histogram axis by the smallest and largest code present in the data, and
  starts from a uniform histogram holding the exact row count. Here the axes span the public
  domain (the transformer's cardinalities) and the starting mass is the metadata's row count.
- DP-CTGAN draws conditional vectors from exact category frequencies and picks training rows
  by category, so rare categories are sampled far more often than the rate its accountant
  assumes. Here conditional vectors use uniform category weights and rows are drawn uniformly.
- DP-CTGAN's sample rate, steps per epoch and privacy log follow the training table's length,
  so that table is given exactly the metadata's row count (`public_size`).

These classes serve the fit only; releases are rebuilt into stock classes
(`smartnoise_synth_release`), so a client unpickles them without dpkube.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from snsynth.mwem import Histogram, MWEMSynthesizer
from snsynth.pytorch.nn import dpctgan as dpctgan_module
from snsynth.pytorch.nn.ctgan.data_sampler import DataSampler


class MWEM(MWEMSynthesizer):
    """MWEM over the public domain: histogram axes from the transformer, starting mass from the metadata."""

    public_rows: int
    cardinality: list[int]

    def _histogram_from_data_attributes(self, data: npt.NDArray[Any], splits: Any = ()) -> list[Histogram]:
        histograms = []
        for split in splits:
            columns = [int(i) for i in split]
            dims = [int(self.cardinality[i]) for i in columns]
            codes = np.clip(np.asarray(data[:, columns], dtype=np.float64).astype(np.int64), 0, np.array(dims) - 1)
            counts = Histogram.histogramdd_indexes(codes, dims).astype(np.float64)
            for column, size in zip(columns, dims, strict=True):
                self.mins_maxes[str(column)] = (0, size - 1)
                self.scale[str(column)] = 1
            histograms.append(Histogram(counts, dims, [np.arange(size + 1) for size in dims], columns))
        return histograms

    def _initialize_a(self, histogram: npt.NDArray[np.float64], dimensions: Any) -> npt.NDArray[np.float64]:
        return np.full(histogram.shape, self.public_rows / float(np.prod(dimensions)))


def public_category_weights(transformers: list[Any]) -> list[npt.NDArray[np.float64]]:
    """Uniform weights over each categorical output's categories, padded to the widest."""
    widths = [t.output_width for t in transformers if t.is_categorical]
    widest = max(widths, default=0)
    return [np.pad(np.full(width, 1.0 / width), (0, widest - width)) for width in widths]


class PublicDataSampler(DataSampler):
    """CTGAN's sampler with public category weights and uniform row draws (see the module docstring)."""

    def __init__(self, data: npt.NDArray[Any], transformers: list[Any], *ignore: Any, **kwargs: Any) -> None:
        super().__init__(data, transformers, discrete_column_category_prob=public_category_weights(transformers))

    def sample_data(self, n: int, col: Any, opt: Any) -> npt.NDArray[Any]:
        rows: npt.NDArray[Any] = super().sample_data(n, None, None)
        return rows


_sampler_lock = threading.Lock()


@contextmanager
def public_sampling() -> Iterator[None]:
    """DP-CTGAN trains with PublicDataSampler while the block runs (one such fit at a time)."""
    with _sampler_lock:
        stock = dpctgan_module.DataSampler
        dpctgan_module.DataSampler = PublicDataSampler
        try:
            yield
        finally:
            dpctgan_module.DataSampler = stock


def public_size(data: pd.DataFrame, rows: int, filler: pd.DataFrame) -> pd.DataFrame:
    """`data` with exactly `rows` rows: random rows left out, or rows of the public `filler` added.

    The data normally has the metadata's row count and is returned unchanged (reindexed).
    """
    if len(data) >= rows:
        return data.sample(n=rows).reset_index(drop=True) if len(data) > rows else data.reset_index(drop=True)
    extra = filler.iloc[np.arange(rows - len(data)) % len(filler)]
    return pd.concat([data.astype(object), extra.astype(object)], ignore_index=True)
