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
    prior_log_scale: Tensor | None = None
    gain: Tensor | None = None
    rectify: bool = False


class LatentSample(NamedTuple):
    z: Tensor  # [B, K] the latent code sent to the decoder (spike counts for Poisson)
    recon: Tensor  # [B, M] its reconstruction Phi z (computed once, reused by the next step)
    noise: Tensor | None = None  # [B, K] standard-normal noise (Gaussian families)


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
