"""The iP-VAE inference of the authors' public code (hadivafaii/IterativeVAE, ``main/layers.py``), exactly.

Selected by ``ModelConfig.dynamics = "authors"`` (what ``ipvae import`` writes for their checkpoints). Per step,
with their single inner iteration (``n_iters_inner = 1``, so no KL term in the update):

    z_{t-1} ~ Poisson(exp(u_{t-1}) + eps32)                        exact draw, no count cap (temperature 0)
    du_t    = S(lr * (Phi^T D (x - Phi z_{t-1}) - b))               their ``u_dot``, clamped
    u_t     = S(u_{t-1} + du_t)
    S(y)    = c - softplus(c - max(y, floor))                       their ``softclamp``: hard floor, soft ceiling

u_0 is their learned ``u_init`` (``params.u_prior``); c = ``params.u_max`` is their ceiling at the end of
training, 2 + eps (clamp - 2), the same for u and du (``ipvae import`` refuses clamp_u != clamp_du);
floor = ``params.u_min`` (-8 in their code); eps32 = float32 machine epsilon, added to every rate by their
``Poisson`` distribution. ``params.max_spike_count`` is not a cap here; it only sizes the relaxed sampler
when training at a temperature > 0 (their ``n_exp`` arrival times). Where this differs from the toolkit's
own dynamics (``poisson.py``): the du clamp, the floor before the soft ceiling, eps32, no cap.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ipvae.train.distributions import BatchShard
from ipvae.train.inference import poisson as toolkit_poisson
from ipvae.train.inference.common import InferenceParams, LatentSample, decode, reconstruction_drive
from ipvae.train.inference.poisson import PoissonState, kl, potential

__all__ = ["FLOAT32_EPS", "PoissonState", "authors_clamp", "draw", "expected_code", "features", "initial_state",
           "kl", "potential", "rate", "sample", "step", "update"]

FLOAT32_EPS = torch.finfo(torch.float32).eps  # their Poisson: rate = exp(log_rate) + eps


def initial_state(params: InferenceParams, batch_size: int) -> PoissonState:
    return PoissonState(u=params.u_prior.expand(batch_size, -1))  # [B, K]


def rate(state: PoissonState) -> Tensor:
    """exp(u) + eps32, [B, K]: their Poisson rate."""
    return state.u.exp() + FLOAT32_EPS


def authors_clamp(y: Tensor, params: InferenceParams) -> Tensor:
    """c - softplus(c - max(y, floor)): their hard floor, then their soft ceiling (softclamp_upper)."""
    ceiling = params.u_max
    return ceiling - F.softplus(ceiling - torch.clamp(y, min=params.u_min))


def draw(
    state: PoissonState,
    params: InferenceParams,
    temperature: float,
    generator: torch.Generator | None,
    shard: BatchShard | None = None,
    fast_noise: bool = False,
) -> LatentSample:
    """Temperature 0: an exact, uncapped Poisson(exp(u) + eps32) draw (their validation sampler).

    Temperature > 0 (training): the toolkit's relaxed sampler with ``params.max_spike_count`` arrival times.
    """
    if temperature == 0.0:
        if shard is not None:
            raise ValueError("the authors' exact sampler draws whole batches (no shard)")
        return LatentSample(z=torch.poisson(rate(state), generator=generator), recon=None)  # [B, K]
    return toolkit_poisson.draw(state, params, temperature, generator, shard=shard, fast_noise=fast_noise)


def sample(
    state: PoissonState, params: InferenceParams, temperature: float, generator: torch.Generator | None
) -> LatentSample:
    z = draw(state, params, temperature, generator).z  # [B, K]
    return LatentSample(z=z, recon=decode(z, params))


def update(state: PoissonState, latent: LatentSample, drive: Tensor, params: InferenceParams) -> PoissonState:
    """One step given the reconstruction drive Phi^T D (x - Phi z) [B, K]: both of their clamps."""
    du = authors_clamp(params.step_size * (drive - params.bias), params)  # [B, K]
    return PoissonState(u=authors_clamp(state.u + du, params))


def step(state: PoissonState, latent: LatentSample, x: Tensor, params: InferenceParams) -> PoissonState:
    return update(state, latent, reconstruction_drive(x, latent.recon, params), params)


def features(state: PoissonState) -> Tensor:
    return rate(state)  # [B, K] firing rates


def expected_code(state: PoissonState, params: InferenceParams) -> Tensor:
    """E[z] = exp(u) + eps32 (no cap), [B, K]."""
    return rate(state)
