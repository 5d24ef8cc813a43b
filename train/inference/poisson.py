"""iP-VAE: Poisson posterior, membrane potential u = log rate, natural-gradient dynamics.

    z_t     ~ min(Poisson(exp(u_t)), max_spike_count)
    u_{t+1} = clamp(u_t + lr * (Phi^T D (x - Phi z_t) - b))
            = clamp(u_t + lr * (Phi^T D x - b) - lr * (Phi^T D Phi) z_t)

The Fisher information of Poisson(exp(u)) in u is exp(u); it cancels the exp(u) factor of the plain
gradient of the free energy, so the update is linear in the spikes (see tests/test_dynamics.py).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from train.distributions import PoissonLatent, poisson_kl
from train.inference.common import InferenceParams, LatentSample, decode, reconstruction_drive, soft_clamp


class PoissonState(NamedTuple):
    u: Tensor  # [B, K] membrane potential (log rate)


def initial_state(params: InferenceParams, batch_size: int) -> PoissonState:
    return PoissonState(u=params.u_prior.expand(batch_size, -1))  # [B, K]


def sample(
    state: PoissonState, params: InferenceParams, temperature: float, generator: torch.Generator | None
) -> LatentSample:
    posterior = PoissonLatent(state.u, params.max_spike_count)
    z = posterior.rsample(temperature=temperature, generator=generator)  # [B, K]
    return LatentSample(z=z, recon=decode(z, params))


def step(state: PoissonState, latent: LatentSample, x: Tensor, params: InferenceParams) -> PoissonState:
    drive = reconstruction_drive(x, latent.recon, params) - params.bias  # [B, K]
    return PoissonState(u=soft_clamp(state.u + params.step_size * drive, params.u_min, params.u_max))


def kl(state: PoissonState, prior_state: PoissonState, params: InferenceParams) -> Tensor:
    return poisson_kl(state.u, prior_state.u).sum(dim=-1)  # [B]


def features(state: PoissonState) -> Tensor:
    return state.u.exp()  # [B, K] firing rates


def expected_code(state: PoissonState, params: InferenceParams) -> Tensor:
    """E[min(N, c)] for N ~ Poisson(exp(u)): sum_{n<c} P(N > n) = sum_{n=1..c} P(n, r) (regularised gamma).

    Decoding from rates must use the mean of the capped count: exp(u) itself exceeds the cap c for
    saturated neurons and would overshoot.
    """
    rate = state.u.exp()  # [B, K]
    orders = torch.arange(1, params.max_spike_count + 1, dtype=rate.dtype)  # [c]
    return torch.special.gammainc(orders, rate.unsqueeze(-1)).sum(-1)  # [B, K]


def potential(state: PoissonState) -> Tensor:
    return state.u
