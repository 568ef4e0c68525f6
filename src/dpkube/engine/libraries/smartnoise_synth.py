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

import inspect
import math
from dataclasses import dataclass
from typing import Any

import pandas as pd
from snsql.sql.parse import QueryParser
from snsynth import transform as sntransform
from snsynth.transform.datetime import DateTimeTransformer
from snsynth.transform.table import TableTransformer

from dpkube.engine import documents
from dpkube.engine.errors import InvalidQuery, PayloadRejected
from dpkube.models.cost import Cost
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
"""Synthesizers offered; each has a rebuild without training data in smartnoise_synth_release."""
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
    cls.__name__: cls
    for cls in (
        sntransform.LabelTransformer, sntransform.OneHotEncoder, sntransform.MinMaxTransformer,
        sntransform.BinTransformer, sntransform.ChainTransformer, DateTimeTransformer, sntransform.LogTransformer,
        sntransform.ClampTransformer, sntransform.DropTransformer, sntransform.AnonymizationTransformer,
    )
}  # fmt: skip
"""Constraint transformers accepted, by class name. snsynth's StandardScaler is left out: it always
spends epsilon on the data to estimate its mean and variance."""
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


CATEGORY_ONLY = {"LabelTransformer", "OneHotEncoder"}
"""Transformers that encode only the values seen at fit: the metadata's categories, so only on categorical columns."""
CATEGORICAL = (StrCategoricalColumn, IntCategoricalColumn, BooleanColumn)


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
    cls = TRANSFORMERS[name]
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
    if name in ("MinMaxTransformer", "BinTransformer") and (
        params.get("lower") is None or params.get("upper") is None
    ):
        raise PayloadRejected(f"constraints {where}: {name} needs lower and upper (bounds are not learnt from data)")
    try:
        return cls(**params)
    except Exception as e:
        raise PayloadRejected(f"constraints {where}: {name}: {e}") from None


def _transformer_names(transformer: Any) -> list[str]:
    """The class names in a transformer, chains flattened."""
    children = getattr(transformer, "transformers", None) if type(transformer).__name__ == "ChainTransformer" else None
    if children is None:
        return [type(transformer).__name__]
    return [name for child in children for name in _transformer_names(child)]


def _constraints(payload: SmartnoiseSynthPayload, columns: list[str], metadata: Metadata) -> dict[str, Any]:
    """Per-column transformers from the Lomas constraints JSON, built afresh (they keep fit state)."""
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
    built = {c: _transformer_node(node, c) for c, node in entries.items()}
    for name, transformer in built.items():
        category_only = sorted(CATEGORY_ONLY & set(_transformer_names(transformer)))
        if category_only and not isinstance(metadata.columns[name], CATEGORICAL):
            raise PayloadRejected(
                f"constraints {name}: {', '.join(category_only)} encodes only the categories of the metadata, "
                f"and {name} is a {metadata.columns[name].type} column without categories; use BinTransformer "
                "or MinMaxTransformer with its bounds"
            )
    return built


def _default_transformer(column: Any, cube: bool, nullable: bool) -> Any:
    """Lomas' defaults from metadata bounds: gan style scales and one-hot encodes, cube style
    (mwem) labels and bins into 10 buckets."""
    t = sntransform
    nullable = nullable or column.nullable
    if isinstance(column, StrCategoricalColumn | IntCategoricalColumn | BooleanColumn):
        label = t.LabelTransformer(nullable=nullable)
        return label if cube else t.ChainTransformer([label, t.OneHotEncoder()])
    lower: float
    upper: float
    first: list[Any]
    if isinstance(column, DatetimeColumn):
        lower, upper, first = 0, (column.upper - column.lower).days, [DateTimeTransformer(epoch=column.lower)]
    elif isinstance(column, IntColumn | FloatColumn):
        lower, upper, first = column.lower, column.upper, []
    else:
        return None
    if cube:
        last = t.BinTransformer(bins=10, lower=lower, upper=upper, nullable=nullable)
    else:
        last = t.MinMaxTransformer(lower=lower, upper=upper, nullable=nullable)
    return t.ChainTransformer([*first, last]) if first else last


@dataclass(frozen=True)
class Plan:
    """A request checked against the metadata: the synthesizer, its columns and its arguments."""

    synth: SynthName
    columns: list[str]
    kwargs: dict[str, Any]
    """The synthesizer's keyword arguments; counts the library would derive from the data come from the metadata."""


def _plan(payload: SmartnoiseSynthPayload, metadata: Metadata) -> Plan:
    """The columns and the synthesizer's keyword arguments, after every refusal the request decides."""
    synth = SynthName(payload.synth_name)
    if synth in REFUSED:
        refusal = PayloadRejected if synth is not SynthName.PACSYNTH else InvalidQuery
        raise refusal(REFUSED[synth])
    if synth is SynthName.MWEM and payload.delta is not None:
        raise InvalidQuery(
            "Error creating model: MWEMSynthesizer.__init__() got an unexpected keyword argument "
            "'delta' (mwem is pure epsilon-DP: send delta null)"
        )
    for reserved in ("epsilon", "delta", "cuda", "disabled_dp"):
        if reserved in payload.synth_params:
            raise PayloadRejected(f"synth_params may not set {reserved}: it is fixed by the request and the server")
    kwargs = {k: _check_param(synth, k, v) for k, v in payload.synth_params.items()}
    columns = _columns(payload, metadata)
    constraints = _constraints(payload, columns, metadata)
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
    if synth is SynthName.MWEM:
        kwargs.setdefault("iterations", math.ceil(math.log10(max(metadata.rows, 2))) * 10)
        kwargs.setdefault("marginal_width", 3 if metadata.rows > 10_000 else 2)
        kwargs["verbose"] = False
    if synth is SynthName.DPCTGAN:
        kwargs.update(delta=_delta(payload, metadata), disabled_dp=False, cuda=False, verbose=False)
        _, batch_size, _, _ = _dpctgan_settings(kwargs)
        if batch_size > metadata.rows:
            raise InvalidQuery(
                f"batch_size exceeds the number of rows ({metadata.rows} by the metadata). Try decreasing "
                "batch_size in synth_params (default batch_size=500)."
            )
        pac = kwargs.get("pac", 1)
        if batch_size % 2 or batch_size % pac:
            raise PayloadRejected("synth_params batch_size must be even and a multiple of pac")
    return Plan(synth, columns, kwargs)


MAX_MWEM_CELLS = 100_000
"""Largest histogram mwem may build for one split (its time grows with the cells)."""


def _table_transformer(plan: Plan, payload: SmartnoiseSynthPayload, metadata: Metadata) -> TableTransformer:
    """The table transformer, fitted on metadata alone (`_public_frame`): nothing it encodes depends on data."""
    cube = plan.synth is SynthName.MWEM
    constraints = _constraints(payload, plan.columns, metadata)
    transformer = TableTransformer(
        [constraints.get(c) or _default_transformer(metadata.columns[c], cube, payload.nullable) for c in plan.columns]
    )
    try:
        transformer.fit(_public_frame(plan.columns, metadata), epsilon=0.0)
    except Exception as e:
        raise PayloadRejected(f"constraints cannot be fitted on the metadata's bounds and categories: {e}") from None
    return transformer


def _probe_values(column: Any, nullable: bool) -> list[Any]:
    """Values of the column's declared type: every category, or bounds and points between them."""
    if isinstance(column, StrCategoricalColumn | IntCategoricalColumn):
        values: list[Any] = list(column.categories)
    elif isinstance(column, BooleanColumn):
        values = [True, False]
    elif isinstance(column, IntColumn):
        values = [column.lower + (column.upper - column.lower) * k // 7 for k in range(8)]
    elif isinstance(column, FloatColumn | DatetimeColumn):
        lower = pd.Timestamp(column.lower) if isinstance(column, DatetimeColumn) else column.lower
        upper = pd.Timestamp(column.upper) if isinstance(column, DatetimeColumn) else column.upper
        values = [lower + (upper - lower) * f for f in (0.0, 0.1, 0.37, 0.5, 0.61, 0.93, 1.0)]
    else:
        values = ["probe"]
    return values + ([None] if nullable or column.nullable else [])


def _check_transformer(plan: Plan, payload: SmartnoiseSynthPayload, metadata: Metadata,
                       transformer: TableTransformer) -> None:
    """Every column's transformer must encode and decode values of its declared type, and mwem's
    histograms must be discrete and bounded: failures found here cost nothing."""
    for name, column_transformer in zip(plan.columns, transformer.transformers, strict=True):
        column = metadata.columns[name]
        try:
            column_transformer.inverse_transform(column_transformer.transform(_probe_values(column, payload.nullable)))
        except Exception:
            raise PayloadRejected(
                f"constraints {name}: {type(column_transformer).__name__} fails on values of the column's declared "
                f"type ({column.type}, within its bounds or categories)"
            ) from None
    if plan.synth is SynthName.MWEM:
        _check_mwem_histograms(plan, transformer)


def _check_mwem_histograms(plan: Plan, transformer: TableTransformer) -> None:
    cardinality = transformer.cardinality
    if any(not isinstance(size, int) for size in cardinality) or len(cardinality) != transformer.output_width:
        raise PayloadRejected("mwem needs each column encoded as labels or bins by one transformer (datetime "
                              "columns and continuous or chained constraints cannot be used with mwem)")
    width = len(cardinality)
    splits = plan.kwargs.get("splits")
    if splits:
        flat = [i for split in splits for i in (split if isinstance(split, list) else [None])]
        if sorted(i for i in flat if isinstance(i, int) and not isinstance(i, bool)) != list(range(width)):
            raise PayloadRejected(
                f"synth_params splits must be lists of encoded column indices covering 0 to {width - 1} once each"
            )
    else:
        factor = plan.kwargs.get("split_factor") or width
        splits = [list(range(start, min(start + factor, width))) for start in range(0, width, factor)]
    cells = max(math.prod(cardinality[i] for i in split) for split in splits)
    if cells > MAX_MWEM_CELLS:
        raise PayloadRejected(
            f"mwem over these columns needs a histogram of {cells} cells (limit "
            f"{MAX_MWEM_CELLS}); select fewer columns or set synth_params splits"
        )


def _check_condition(condition: str) -> None:
    """A sampling condition parses as a WHERE clause (bounded first: the parser is slow on deep nesting)."""
    if not condition:
        return
    statement = f"SELECT * FROM df WHERE {condition}"
    try:
        QueryParser().query(statement)
    except Exception:
        raise PayloadRejected("condition is not a valid SQL WHERE clause") from None


def _delta(payload: SmartnoiseSynthPayload, metadata: Metadata) -> float:
    """The request's delta, else dpctgan's own default 1/(n sqrt n) with n the public row count."""
    if payload.delta is not None:
        return float(payload.delta)
    return 1 / (metadata.rows * math.sqrt(metadata.rows))


def cost(payload: SmartnoiseSynthPayload, metadata: Metadata) -> Cost:
    """The request's epsilon and the delta the synthesizer is given (0 for mwem), once every check
    the request and the metadata decide has passed."""
    plan = _plan(payload, metadata)
    _check_transformer(plan, payload, metadata, _table_transformer(plan, payload, metadata))
    _check_condition(payload.condition)
    if plan.synth is SynthName.MWEM:
        return Cost(payload.epsilon, 0.0)
    return Cost(payload.epsilon, _delta(payload, metadata))


def _dpctgan_settings(kwargs: dict[str, Any]) -> tuple[int, int, float, str]:
    """Epochs, batch size, noise multiplier and loss, with DPCTGAN's defaults."""
    return (
        kwargs.get("epochs", 300),
        kwargs.get("batch_size", 500),
        kwargs.get("sigma", 5),
        kwargs.get("loss", "cross_entropy"),
    )


def _nullable(name: str, payload: SmartnoiseSynthPayload, metadata: Metadata) -> bool:
    return payload.nullable or metadata.columns[name].nullable


def _public_frame(columns: list[str], metadata: Metadata) -> pd.DataFrame:
    """Rows made of metadata alone (every category, both bounds, then a row of nulls): transformers
    are fitted on these, so nothing they encode (labels, widths) depends on the private data."""
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
    """Samples as a list of row dicts (NaN as ""), or base64(pickle(synthesizer)); both come from the
    synthesizer rebuilt by `smartnoise_synth_release`, never from the fitted one."""
    from dpkube.engine.libraries import smartnoise_synth_training as training  # torch: only to train

    return training.run(payload, metadata, frame, charge)


def warm_up() -> None:
    """Import what training needs (torch, opacus), as a warm runner does before it claims a query;
    pricing never needs it, so the pricing workers stay light."""
    from dpkube.engine.libraries import smartnoise_synth_training  # noqa: F401
