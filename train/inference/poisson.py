"""iP-VAE: Poisson posterior, membrane potential u = log rate, natural-gradient dynamics.

    z_t     ~ min(Poisson(exp(u_t)), max_spike_count)
    u_{t+1} = clamp(u_t + lr * (Phi^T D (x - Phi z_t) - b) - a (u_t - u_prior))
            = clamp(u_t + lr * (Phi^T D x - b) - lr * (Phi^T D Phi) z_t - a (u_t - u_prior))
    clamp: hard or soft at u_max, hard at u_min;  a = leak (ModelConfig.leak; 0 in the paper)

The Fisher information of Poisson(exp(u)) in u is exp(u); it cancels the exp(u) factor of the plain
gradient of the free energy, so the update is linear in the spikes (see tests/test_dynamics.py).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from ipvae.train.distributions import BatchShard, PoissonLatent, poisson_kl
from ipvae.train.inference.common import InferenceParams, LatentSample, clamp_potential, decode, reconstruction_drive


class PoissonState(NamedTuple):
    u: Tensor  # [B, K] membrane potential (log rate)


def initial_state(params: InferenceParams, batch_size: int) -> PoissonState:
    return PoissonState(u=params.u_prior.expand(batch_size, -1))  # [B, K]


def draw(
    state: PoissonState,
    params: InferenceParams,
    temperature: float,
    generator: torch.Generator | None,
    shard: BatchShard | None = None,
    fast_noise: bool = False,
) -> LatentSample:
    """z ~ q(state) without its reconstruction (``recon`` is None); ``fast_noise``: see ``PoissonLatent.rsample``."""
    posterior = PoissonLatent(state.u, params.max_spike_count, validate_args=False)  # u is finite by construction
    z = posterior.rsample(temperature=temperature, generator=generator, shard=shard, fast_noise=fast_noise)  # [B, K]
    return LatentSample(z=z, recon=None)


def sample(
    state: PoissonState, params: InferenceParams, temperature: float, generator: torch.Generator | None
) -> LatentSample:
    z = draw(state, params, temperature, generator).z  # [B, K]
    return LatentSample(z=z, recon=decode(z, params))


def update(state: PoissonState, latent: LatentSample, drive: Tensor, params: InferenceParams) -> PoissonState:
    """One step given the reconstruction drive Phi^T D (x - Phi z) [B, K] of the latent."""
    total_drive = drive - params.bias  # [B, K]
    u = state.u + params.step_size * total_drive  # [B, K]
    if params.leak:
        u = u - params.leak * (state.u - params.u_prior)  # [B, K] the restoring force toward the prior
    return PoissonState(u=clamp_potential(u, params))


def step(state: PoissonState, latent: LatentSample, x: Tensor, params: InferenceParams) -> PoissonState:
    return update(state, latent, reconstruction_drive(x, latent.recon, params), params)


def moved_start(params: InferenceParams, start_u: float | None, target_offset: float) -> tuple[Tensor, Tensor]:
    """(u_prior', b') [K] that run the same update from a start of ``start_u`` for every neuron (None: u_prior)
    with the leak pulling toward u_prior - ``target_offset`` (docs/sparsity.md: a start on the dense side of
    the fixed point keeps the code from getting denser with t).

    A leak toward u_prior - d from u_0 is the leak toward u_0 plus the constant a (u_0 - u_prior + d) per
    step, i.e. the bias b + a (u_0 - u_prior + d) / lr: two per-neuron tensors every export already carries.
    Needs a leak (a > 0) unless nothing moves, and every b' > 0 (the model stores log b)."""
    start = params.u_prior if start_u is None else torch.full_like(params.u_prior, start_u)  # [K]
    offset = start - params.u_prior + target_offset  # [K]
    if not params.leak and bool((offset != 0).any()):
        raise ValueError("without a leak the start cannot move apart from the leak's target")
    bias = params.bias + params.leak * offset / params.step_size  # [K]
    if bool((bias <= 0).any()):
        raise ValueError("the moved start needs a non-positive bias for some neurons")
    return start, bias


def kl(state: PoissonState, prior_state: PoissonState, params: InferenceParams) -> Tensor:
    return poisson_kl(state.u, prior_state.u).sum(dim=-1)  # [B]


def features(state: PoissonState) -> Tensor:
    return state.u.exp()  # [B, K] firing rates


def expected_code(state: PoissonState, params: InferenceParams) -> Tensor:
    """E[min(N, c)] for N ~ Poisson(r), r = exp(u):  c - sum_{n<c} (c - n) P(N = n).

    Decoding from rates must use the mean of the capped count: exp(u) itself exceeds the cap c for
    saturated neurons and would overshoot. The pmf is built by the recursion p_n = p_{n-1} r / n in
    float64 (c vector operations, no special functions).
    """
    cap = params.max_spike_count
    rate = state.u.double().exp()  # [B, K]
    probability = torch.exp(-rate)  # [B, K] P(N = 0)
    shortfall = cap * probability  # [B, K] sum_n (c - n) P(N = n)
    for n in range(1, cap):
        probability = probability * rate / n
        shortfall = shortfall + (cap - n) * probability
    return (cap - shortfall).to(state.u.dtype)


def potential(state: PoissonState) -> Tensor:
    return state.u
