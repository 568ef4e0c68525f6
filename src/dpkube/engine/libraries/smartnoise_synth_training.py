"""smartnoise-synth training: the half of the engine's synth module that needs torch and opacus.

Pricing never imports this module (see `smartnoise_synth.cost`), so the pricing workers never load
torch; a runner imports it when it trains, or ahead of time when it is a warm runner.
"""

from __future__ import annotations

import base64
import math
import pickle
import warnings
from typing import Any

import pandas as pd
from opacus import privacy_analysis
from snsynth import Synthesizer

from dpkube.engine.errors import ExternalLibraryError
from dpkube.engine.libraries.smartnoise_synth import (
    LIBRARY,
    OPACUS_ALPHAS,
    Plan,
    _dpctgan_settings,
    _nullable,
    _plan,
    _public_frame,
    _table_transformer,
)
from dpkube.engine.libraries.smartnoise_synth_fitting import MWEM, public_sampling, public_size
from dpkube.engine.libraries.smartnoise_synth_release import release_dpctgan, release_mwem
from dpkube.models.cost import Cost
from dpkube.models.metadata import BooleanColumn, IntCategoricalColumn, Metadata, StrCategoricalColumn, StrColumn
from dpkube.models.payloads import SmartnoiseSynthPayload, SynthName


def dpctgan_epsilon(epochs: int, rows: int, batch_size: int, sigma: float, delta: float, loss: str) -> float:
    """dpctgan's epsilon after `epochs` epochs, computed as its opacus engine does."""
    steps_per_epoch = max(rows // batch_size, 1) * (2 if loss == "cross_entropy" else 1)
    if epochs == 0:
        return 0.0
    rdp = privacy_analysis.compute_rdp(batch_size / rows, sigma, epochs * steps_per_epoch, OPACUS_ALPHAS)
    return float(privacy_analysis.get_privacy_spent(OPACUS_ALPHAS, rdp, delta)[0])


MAX_SIGMA = 10_000.0


def _calibrate_sigma(kwargs: dict[str, Any], epsilon: float, rows: int) -> float:
    """The requested noise multiplier, raised just enough for all epochs to fit in epsilon.

    `rows` is the metadata's row count, which the training table is given (so the released sigma
    says nothing about the data). If no noise can make the epochs fit (opacus' RDP-to-(epsilon,
    delta) conversion has a floor, about 0.103 at delta 1e-5), `epochs` is set to 0: the model is
    released untrained, which is what Lomas 0.3 silently did for the seed example (epsilon 0.1).
    """
    epochs, batch_size, sigma, loss = _dpctgan_settings(kwargs)

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


def _training_frame(frame: pd.DataFrame, plan: Plan, payload: SmartnoiseSynthPayload,
                    metadata: Metadata) -> pd.DataFrame:
    """The selected columns; categories outside the metadata become missing (never released), and
    rows missing a value where the request does not model missing values are left out."""
    data = frame[plan.columns].copy()
    for name in plan.columns:
        column = metadata.columns[name]
        if isinstance(column, StrCategoricalColumn | IntCategoricalColumn):
            data[name] = data[name].astype(object).where(data[name].isin(column.categories), None)
        elif isinstance(column, StrColumn | BooleanColumn):
            data[name] = data[name].astype(object).where(data[name].notna(), None)
    required = [c for c in plan.columns if not _nullable(c, payload, metadata)]
    data = data.dropna(subset=required)
    if plan.synth is SynthName.DPCTGAN:
        filler = _public_frame(plan.columns, metadata).iloc[:-1]
        data = public_size(data, metadata.rows, filler)
    return data


def _fit(plan: Plan, payload: SmartnoiseSynthPayload, metadata: Metadata, data: pd.DataFrame) -> Any:
    """The synthesizer fitted on `data` (see smartnoise_synth_fitting for what it reads besides rows)."""
    transformer = _table_transformer(plan, payload, metadata)
    try:
        if plan.synth is SynthName.MWEM:
            model = MWEM(epsilon=float(payload.epsilon), **plan.kwargs)
            model.public_rows, model.cardinality = metadata.rows, list(transformer.cardinality)
        else:
            model = Synthesizer.create(plan.synth.value, epsilon=float(payload.epsilon), **plan.kwargs)
    except Exception as e:
        raise ExternalLibraryError(LIBRARY, f"Error creating model: {e}") from None
    with warnings.catch_warnings(), public_sampling():
        warnings.simplefilter("ignore", UserWarning)
        try:
            model.fit(data, transformer=transformer, preprocessor_eps=0.0, nullable=payload.nullable)
        except Exception as e:
            raise ExternalLibraryError(LIBRARY, f"Error fitting model: {e}") from None
    return model


def run(payload: SmartnoiseSynthPayload, metadata: Metadata, frame: pd.DataFrame, charge: Cost) -> Any:
    """Samples as a list of row dicts (NaN as ""), or base64(pickle(synthesizer)); both come from the
    synthesizer rebuilt by `smartnoise_synth_release`, never from the fitted one."""
    plan = _plan(payload, metadata)
    if plan.synth is SynthName.DPCTGAN:
        plan.kwargs["sigma"] = _calibrate_sigma(plan.kwargs, payload.epsilon, metadata.rows)
    model = _fit(plan, payload, metadata, _training_frame(frame, plan, payload, metadata))
    public = _table_transformer(plan, payload, metadata)
    if plan.synth is SynthName.DPCTGAN:
        _verify_dpctgan(model, plan.kwargs, payload.epsilon, metadata.rows)
        release = release_dpctgan(model, public, plan.kwargs)
    else:
        if model.spent > payload.epsilon * (1 + 1e-9):
            raise ExternalLibraryError(LIBRARY, f"{plan.synth} spent more than epsilon; nothing was released")
        release = release_mwem(model, public, payload.epsilon)
    if payload.return_model:
        return base64.b64encode(pickle.dumps(release)).decode("ascii")
    try:
        if payload.condition:
            samples = release.sample_conditional(payload.nb_samples, payload.condition, column_names=plan.columns)
        else:
            samples = release.sample(payload.nb_samples)
    except Exception as e:
        raise ExternalLibraryError(LIBRARY, f"Error sampling model: {e}") from None
    samples = pd.DataFrame(samples, columns=plan.columns)
    return samples.astype(object).where(samples.notna(), "").to_dict(orient="records")
