"""smartnoise-synth: synthetic rows (or the fitted model) that never cost more than requested.

The charge is the request's (epsilon, delta). Lomas charged what the synthesizer reported after
fitting, and dpctgan overshoots: it checks the budget before an epoch, not after. Here dpctgan's
noise multiplier (sigma) is raised in advance, with the same RDP accountant (opacus), just enough
for all requested epochs to fit the budget, and the epsilons it logs are checked against ours
before anything is released.
Synthesizers whose spend cannot be bounded in advance are refused: patectgan and pategan (their
PATE accountant is data-dependent and stops only after exceeding the budget), dpgan (same
overshoot as dpctgan, no epoch log to verify), aim and mst (need private-pgm's `mbi` at a git
commit that is not on PyPI) and pacsynth (a Rust panic, as in Lomas).
"""

from __future__ import annotations

import base64
import inspect
import math
import pickle
import warnings
from typing import Any

import pandas as pd
from opacus import privacy_analysis
from snsynth import Synthesizer
from snsynth import transform as sntransform
from snsynth.transform.table import TableTransformer

from dpkube.engine import documents
from dpkube.engine.cost import Cost
from dpkube.engine.errors import ExternalLibraryError, InvalidQuery, PayloadRejected
from dpkube.models.metadata import (
    BooleanColumn,
    DatetimeColumn,
    FloatColumn,
    IntCategoricalColumn,
    IntColumn,
    Metadata,
    StrCategoricalColumn,
    StrColumn,
)
from dpkube.models.payloads import Library, SmartnoiseSynthPayload, SynthName

LIBRARY = Library.SMARTNOISE_SYNTH
ACCEPTED_CONSTRAINT_VERSIONS = ("1.0",)

SUPPORTED = (SynthName.DPCTGAN, SynthName.MWEM)
REFUSED = {
    SynthName.PACSYNTH: "pacsynth synthesizer not supported due to Rust panic. Please select another Synthesizer.",
    SynthName.PATECTGAN: "patectgan is not supported: its PATE accountant is data-dependent and "
    "stops only after exceeding epsilon, so its spend cannot be bounded in advance",
    SynthName.PATEGAN: "pategan is not supported: its PATE accountant is data-dependent and "
    "stops only after exceeding epsilon, so its spend cannot be bounded in advance",
    SynthName.DPGAN: "dpgan is not supported: it checks its budget before each epoch, so its "
    "last epoch may exceed epsilon; use dpctgan",
    SynthName.AIM: "aim is not available in this deployment (it needs private-pgm's mbi, which is not on PyPI)",
    SynthName.MST: "mst is not available in this deployment (it needs private-pgm's mbi, which is not on PyPI)",
}

PARAMS: dict[SynthName, dict[str, tuple[type, float, float] | tuple[type]]] = {
    SynthName.DPCTGAN: {
        "embedding_dim": (int, 1, 512),
        "generator_dim": (tuple,),
        "discriminator_dim": (tuple,),
        "generator_lr": (float, 1e-6, 1.0),
        "generator_decay": (float, 0.0, 1.0),
        "discriminator_lr": (float, 1e-6, 1.0),
        "discriminator_decay": (float, 0.0, 1.0),
        "batch_size": (int, 2, 10_000),
        "discriminator_steps": (int, 1, 10),
        "epochs": (int, 1, 100),
        "pac": (int, 1, 10),
        "sigma": (float, 0.1, 100.0),
        "max_per_sample_grad_norm": (float, 1e-3, 100.0),
        "loss": (str,),
        "verbose": (bool,),
    },
    SynthName.MWEM: {
        "q_count": (int, 1, 10_000),
        "iterations": (int, 1, 1_000),
        "splits": (list,),
        "split_factor": (int, 1, 100),
        "marginal_width": (int, 1, 100),
        "add_ranges": (bool,),
        "measure_only": (bool,),
        "max_retries_exp_mechanism": (int, 1, 100),
        "mult_weights_iterations": (int, 1, 1_000),
        "verbose": (bool,),
    },
}
"""Accepted synth_params per synthesizer, with type and inclusive range (compute is bounded)."""
MAX_LAYERS, MAX_LAYER_WIDTH = 4, 1_024
LOSSES = ("cross_entropy", "wasserstein")

OPACUS_ALPHAS = [1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64))
"""The RDP orders dpctgan gives opacus (snsynth 1.0.4, dpctgan.py): our accounting must match."""

TRANSFORMERS = {
    "LabelTransformer", "OneHotEncoder", "MinMaxTransformer", "StandardScaler",
    "BinTransformer", "ChainTransformer", "DateTimeTransformer", "LogTransformer",
    "ClampTransformer", "DropTransformer", "AnonymizationTransformer",
}  # fmt: skip
"""Constraint transformers accepted (by class name in snsynth.transform)."""
HIDING_TRANSFORMERS = {"DropTransformer", "AnonymizationTransformer"}
TRANSFORMER_PREFIX = "_ssynth_transformer:"


def _check_param(synth: SynthName, name: str, value: Any) -> Any:
    spec = PARAMS[synth].get(name)
    if spec is None:
        raise PayloadRejected(
            f"synth_params {name!r} is not accepted for {synth}; accepted: " + ", ".join(sorted(PARAMS[synth]))
        )
    kind = spec[0]
    where = f"synth_params {name}"
    if kind is tuple:
        if (
            not isinstance(value, list)
            or not 1 <= len(value) <= MAX_LAYERS
            or not all(isinstance(v, int) and 1 <= v <= MAX_LAYER_WIDTH for v in value)
        ):
            raise PayloadRejected(f"{where} must list 1 to {MAX_LAYERS} layer widths in [1, {MAX_LAYER_WIDTH}]")
        return tuple(value)
    if kind is list:
        if not isinstance(value, list) or len(value) > 100:
            raise PayloadRejected(f"{where} must be a list of at most 100 items")
        return value
    if kind is bool:
        if not isinstance(value, bool):
            raise PayloadRejected(f"{where} must be true or false")
        return value
    if kind is str:
        if value not in LOSSES:
            raise PayloadRejected(f"{where} must be one of {', '.join(LOSSES)}")
        return value
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    if kind is int and not (isinstance(value, int) and not isinstance(value, bool)):
        raise PayloadRejected(f"{where} must be an integer")
    low, high = spec[1], spec[2]  # type: ignore[misc]
    if not numeric or not math.isfinite(value) or not low <= value <= high:
        raise PayloadRejected(f"{where} must be in [{low:g}, {high:g}]")
    return value


def _columns(payload: SmartnoiseSynthPayload, metadata: Metadata) -> list[str]:
    if not payload.select_cols:
        return list(metadata.columns)
    unknown = [c for c in payload.select_cols if c not in metadata.columns]
    if unknown:
        raise InvalidQuery(f"Error while selecting provided select_cols: {unknown}")
    return list(dict.fromkeys(payload.select_cols))


def _transformer_node(node: Any, where: str) -> Any:
    """One constraint transformer, allowlisted and built from JSON scalars; no epsilon spent."""
    if not isinstance(node, dict) or not isinstance(node.get("type"), str):
        raise PayloadRejected(f"constraints {where} must be {{'type': ..., 'params': ...}}")
    name = node["type"].removeprefix(TRANSFORMER_PREFIX)
    if not node["type"].startswith(TRANSFORMER_PREFIX) or name not in TRANSFORMERS:
        raise PayloadRejected(
            f"constraints {where}: transformer {node['type']!r} is not allowed; allowed: "
            + ", ".join(sorted(TRANSFORMERS))
        )
    cls = getattr(sntransform, name)
    params = node.get("params", {})
    if name == "ChainTransformer":
        if not isinstance(params, list) or not 1 <= len(params) <= 5:
            raise PayloadRejected(f"constraints {where}: a chain lists 1 to 5 transformers")
        return cls([_transformer_node(p, where) for p in params])
    if not isinstance(params, dict):
        raise PayloadRejected(f"constraints {where}: params must be an object")
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self", "args", "kwargs"}
    accepted -= {"epsilon", "odometer", "faker_setup"}
    bad = sorted(set(params) - accepted)
    if bad:
        raise PayloadRejected(
            f"constraints {where}: {name} does not accept {', '.join(bad)} "
            "(transformers may not spend epsilon on the data)"
        )
    if not all(v is None or isinstance(v, bool | int | float | str) for v in params.values()):
        raise PayloadRejected(f"constraints {where}: params must be JSON scalars")
    if name in ("MinMaxTransformer", "StandardScaler", "BinTransformer") and (
        params.get("lower") is None or params.get("upper") is None
    ):
        raise PayloadRejected(f"constraints {where}: {name} needs lower and upper (bounds are not learnt from data)")
    try:
        return cls(**params)
    except Exception as e:
        raise PayloadRejected(f"constraints {where}: {name}: {e}") from None


def _constraints(payload: SmartnoiseSynthPayload, columns: list[str]) -> dict[str, Any]:
    """Per-column transformers from the Lomas constraints JSON (applied whatever select_cols is)."""
    if not payload.constraints:
        return {}
    document = documents.parse(payload.constraints, "constraints")
    if not isinstance(document, dict) or document.get("module") != "smartnoise-synth":
        raise PayloadRejected('constraints must be {"module": "smartnoise-synth", ...}')
    documents.check_version(document.get("version"), "constraints", ACCEPTED_CONSTRAINT_VERSIONS)
    entries = document.get("constraints")
    if not isinstance(entries, dict):
        raise PayloadRejected("constraints.constraints must map columns to transformers")
    unknown = [c for c in entries if c not in columns]
    if unknown:
        raise InvalidQuery(f"constraints name columns that are not synthesised: {unknown}")
    return {c: _transformer_node(node, c) for c, node in entries.items()}


def _default_transformer(column: Any, cube: bool, nullable: bool) -> Any:
    """Lomas' defaults from metadata bounds: gan style scales and one-hot encodes, cube style
    (mwem) labels and bins into 10 buckets."""
    t = sntransform
    nullable = nullable or column.nullable
    if isinstance(column, StrCategoricalColumn | IntCategoricalColumn | BooleanColumn):
        label = t.LabelTransformer(nullable=nullable)
        return label if cube else t.ChainTransformer([label, t.OneHotEncoder()])
    if isinstance(column, DatetimeColumn):
        lower, upper, first = 0, (column.upper - column.lower).days, [t.DateTimeTransformer(epoch=column.lower)]
    elif isinstance(column, IntColumn | FloatColumn):
        lower, upper, first = column.lower, column.upper, []
    else:
        return None
    if cube:
        last = t.BinTransformer(bins=10, lower=lower, upper=upper, nullable=nullable)
    else:
        last = t.MinMaxTransformer(lower=lower, upper=upper, nullable=nullable)
    return t.ChainTransformer([*first, last]) if first else last


def _plan(payload: SmartnoiseSynthPayload, metadata: Metadata) -> tuple[list[str], dict[str, Any]]:
    """The columns and the synthesizer's keyword arguments, after every refusal."""
    synth = SynthName(payload.synth_name)
    if synth in REFUSED:
        refusal = PayloadRejected if synth is not SynthName.PACSYNTH else InvalidQuery
        raise refusal(REFUSED[synth])
    if synth is SynthName.MWEM and payload.delta is not None:
        raise ExternalLibraryError(
            LIBRARY,
            "Error creating model: MWEMSynthesizer.__init__() got an unexpected keyword argument "
            "'delta' (mwem is pure epsilon-DP: send delta null)",
        )
    for reserved in ("epsilon", "delta", "cuda", "disabled_dp"):
        if reserved in payload.synth_params:
            raise PayloadRejected(f"synth_params may not set {reserved}: it is fixed by the request and the server")
    kwargs = {k: _check_param(synth, k, v) for k, v in payload.synth_params.items()}
    columns = _columns(payload, metadata)
    constraints = _constraints(payload, columns)
    free_text = [
        c
        for c in columns
        if isinstance(metadata.columns[c], StrColumn) and type(constraints.get(c)).__name__ not in HIDING_TRANSFORMERS
    ]
    if free_text:
        raise PayloadRejected(
            f"free-text columns cannot be synthesised (their values are not public): "
            f"{', '.join(free_text)}; leave them out of select_cols or constrain them with "
            "DropTransformer or AnonymizationTransformer"
        )
    if synth is SynthName.MWEM and not kwargs.get("splits"):
        cells = math.prod(_cube_cardinality(metadata.columns[c], payload.nullable) for c in columns)
        if cells > MAX_MWEM_CELLS:
            raise PayloadRejected(
                f"mwem over these columns needs a histogram of {cells} cells (limit "
                f"{MAX_MWEM_CELLS}); select fewer columns or set synth_params splits"
            )
    if synth is SynthName.DPCTGAN:
        kwargs.update(delta=_delta(payload, metadata), disabled_dp=False, cuda=False, verbose=False)
    return columns, kwargs


MAX_MWEM_CELLS = 100_000
"""Largest joint histogram mwem may build without splits (its time grows with the cells)."""


def _cube_cardinality(column: Any, nullable: bool) -> int:
    """Cells of one column once labelled or binned (10 bins) by the cube-style defaults."""
    size = len(column.categories) if hasattr(column, "categories") else 10
    size = 2 if isinstance(column, BooleanColumn) else size
    return size + (1 if nullable or column.nullable else 0)


def _delta(payload: SmartnoiseSynthPayload, metadata: Metadata) -> float:
    """The request's delta, else dpctgan's own default 1/(n sqrt n) with n the public row count."""
    if payload.delta is not None:
        return float(payload.delta)
    return 1 / (metadata.rows * math.sqrt(metadata.rows))


def cost(payload: SmartnoiseSynthPayload, metadata: Metadata) -> Cost:
    """The request's epsilon and the delta the synthesizer is given (0 for mwem)."""
    _plan(payload, metadata)
    if payload.synth_name == SynthName.MWEM:
        return Cost(payload.epsilon, 0.0)
    return Cost(payload.epsilon, _delta(payload, metadata))


def dpctgan_epsilon(epochs: int, rows: int, batch_size: int, sigma: float, delta: float, loss: str) -> float:
    """dpctgan's epsilon after `epochs` epochs, computed as its opacus engine does."""
    steps_per_epoch = max(rows // batch_size, 1) * (2 if loss == "cross_entropy" else 1)
    if epochs == 0:
        return 0.0
    rdp = privacy_analysis.compute_rdp(batch_size / rows, sigma, epochs * steps_per_epoch, OPACUS_ALPHAS)
    return float(privacy_analysis.get_privacy_spent(OPACUS_ALPHAS, rdp, delta)[0])


def _dpctgan_settings(kwargs: dict[str, Any]) -> tuple[int, int, float, str]:
    """Epochs, batch size, noise multiplier and loss, with DPCTGAN's defaults."""
    return (
        kwargs.get("epochs", 300),
        kwargs.get("batch_size", 500),
        kwargs.get("sigma", 5),
        kwargs.get("loss", "cross_entropy"),
    )


MAX_SIGMA = 10_000.0


def _calibrate_sigma(kwargs: dict[str, Any], epsilon: float, rows: int) -> float:
    """The requested noise multiplier, raised just enough for all epochs to fit in epsilon.

    If no noise can make them fit (opacus' RDP-to-(epsilon, delta) conversion has a floor, about
    0.103 at delta 1e-5), `epochs` is set to 0: the model is released untrained, having read no
    row, which is what Lomas 0.3 silently did for the seed example (epsilon 0.1).
    """
    epochs, batch_size, sigma, loss = _dpctgan_settings(kwargs)
    if batch_size > rows:
        raise ExternalLibraryError(
            LIBRARY,
            "Error fitting model: batch_size exceeds the number of rows. Try decreasing "
            "batch_size in synth_params (default batch_size=500).",
        )

    def fits(s: float) -> bool:
        return dpctgan_epsilon(epochs, rows, batch_size, s, kwargs["delta"], loss) <= epsilon

    if fits(sigma):
        return float(sigma)
    low, high = float(sigma), MAX_SIGMA
    if not fits(high):
        kwargs["epochs"] = 0
        return float(sigma)
    for _ in range(50):
        middle = (low + high) / 2
        low, high = (low, middle) if fits(middle) else (middle, high)
    return high


def _verify_dpctgan(model: Any, kwargs: dict[str, Any], epsilon: float, rows: int) -> None:
    """The library's own epsilon log must match our accounting, and the total fit the budget.

    Entry 0 (before any step) is skipped: opacus reports the conversion floor there, not 0.
    """
    _, batch_size, sigma, loss = _dpctgan_settings(kwargs)
    logged = list(model.epsilon_list)
    for epoch, eps in enumerate(logged[1:], start=1):
        expected = dpctgan_epsilon(epoch, rows, batch_size, sigma, kwargs["delta"], loss)
        if not math.isclose(eps, expected, rel_tol=1e-6, abs_tol=1e-9):
            raise ExternalLibraryError(LIBRARY, "dpctgan's privacy log differs from the engine's; nothing was released")
    total = dpctgan_epsilon(len(logged), rows, batch_size, sigma, kwargs["delta"], loss)
    if total > epsilon * (1 + 1e-9):
        raise ExternalLibraryError(LIBRARY, "dpctgan spent more than epsilon; nothing was released")


def _training_frame(frame: pd.DataFrame, columns: list[str], metadata: Metadata) -> pd.DataFrame:
    """The selected columns; categories outside the metadata become missing (never released)."""
    data = frame[columns].copy()
    for name in columns:
        column = metadata.columns[name]
        if isinstance(column, StrCategoricalColumn | IntCategoricalColumn):
            data[name] = data[name].astype(object).where(data[name].isin(column.categories), None)
        elif isinstance(column, StrColumn | BooleanColumn):
            data[name] = data[name].astype(object).where(data[name].notna(), None)
    return data


def _public_frame(columns: list[str], metadata: Metadata) -> pd.DataFrame:
    """Rows made of metadata alone (every category, both bounds, a null): the transformer is
    fitted on these, so nothing it encodes (labels, widths) depends on the private data."""
    width = 2 + max(
        (len(c.categories) for c in metadata.columns.values() if hasattr(c, "categories")),
        default=0,
    )
    data: dict[str, list[Any]] = {}
    for name in columns:
        column = metadata.columns[name]
        if isinstance(column, StrCategoricalColumn | IntCategoricalColumn):
            values: list[Any] = list(column.categories)
        elif isinstance(column, BooleanColumn):
            values = [True, False]
        elif isinstance(column, IntColumn | FloatColumn | DatetimeColumn):
            values = [column.lower, column.upper]
        else:
            values = ["-"]
        data[name] = [values[i % len(values)] for i in range(width - 1)] + [None]
    return pd.DataFrame(data)


def run(payload: SmartnoiseSynthPayload, metadata: Metadata, frame: pd.DataFrame, charge: Cost) -> Any:
    """Samples as a list of row dicts (NaN as ""), or base64(pickle(synthesizer))."""
    columns, kwargs = _plan(payload, metadata)
    constraints = _constraints(payload, columns)
    data = _training_frame(frame, columns, metadata)
    synth = SynthName(payload.synth_name)
    cube = synth is SynthName.MWEM
    transformer = TableTransformer(
        [constraints.get(c) or _default_transformer(metadata.columns[c], cube, payload.nullable) for c in columns]
    )
    try:
        transformer.fit(_public_frame(columns, metadata), epsilon=0.0)
    except Exception as e:
        raise ExternalLibraryError(LIBRARY, f"Error fitting transformer on metadata: {e}") from None
    if synth is SynthName.DPCTGAN:
        kwargs["sigma"] = _calibrate_sigma(kwargs, payload.epsilon, len(data))
    try:
        model = Synthesizer.create(synth.value, epsilon=float(payload.epsilon), **kwargs)
    except Exception as e:
        raise ExternalLibraryError(LIBRARY, f"Error creating model: {e}") from None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        try:
            model.fit(data, transformer=transformer, preprocessor_eps=0.0, nullable=payload.nullable)
        except Exception as e:
            raise ExternalLibraryError(LIBRARY, f"Error fitting model: {e}") from None
    if synth is SynthName.DPCTGAN:
        _verify_dpctgan(model, kwargs, payload.epsilon, len(data))
    elif getattr(model, "epsilon", payload.epsilon) > payload.epsilon * (1 + 1e-9):
        raise ExternalLibraryError(LIBRARY, f"{synth} spent more than epsilon; nothing was released")
    if payload.return_model:
        return base64.b64encode(pickle.dumps(model)).decode("ascii")
    try:
        if payload.condition:
            samples = model.sample_conditional(payload.nb_samples, payload.condition)
        else:
            samples = model.sample(payload.nb_samples)
    except Exception as e:
        raise ExternalLibraryError(LIBRARY, f"Error sampling model: {e}") from None
    samples = pd.DataFrame(samples, columns=columns)
    return samples.astype(object).where(samples.notna(), "").to_dict(orient="records")
