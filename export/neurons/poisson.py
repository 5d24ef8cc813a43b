"""The iP-VAE's Poisson neuron: u is a log firing rate, the output a capped Poisson spike count per step.

The one definition of its arithmetic (docs/fixed_point.md, sections 4-6), called by the float reference,
the integer reference (ipvae.export.reference) and both Lava ProcessModels (ipvae.lava.proc.poisson.models):

float step   u := clamp(u + sum(inputs) - leak (u - u_prior)),
             clamp(y) = clip(y, u_min, u_max) (hard upper clamp) or max(u_min, u_max - softplus(u_max - y))
float sample z = #{n < cap : U >= floor(P(N <= n | exp(u)) 2**24)},  N ~ Poisson(exp(u))   (exact rate)
integer step u := clip(u + floor(drive 2**e_ff) + a_rec + bias - leak_term(u - u_prior, n), u_min, u_max)
             (the sum exact in int64, then saturated; leak_term: ipvae.export.spec, 0 for n = 0; e_ff one
             exponent or one per neuron; a_rec the whole lateral term, the self-inhibition included)
integer sample z = #{n < cap : U >= cdf[clip((u - u_min) >> (F - G), 0, n_idx - 1), n]}   (table lookup)
window start u := u_prior (and the drive register := 0)

The integer reference runs the compiled kernel ipvae.export.kernels.integrate_and_sample (``fused_int_step``)
in place of int_step + int_sample; tests/test_export_kernels.py pins it to these functions bit for bit.
"""

from __future__ import annotations

import numpy as np

from ipvae.export.neurons.base import FloatNeuronParams, IntegerNeuronParams, NeuronModel
from ipvae.export.sampler import build_cdf_table, lookup_counts, sample_counts_exact_rate
from ipvae.export.spec import NO_LEAK_SHIFT, leak_term, shift_by_exponent

NAME = "POISSON"  # layer/1/neuron/type of every export written so far


def window_start(u_prior: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """u at window step 0: u_prior for every image, [B, K] (a copy of u_prior's dtype)."""
    return np.broadcast_to(u_prior, shape).copy()


def soft_clamp(y: np.ndarray, low: float, high: float) -> np.ndarray:
    """The float model's clamp: max(low, high - softplus(high - y)) (softplus(v) = logaddexp(0, v), overflow-free)."""
    return np.maximum(low, high - np.logaddexp(0.0, high - y))


def float_clamp(y: np.ndarray, params: FloatNeuronParams) -> np.ndarray:
    """clip(y, u_min, u_max) with the hard upper clamp, else the soft clamp."""
    if params.hard_upper_clamp:
        return np.clip(y, params.u_min, params.u_max)
    return soft_clamp(y, params.u_min, params.u_max)


def float_step(u: np.ndarray, inputs, params: FloatNeuronParams) -> np.ndarray:
    """u [B, K] after one float step: u plus each input in order, minus the leak toward u_prior, clamped."""
    total = u
    for term in inputs:
        total = total + term  # [B, K]
    if params.leak:
        total = total - params.leak * (u - params.u_prior)  # [B, K] the restoring force toward the prior
    return float_clamp(total, params)


def float_sample(u: np.ndarray, uniforms: np.ndarray, params: FloatNeuronParams) -> np.ndarray:
    """Spike counts int16 [B, K] at the exact rate exp(u) (ipvae.export.sampler.sample_counts_exact_rate)."""
    return sample_counts_exact_rate(u, uniforms, params.max_spike_count)


def int_step(u: np.ndarray, drive: np.ndarray, a_rec: np.ndarray, params: IntegerNeuronParams) -> np.ndarray:
    """u int64 [B, K] after one integer step: clip(u + ff(drive) + a_rec + bias - leak, u_min, u_max)."""
    potential = u.astype(np.int64)  # [B, K] before this step's update
    feedforward = shift_by_exponent(drive.astype(np.int64), params.ff_exponent)  # [B, K]
    total = potential + feedforward + a_rec.astype(np.int64) + params.bias  # [B, K]
    if params.leak_shift != NO_LEAK_SHIFT:
        total -= leak_term(potential - params.u_prior, params.leak_shift)  # [B, K]
    return np.clip(total, params.u_min, params.u_max)


def int_sample(u: np.ndarray, uniforms: np.ndarray, params: IntegerNeuronParams) -> np.ndarray:
    """Spike counts int16 [B, K] by table lookup (ipvae.export.sampler.lookup_counts)."""
    return lookup_counts(u, uniforms, params.cdf, params.u_min, params.sampler_shift)


def fused_int_step(u: np.ndarray, drive: np.ndarray, a_rec: np.ndarray, params: IntegerNeuronParams,
                   active: np.ndarray, step_states: np.ndarray, integrate: bool, z_out: np.ndarray) -> None:
    """int_step + int_sample in place, compiled (ipvae.export.kernels): u int64 [B, K] is updated where
    ``integrate`` (not at window step 0) and ``active`` (images not stopped); z_out int16 [B, K] gets the
    counts (0 for stopped images). step_states [B]: the generator state of each image at this step."""
    from ipvae.export.kernels import integrate_and_sample  # numba compiles on first use: imported when needed

    a_in = shift_by_exponent(drive.astype(np.int64), params.ff_exponent) + a_rec if integrate else a_rec  # [B, K]
    integrate_and_sample(u, a_in, params.bias, params.u_prior, params.leak_shift, active, step_states, params.cdf,
                         params.u_min, params.u_max, params.sampler_shift, integrate, z_out)


POISSON = NeuronModel(
    name=NAME,
    build_table=build_cdf_table,
    window_start=window_start,
    float_step=float_step,
    float_sample=float_sample,
    int_step=int_step,
    int_sample=int_sample,
    fused_int_step=fused_int_step,
)
