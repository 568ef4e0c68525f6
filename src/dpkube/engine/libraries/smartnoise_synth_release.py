"""What a fitted synthesizer may carry out of the engine: a fresh stock object holding DP outputs only.

A fitted MWEM holds the label-encoded training table (`data`), exact histograms and the training
frame's index; a fitted DP-CTGAN holds the transformed training table and per-category row ids
(`_data_sampler`), exact category frequencies and losses computed on real rows. None of it is
copied. A release is built from:

- the request's parameters and the calibrated noise (public);
- a table transformer fitted on metadata alone (`_transformer`: categories, bounds);
- MWEM: each synthetic histogram, normalised to a distribution (the output of the noisy
  measurements and multiplicative weights), with its public axes and splits;
- DP-CTGAN: the generator's weights (trained only through the DP discriminator), a data sampler
  with no rows and uniform category weights, and the privacy log (a function of public facts).

Any synthesizer without such a rebuild is refused before the data is read (`RELEASABLE`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from snsynth.mwem import MWEMSynthesizer
from snsynth.pytorch.nn.ctgan.data_sampler import DataSampler
from snsynth.pytorch.nn.dpctgan import DPCTGAN, Generator
from snsynth.transform.table import TableTransformer

from dpkube.models.payloads import SynthName

RELEASABLE = (SynthName.MWEM, SynthName.DPCTGAN)
"""Synthesizers whose fitted model can be rebuilt from DP outputs and public facts."""

MWEM_PARAMS = ("q_count", "iterations", "split_factor", "marginal_width", "add_ranges", "measure_only",
               "max_retries_exp_mechanism", "mult_weights_iterations")  # fmt: skip
DPCTGAN_PARAMS = ("embedding_dim", "generator_dim", "discriminator_dim", "generator_lr", "generator_decay",
                  "discriminator_lr", "discriminator_decay", "batch_size", "discriminator_steps", "epochs", "pac",
                  "delta", "sigma", "max_per_sample_grad_norm", "loss")  # fmt: skip


def release_mwem(fitted: MWEMSynthesizer, transformer: TableTransformer, epsilon: float) -> MWEMSynthesizer:
    """A stock MWEMSynthesizer that samples from the synthetic histograms and nothing else."""
    clean = MWEMSynthesizer(epsilon=float(epsilon), **{k: getattr(fitted, k) for k in MWEM_PARAMS}, verbose=False)
    splits = [[int(i) for i in split] for split in fitted.splits]
    clean.splits = splits
    clean.synthetic_histograms = [
        (np.asarray(synthetic, dtype=np.float64) / float(np.sum(synthetic)), None, [int(i) for i in split])
        for synthetic, _, split in fitted.synthetic_histograms
    ]
    cardinality = transformer.cardinality
    clean.mins_maxes = {str(i): (0, int(size) - 1) for i, size in enumerate(cardinality)}
    clean.scale = {str(i): 1 for i in range(len(cardinality))}
    clean.max_iterations = int(fitted.max_iterations)
    clean.accountant = [float(spent) for spent in fitted.accountant]
    clean._transformer = transformer
    return clean


def release_dpctgan(fitted: DPCTGAN, transformer: TableTransformer, settings: dict[str, Any]) -> DPCTGAN:
    """A stock DPCTGAN: the trained generator's weights, a sampler with no rows, a public transformer."""
    clean = DPCTGAN(**{k: settings[k] for k in DPCTGAN_PARAMS if k in settings}, epsilon=float(fitted.epsilon),
                    cuda=False, verbose=False, disabled_dp=False)  # fmt: skip
    sampler = DataSampler(np.zeros((0, transformer.output_width)), transformer.transformers)
    generator = Generator(clean._embedding_dim + sampler.dim_cond_vec(), clean._generator_dim, transformer.output_width)
    generator.load_state_dict({k: v.detach().clone() for k, v in fitted._generator.state_dict().items()})
    generator.eval()
    clean._transformer = transformer
    clean._data_sampler = sampler
    clean._generator = generator
    clean.sigma = float(fitted.sigma)
    clean.epsilon_list = [float(e) for e in fitted.epsilon_list]
    clean.alpha_list = [float(a) for a in fitted.alpha_list]
    return clean
