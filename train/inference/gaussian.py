"""iG-VAE and iG_relu-VAE: Gaussian posterior N(m, s^2) updated by natural-gradient steps.

    eps ~ N(0, 1),  y = m + s * eps,  z = y (iG)  or  z = gain * relu(y) (iG_relu)
    g   = dz/dy * Phi^T D (x - Phi z)                       (minus the gradient of the error in y)
    m'  = m + lr * s^2 * g                                  (Fisher of m is 1/s^2)
    log s' = log s - lr * (1/2) * s^2 * W_kk * (dz/dy)^2    (Fisher of log s is 2; W = Phi^T D Phi)

The log-scale step uses the expected gradient d/dlog s E[error] = s^2 W_kk (dz/dy)^2 rather than its
single-sample estimate -g eps s: the latter's variance grows with s and made the iteration diverge
(s -> large -> larger noise in g -> larger steps), while the expectation is a stable contraction.

The KL term's gradient is zero at the start of each step (the previous posterior is the prior),
so only the reconstruction error drives the update, as in the Poisson family.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from ipvae.train.distributions import BatchShard, draw_rows, draw_standard_normal, gaussian_kl
from ipvae.train.inference.common import InferenceParams, LatentSample, decode, reconstruction_drive, soft_clamp

LOG_SCALE_MIN = -6.0
LOG_SCALE_MAX = 6.0
FISHER_LOG_SCALE = 2.0


class GaussianState(NamedTuple):
    mean: Tensor  # [B, K]
    log_scale: Tensor  # [B, K]


def initial_state(params: InferenceParams, batch_size: int) -> GaussianState:
    return GaussianState(
        mean=params.u_prior.expand(batch_size, -1),  # [B, K]
        log_scale=params.prior_log_scale.expand(batch_size, -1),  # [B, K]
    )


def _code(pre_activation: Tensor, params: InferenceParams) -> Tensor:
    if params.rectify:
        return params.gain * torch.relu(pre_activation)
    return pre_activation


def draw(
    state: GaussianState,
    params: InferenceParams,
    temperature: float,
    generator: torch.Generator | None,
    shard: BatchShard | None = None,
    fast_noise: bool = False,
) -> LatentSample:
    """z ~ q(state) and its noise, without the reconstruction (``recon`` is None).

    ``fast_noise`` is the Poisson sampler's noise layout; a Gaussian draw has one layout and ignores it."""
    noise = draw_rows(tuple(state.mean.shape), 0, shard, state.mean, generator, draw_standard_normal)  # [B, K]
    pre_activation = state.mean + state.log_scale.exp() * noise  # [B, K]
    return LatentSample(z=_code(pre_activation, params), recon=None, noise=noise)


def sample(
    state: GaussianState, params: InferenceParams, temperature: float, generator: torch.Generator | None
) -> LatentSample:
    latent = draw(state, params, temperature, generator)
    return latent._replace(recon=decode(latent.z, params))


def step(state: GaussianState, latent: LatentSample, x: Tensor, params: InferenceParams) -> GaussianState:
    return update(state, latent, reconstruction_drive(x, latent.recon, params), params)


def update(state: GaussianState, latent: LatentSample, drive: Tensor, params: InferenceParams) -> GaussianState:
    """One step given the reconstruction drive Phi^T D (x - Phi z) [B, K] of the latent."""
    scale = state.log_scale.exp()  # [B, K]
    grad_z = drive  # [B, K]
    slope = torch.ones_like(grad_z)  # [B, K] dz/dy
    if params.rectify:
        pre_activation = state.mean + scale * latent.noise  # [B, K]
        slope = params.gain * (pre_activation > 0).to(grad_z.dtype)
    lateral_diagonal = (params.phi.square() * params.precision[:, None]).sum(0)  # [K] W_kk
    mean = state.mean + params.step_size * scale.square() * slope * grad_z
    log_scale_gradient = scale.square() * lateral_diagonal * slope.square()  # [B, K]
    log_scale = state.log_scale - params.step_size * log_scale_gradient / FISHER_LOG_SCALE
    return GaussianState(mean=mean, log_scale=soft_clamp(log_scale, LOG_SCALE_MIN, LOG_SCALE_MAX))


def kl(state: GaussianState, prior_state: GaussianState, params: InferenceParams) -> Tensor:
    return gaussian_kl(state.mean, state.log_scale, prior_state.mean, prior_state.log_scale).sum(dim=-1)


def features(state: GaussianState) -> Tensor:
    return state.mean


def expected_code(state: GaussianState, params: InferenceParams) -> Tensor:
    """The code at the posterior mean (iG: the mean; iG_relu: gain * relu(mean))."""
    return _code(state.mean, params)


def potential(state: GaussianState) -> Tensor:
    return state.mean
