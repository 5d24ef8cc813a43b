"""Predictive coding (Rao & Ballard 1999) and incremental predictive coding (Salvatori et al. 2024).

One layer of latent causes z [B, K] predicts the image through the dictionary Phi [M, K]; error
neurons carry e = x - Phi z. Inference is gradient descent on the energy

    E(z) = 1/2 ||x - Phi z||^2 + prior_precision / 2 ||z||^2 + sparsity * sum_k log(1 + z_k^2)
    z <- P(z - eta * dE/dz),  dE/dz = -Phi^T e + prior_precision z + 2 sparsity z / (1 + z^2)

(the log(1 + z^2) term is Rao & Ballard's sparse prior; P projects onto z >= 0 when ``nonnegative``).
dE/dz is Lipschitz with L = ||Phi||_2^2 + prior_precision + 2 sparsity, and eta = inference_rate / L:
with inference_rate <= 1 the energy never increases (the descent lemma; tested). 2 M K MACs per step.

Learning. PC: after n inference steps Phi takes one gradient step on E at the final z (held fixed).
iPC (``incremental``): Phi is updated at every inference step, Phi_{t+1} = Phi_t - alpha dE/dPhi(z_t,
Phi_t), together with z. ``loss`` returns sum_t E(z_t, Phi_t) with Phi_t = Phi + (Phi_t - Phi) held
fixed, whose gradient in Phi is sum_t dE/dPhi(z_t, Phi_t): one SGD step with learning rate alpha
(``optimizer: sgd``, ``learning_rate`` = ``incremental_rate``) lands exactly on iPC's Phi_T (tested).
After every optimiser step the atoms are renormalised to unit length (in place of Rao & Ballard's
weight decay, which only bounds their scale). Inference at evaluation uses fixed weights in both.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import NamedTuple

import torch
from torch import Tensor

from ipvae.train.baselines.common import (
    MAX_INFERENCE_RATE,
    UnitNormDictionaryCoder,
    dictionary_macs,
    inference_rate_is_stable,
    normalize_columns_,
    spectral_norm_squared,
    zero_fraction,
)
from ipvae.train.config import NON_NEGATIVE, check_options
from ipvae.train.model import LossTerms, StepOutput

SPARSE_PRIOR_CURVATURE = 2.0  # max of d^2/dz^2 log(1 + z^2)


@dataclass(frozen=True)
class PredictiveCodingOptions:
    """sparsity: the weight of the log(1 + z^2) prior.  nonnegative: z >= 0 (else signed).
    inference_rate: eta as a fraction of the stable step 1/L.  prior_precision: the Gaussian prior's
    precision.  incremental: update the dictionary at every inference step (iPC), with the per-step
    learning rate incremental_rate."""

    sparsity: float = 0.1
    nonnegative: bool = True
    inference_rate: float = 1.0
    prior_precision: float = 0.0
    incremental: bool = False
    incremental_rate: float = 1e-3

    def __post_init__(self) -> None:
        check_options(self, {"sparsity": NON_NEGATIVE, "prior_precision": NON_NEGATIVE,
                             "incremental_rate": NON_NEGATIVE, "inference_rate": (f"in (0, {MAX_INFERENCE_RATE:g}]", inference_rate_is_stable)})


@dataclass(frozen=True)
class CodingParams:
    phi: Tensor  # [M, K]
    prior_precision: float
    sparsity: float
    step_size: Tensor  # [] eta
    nonnegative: bool


class CodingState(NamedTuple):
    z: Tensor  # [B, K] latent causes
    error: Tensor  # [B, M] prediction error x - Phi z


def lipschitz_constant(phi: Tensor, prior_precision: float, sparsity: float) -> Tensor:
    return spectral_norm_squared(phi) + prior_precision + SPARSE_PRIOR_CURVATURE * sparsity


def initial_state(x: Tensor, params: CodingParams) -> CodingState:
    z = params.phi.new_zeros(x.shape[0], params.phi.shape[1])  # [B, K]
    return CodingState(z=z, error=x - z @ params.phi.T)


def prior_gradient(z: Tensor, params: CodingParams) -> Tensor:
    return params.prior_precision * z + 2.0 * params.sparsity * z / (1.0 + z.square())  # [B, K]


def step(state: CodingState, x: Tensor, params: CodingParams) -> CodingState:
    """One gradient step of the latent causes on E, then the new prediction error."""
    gradient = -(state.error @ params.phi) + prior_gradient(state.z, params)  # [B, K]
    z = state.z - params.step_size * gradient  # [B, K]
    if params.nonnegative:
        z = torch.relu(z)
    return CodingState(z=z, error=x - z @ params.phi.T)


def energy(z: Tensor, x: Tensor, params: CodingParams) -> Tensor:
    """E(z) per sample, [B]."""
    squared_error = 0.5 * (x - z @ params.phi.T).square().sum(-1)
    prior = 0.5 * params.prior_precision * z.square().sum(-1) + params.sparsity * torch.log1p(z.square()).sum(-1)
    return squared_error + prior


def dictionary_gradient(state: CodingState, params: CodingParams) -> Tensor:
    """d/dPhi of the batch-mean energy at fixed z: -e^T z / B, [M, K]."""
    return -(state.error.T @ state.z) / state.z.shape[0]


class PredictiveCoding(UnitNormDictionaryCoder):
    """One-layer predictive coding network with a learned unit-norm dictionary (PC or iPC learning)."""

    def coding_params(self, phi: Tensor | None = None) -> CodingParams:
        options = self.config.options
        phi = self.phi if phi is None else phi
        lipschitz = lipschitz_constant(phi, options.prior_precision, options.sparsity)
        return CodingParams(phi=phi, prior_precision=options.prior_precision, sparsity=options.sparsity,
                            step_size=options.inference_rate / lipschitz, nonnegative=options.nonnegative)

    def iterate(
        self, x: Tensor, n_steps: int, *, temperature: float = 0.0, generator: torch.Generator | None = None
    ) -> Iterator[StepOutput]:
        """Deterministic inference with fixed weights (``temperature`` and ``generator`` are unused)."""
        if n_steps <= 0:
            raise ValueError("n_steps must be positive")
        params = self.coding_params()
        state = initial_state(x, params)
        no_kl = x.new_zeros(x.shape[0])  # [B]
        for _ in range(n_steps):
            state = step(state, x, params)
            yield StepOutput(state.z, state.z, x - state.error, no_kl, state)

    def _terms(self, total: Tensor, z: Tensor, x: Tensor) -> LossTerms:
        with torch.no_grad():
            params = self.coding_params()
            squared_error = 0.5 * (x - z @ self.phi.T).square().sum(-1).mean()
            prior = energy(z, x, params).mean() - squared_error
            mse = (x - z @ self.phi.T).square().mean()
        return LossTerms(total=total, nll=squared_error, kl=prior, mse_per_pixel=mse,
                         zeros=zero_fraction(z, relaxed_counts=False))

    def loss(
        self, x: Tensor, n_steps: int, *, beta: float = 0.0, temperature: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> LossTerms:
        """PC: the energy at the final z (held fixed). iPC: sum over steps at the incremental weights."""
        if self.config.options.incremental:
            return self._incremental_loss(x, n_steps)
        with torch.no_grad():
            for output in self.iterate(x, n_steps):
                pass
        z = output.z.detach()  # [B, K]
        return self._terms(energy(z, x, self.coding_params()).mean(), z, x)

    def _incremental_loss(self, x: Tensor, n_steps: int) -> LossTerms:
        params = self.coding_params(self.phi.detach())
        state = initial_state(x, params)
        total = x.new_zeros(())
        for _ in range(n_steps):
            with torch.no_grad():
                updated_phi = params.phi - self.config.options.incremental_rate * dictionary_gradient(state, params)
                state = step(state, x, params)  # z_{t+1} from (z_t, Phi_t), simultaneous with Phi_{t+1}
                params = replace(params, phi=updated_phi)
                state = state._replace(error=x - state.z @ updated_phi.T)
            tracking = self.phi + (params.phi - self.phi).detach()  # value Phi_t, gradient to Phi
            total = total + energy(state.z, x, replace(params, phi=tracking)).mean()
        return self._terms(total, state.z, x)

    def macs_per_inference(self, n_steps: int) -> int:
        return 2 * n_steps * dictionary_macs(self.config.n_inputs, self.config.n_latents)

    def project_parameters(self) -> None:
        normalize_columns_(self.phi)

    def pixel_precision(self) -> Tensor:
        """The energy's squared error has unit weight: D = 1, [M]."""
        return self.phi.new_ones(self.config.n_inputs)


MODEL, OPTIONS = PredictiveCoding, PredictiveCodingOptions
PRESETS = {"predictive_coding": {}, "incremental_pc": dict(options=dict(incremental=True))}
