"""A toy neuron variant, to show the seam: a Bernoulli neuron that resets to u_prior instead of saturating.

This one module is all a variant needs (ipvae.export.neurons): its functions, one NeuronModel value and one
register_neuron call. u is a log-odds: z = 1 with probability sigmoid(u) (the spec's cap must be 1); a step
that would take u above u_max puts it back at u_prior (a reset, where the Poisson neuron saturates); no leak.
The integer sampler is the Poisson neuron's table lookup on this neuron's own table.
"""

from __future__ import annotations

import numpy as np

from ipvae.export.neurons import poisson
from ipvae.export.neurons.base import FloatNeuronParams, IntegerNeuronParams, NeuronModel
from ipvae.export.neurons.registry import register_neuron
from ipvae.export.sampler import RNG_SCALE, bin_log_rates
from ipvae.export.spec import FixedPointSpec, shift_by_exponent

NAME = "TOY_BERNOULLI_RESET"


def build_table(spec: FixedPointSpec) -> np.ndarray:
    """cdf[idx, 0] = floor(P(z = 0 | log-odds at the bin centre) * 2**24) = floor(sigmoid(-v) * 2**24), uint32 [n_idx, 1]."""
    if spec.max_spike_count != 1:
        raise ValueError(f"a Bernoulli neuron sends 0 or 1 spike: max_spike_count must be 1, got {spec.max_spike_count}")
    log_odds = bin_log_rates(spec)  # [n_idx]
    return np.floor(RNG_SCALE / (1.0 + np.exp(log_odds)))[:, None].astype(np.uint32)


def reset_above(total: np.ndarray, u_prior: np.ndarray, u_min, u_max) -> np.ndarray:
    """u_prior where total > u_max, else max(total, u_min)."""
    return np.where(total > u_max, u_prior, np.maximum(total, u_min))


def float_step(u: np.ndarray, inputs, params: FloatNeuronParams) -> np.ndarray:
    total = u
    for term in inputs:
        total = total + term  # [B, K]
    return reset_above(total, params.u_prior, params.u_min, params.u_max)


def float_sample(u: np.ndarray, uniforms: np.ndarray, params: FloatNeuronParams) -> np.ndarray:
    """z = [U >= floor(sigmoid(-u) * 2**24)], int16 [B, K]."""
    return (uniforms.astype(np.float64) >= np.floor(RNG_SCALE / (1.0 + np.exp(u)))).astype(np.int16)


def int_step(u: np.ndarray, drive: np.ndarray, a_rec: np.ndarray, params: IntegerNeuronParams) -> np.ndarray:
    total = u.astype(np.int64) + shift_by_exponent(drive.astype(np.int64), params.ff_exponent) + a_rec + params.bias
    return reset_above(total, params.u_prior, params.u_min, params.u_max)


TOY = register_neuron(NeuronModel(
    name=NAME,
    build_table=build_table,
    window_start=poisson.window_start,
    float_step=float_step,
    float_sample=float_sample,
    int_step=int_step,
    int_sample=poisson.int_sample,
))
