"""Pieces shared by every inference family: parameters, the reconstruction drive, clamps."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class InferenceParams:
    """Everything the dynamics read, derived from the learnable tensors (differentiable).

    phi [M, K] dictionary; precision [M] = D = 1/sigma^2; bias [K] = b > 0 (Poisson drive);
    step_size [] = lr > 0; hard_upper_clamp: saturate u at u_max instead of the soft clamp;
    leak: fraction of u - u_prior removed per step (Poisson only; ModelConfig.leak);
    u_prior [K] prior potential (Poisson: log r0; Gaussian: prior mean);
    prior_log_scale [K] (Gaussian only); gain [K] (gaussian_relu only).
    """

    phi: Tensor
    precision: Tensor
    bias: Tensor
    step_size: Tensor
    u_prior: Tensor
    u_min: float
    u_max: float
    max_spike_count: int
    hard_upper_clamp: bool = False
    leak: float = 0.0
    prior_log_scale: Tensor | None = None
    gain: Tensor | None = None
    rectify: bool = False


class LatentSample(NamedTuple):
    z: Tensor  # [B, K] the latent code sent to the decoder (spike counts for Poisson)
    recon: Tensor | None  # [B, M] its reconstruction Phi z (None from ``draw``: not computed)
    noise: Tensor | None = None  # [B, K] standard-normal noise (Gaussian families)


class PrecisionWeightedTerms(NamedTuple):
    """The data terms of the drive and of the Gaussian error, computed once per batch.

    Phi^T D (x - Phi z) = feedforward - z @ lateral and
    (x - Phi z)^T D (x - Phi z) = data_energy - 2 z . feedforward + z . (z @ lateral),
    so the unrolled loop needs one [B, K] x [K, K] product per step instead of the two
    [B, K] x [K, M] products through pixel space.
    """

    feedforward: Tensor  # [B, K] Phi^T D x
    lateral: Tensor  # [K, K] W = Phi^T D Phi (symmetric)
    data_energy: Tensor  # [B] x^T D x


def precision_weighted_terms(x: Tensor, params: InferenceParams) -> PrecisionWeightedTerms:
    weighted_phi = params.phi * params.precision[:, None]  # [M, K] D Phi
    return PrecisionWeightedTerms(
        feedforward=x @ weighted_phi,  # [B, K]
        lateral=_WeightedGram.apply(params.phi, params.precision),  # [K, K]
        data_energy=(x.square() * params.precision).sum(dim=-1),  # [B]
    )


def weighted_gram(phi: Tensor, precision: Tensor) -> Tensor:
    """W = Phi^T D Phi [K, K] (differentiable; see _WeightedGram)."""
    return _WeightedGram.apply(phi, precision)


class _WeightedGram(torch.autograd.Function):
    """W = Phi^T D Phi [K, K] with a backward of one [M, K] x [K, K] product instead of autograd's two.

    For a loss with gradient G = dL/dW and S = G + G^T:
        dL/dPhi = D Phi S,    dL/dD_m = (1/2) sum_k (Phi S)_mk Phi_mk.
    """

    @staticmethod
    def forward(ctx, phi: Tensor, precision: Tensor) -> Tensor:
        ctx.save_for_backward(phi, precision)
        return (phi * precision[:, None]).T @ phi  # [K, K]

    @staticmethod
    def backward(ctx, grad_gram: Tensor):
        phi, precision = ctx.saved_tensors
        projected = phi @ (grad_gram + grad_gram.T)  # [M, K] Phi S
        grad_phi = projected * precision[:, None] if ctx.needs_input_grad[0] else None  # [M, K]
        grad_precision = 0.5 * (projected * phi).sum(dim=1) if ctx.needs_input_grad[1] else None  # [M]
        return grad_phi, grad_precision


def reconstruction_drive(x: Tensor, recon: Tensor, params: InferenceParams) -> Tensor:
    """Phi^T D (x - Phi z) given recon = Phi z: feed-forward drive minus lateral inhibition, [B, K]."""
    return ((x - recon) * params.precision) @ params.phi  # [B, K]


def decode(z: Tensor, params: InferenceParams) -> Tensor:
    """Phi z, [B, M]."""
    return z @ params.phi.T


def clamp_potential(y: Tensor, params: InferenceParams) -> Tensor:
    """The potential's clamp: hard [u_min, u_max] saturation, or the soft upper clamp (``soft_clamp``)."""
    if params.hard_upper_clamp:
        return torch.clamp(y, min=params.u_min, max=params.u_max)
    return soft_clamp(y, params.u_min, params.u_max)


def soft_clamp(y: Tensor, low: float, high: float) -> Tensor:
    """Soft upper clamp high - softplus(high - y), then a hard lower clamp at ``low``."""
    return torch.clamp(high - F.softplus(high - y), min=low)
