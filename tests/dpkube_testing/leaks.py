"""Find what a released object must not carry, by walking everything reachable from it.

A release is unpickled as a client would, then walked through attributes, dicts, sequences,
arrays, frames, tensors, torch modules and scikit-learn trees. Each finding names the path and
the rule it breaks:

- an array, frame, index or list as long as a private table (the training split, the frame);
- an integral array summing to a private table's row count (exact counts or histograms), or an
  integer equal to a row count that the metadata does not give;
- a set of values drawn from a column's raw distinct values (the data's own values, as in
  classes learnt from a continuous target);
- a random generator or a seed (replayable noise).
"""

from __future__ import annotations

import io
import pickle
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

MIN_VALUES = 10
"""Fewest distinct raw values a set must hold to count as copied from the data."""
MIN_SHARE = 0.25
"""Smallest share of a column's raw distinct values such a set must cover."""


@dataclass(frozen=True)
class Private:
    """Facts about the private data that a release must not reveal."""

    lengths: frozenset[int]
    """Row counts of the private tables (frame, rows kept, training split)."""
    public_counts: frozenset[int]
    """Counts the metadata gives anyway (its row count, the public training size): not flagged as integers."""
    raw_values: dict[str, frozenset[Any]]
    """Per column, the raw distinct values that are not public (no categories, bounds left out)."""


def private_facts(frame: pd.DataFrame, train_lengths: set[int], public_counts: set[int],
                  public_values: dict[str, set[Any]]) -> Private:
    """The facts of `frame` a release must not carry; `public_values` are left out of each column's values."""
    raw = {
        name: frozenset(v for v in frame[name].dropna().unique().tolist() if v not in public_values.get(name, set()))
        for name in frame.columns
    }
    lengths = {len(frame), len(frame.dropna()), *train_lengths}
    return Private(frozenset(lengths), frozenset(public_counts), raw)


class _Recorder(pickle.Unpickler):
    def __init__(self, data: bytes) -> None:
        super().__init__(io.BytesIO(data))
        self.modules: set[str] = set()

    def find_class(self, module: str, name: str) -> Any:
        self.modules.add(module)
        return super().find_class(module, name)


def unpickle(data: bytes) -> tuple[Any, set[str]]:
    """The object and the modules its pickle imports (a client must not need dpkube)."""
    recorder = _Recorder(data)
    return recorder.load(), recorder.modules


def _children(value: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield f"[{key!r}]", item
    elif isinstance(value, list | tuple | set | frozenset):
        for index, item in enumerate(value):
            yield f"[{index}]", item
    elif type(value).__name__ == "Tree" and hasattr(value, "__getstate__"):
        yield ".__getstate__()", value.__getstate__()
    else:
        state = getattr(value, "__dict__", None)
        if isinstance(state, dict):
            for key, item in state.items():
                yield f".{key}", item


def _as_array(value: Any) -> np.ndarray | None:
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, pd.DataFrame | pd.Series | pd.Index):
        return value.to_numpy()
    if type(value).__module__.startswith("torch") and type(value).__name__ in ("Tensor", "Parameter"):
        return value.detach().cpu().numpy()
    return None


def _is_generator(value: Any) -> bool:
    name = type(value).__name__
    return isinstance(value, np.random.RandomState | np.random.Generator) or (
        type(value).__module__.startswith("torch") and name == "Generator" and hasattr(value, "get_state")
    )


def _value_findings(path: str, values: list[Any], private: Private) -> Iterator[str]:
    distinct = set()
    for v in values:
        if isinstance(v, np.generic):
            v = v.item()
        if isinstance(v, str | int | float) and not isinstance(v, bool):
            distinct.add(v)
    for column, raw in private.raw_values.items():
        copied = distinct & raw
        if raw and len(copied) >= MIN_VALUES and len(copied) >= MIN_SHARE * len(raw) and copied == distinct:
            yield f"{path}: {len(copied)} of the {len(raw)} raw distinct values of {column}"


def _array_findings(path: str, array: np.ndarray, private: Private) -> Iterator[str]:
    long = [axis for axis, size in enumerate(array.shape) if size in private.lengths]
    if long:
        yield f"{path}: shape {array.shape} has a private table's length on axis {long[0]}"
        return
    if array.dtype.kind in "iuf" and array.size >= 2:
        total = float(np.sum(array))
        integral = bool(np.all(np.isfinite(array))) and bool(np.all(np.mod(array, 1) == 0))
        if integral and total in private.lengths:
            yield f"{path}: integral values summing to the exact row count {int(total)}"
    if array.dtype.kind in "iufUO" and array.ndim == 1:
        yield from _value_findings(path, array.tolist(), private)


def _inert(value: Any) -> bool:
    """Values that cannot hold data: text, floats, classes, functions and modules."""
    inert = (bool, str, bytes, float, complex, type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType,
             types.MethodType)  # fmt: skip
    return value is None or isinstance(value, inert)


def findings(release: Any, private: Private, root: str = "release") -> list[str]:
    """Every place in `release` that breaks a rule of the module docstring."""
    found: list[str] = []
    seen: set[int] = set()
    stack: list[tuple[str, Any]] = [(root, release)]
    while stack:
        path, value = stack.pop()
        if _inert(value):
            continue
        if isinstance(value, int | np.integer):
            if path.endswith(".random_state"):
                found.append(f"{path}: a seed ({int(value)}) that replays the noise")
            elif int(value) in private.lengths and int(value) not in private.public_counts:
                found.append(f"{path}: the exact row count {int(value)}")
            continue
        if id(value) in seen:
            continue
        seen.add(id(value))
        if _is_generator(value):
            found.append(f"{path}: a random generator whose state replays the noise")
            continue
        array = _as_array(value)
        if array is not None:
            found.extend(_array_findings(path, array, private))
            continue
        if isinstance(value, list | tuple):
            if len(value) in private.lengths:
                found.append(f"{path}: {len(value)} items, a private table's length")
                continue
            found.extend(_value_findings(path, list(value), private))
        if type(value).__module__.startswith("torch") and hasattr(value, "state_dict"):
            stack.append((f"{path}.state_dict()", dict(value.state_dict())))
        stack.extend((path + step, child) for step, child in _children(value))
    return found


def recurring_findings(release: Callable[[], Any], private: Private, releases: int = 2) -> list[str]:
    """The findings that each of `releases` independent releases has.

    What a release is made to carry (an exact count, a forced sum, copied values, a per-row array) recurs every
    time. A noisy count's sum that lands on a private length by chance does not: diffprivlib draws its noise from
    the system's generator, which no seed fixes, and GaussianNB's counts at epsilon 0.05 sum to one in about 1 fit
    in 70.
    """
    found = findings(release(), private)
    for _ in range(releases - 1):
        if not found:
            break
        again = findings(release(), private)
        found = [finding for finding in found if finding in again]
    return found
