"""Sparse coding with a learned dictionary: LCA (Rozell et al. 2008), ISTA and FISTA (Beck & Teboulle 2009).

All three minimise the same energy over the code a [B, K] for a fixed dictionary Phi [M, K]:

    E(a) = 1/2 ||x - Phi a||^2 + lambda ||a||_1          (a >= 0 when ``nonnegative``)

    LCA:   u <- u + eta * (Phi^T (x - Phi a) + a - u),   a = T_lambda(u)
           (tau du/dt = Phi^T x - u - (Phi^T Phi - I) a, Euler step eta = dt / tau)
    ISTA:  a <- T_{eta lambda}(a + eta Phi^T (x - Phi a))
    with eta = rate / L, L = ||Phi||_2^2 for all three: the active set of LCA iterates
    u <- u - eta (Phi_A^T Phi_A u + ...), stable for eta < 2 / L whatever the dictionary's scale.
    FISTA: the same step taken from an extrapolated point y, with Nesterov momentum.

T is the soft threshold sign(u) max(|u| - lambda, 0), or max(u - lambda, 0) for non-negative codes.
At a fixed point, LCA and ISTA satisfy the Lasso optimality conditions, so their codes equal
scikit-learn's Lasso (alpha = lambda / M, its loss is scaled by 1 / (2 M)); see the tests.
Products use the residual form (Phi a, then Phi^T e): 2 M K MACs per step.

Dictionary learning: after n inference steps the code is held fixed and Phi takes a gradient step on
E (``loss``); ``project_parameters`` renormalises every atom to unit length after each step.
``beta`` and ``temperature`` of the shared training loop do not apply (lambda is the sparsity knob).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
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
from ipvae.train.config import NON_NEGATIVE, ModelConfig, check_options
from ipvae.train.model import LossTerms, StepOutput


@dataclass(frozen=True)
class SparseParams:
    """phi [M, K]; sparsity lambda; rate: the step (LCA: dt / tau) as a fraction of 1/L."""

    phi: Tensor
    sparsity: float
    rate: float
    nonnegative: bool
    lipschitz: Tensor  # [] L = ||Phi||_2^2


class SparseState(NamedTuple):
    potential: Tensor  # [B, K] LCA membrane potential u; ISTA/FISTA: the code itself
    code: Tensor  # [B, K] a
    extrapolated: Tensor  # [B, K] FISTA's y (the code for LCA/ISTA)
    momentum: float  # FISTA's t_k


def soft_threshold(u: Tensor, threshold: float | Tensor, nonnegative: bool) -> Tensor:
    if nonnegative:
        return torch.relu(u - threshold)
    return torch.sign(u) * torch.relu(u.abs() - threshold)


def correlation_with_residual(code: Tensor, x: Tensor, phi: Tensor) -> Tensor:
    """Phi^T (x - Phi a), [B, K]."""
    return (x - code @ phi.T) @ phi


def initial_state(params: SparseParams, batch_size: int) -> SparseState:
    zeros = params.phi.new_zeros(batch_size, params.phi.shape[1])  # [B, K]
    return SparseState(potential=zeros, code=zeros, extrapolated=zeros, momentum=1.0)


def lca_step(state: SparseState, x: Tensor, params: SparseParams) -> SparseState:
    drive = correlation_with_residual(state.code, x, params.phi)  # [B, K]
    step_size = params.rate / params.lipschitz  # dt / tau
    potential = state.potential + step_size * (drive + state.code - state.potential)  # [B, K]
    code = soft_threshold(potential, params.sparsity, params.nonnegative)  # [B, K]
    return SparseState(potential=potential, code=code, extrapolated=code, momentum=1.0)


def ista_step(state: SparseState, x: Tensor, params: SparseParams) -> SparseState:
    step_size = params.rate / params.lipschitz
    gradient_step = state.code + step_size * correlation_with_residual(state.code, x, params.phi)  # [B, K]
    code = soft_threshold(gradient_step, step_size * params.sparsity, params.nonnegative)  # [B, K]
    return SparseState(potential=code, code=code, extrapolated=code, momentum=1.0)


def fista_step(state: SparseState, x: Tensor, params: SparseParams) -> SparseState:
    step_size = params.rate / params.lipschitz
    point = state.extrapolated  # [B, K]
    gradient_step = point + step_size * correlation_with_residual(point, x, params.phi)  # [B, K]
    code = soft_threshold(gradient_step, step_size * params.sparsity, params.nonnegative)  # [B, K]
    momentum = (1.0 + math.sqrt(1.0 + 4.0 * state.momentum**2)) / 2.0
    extrapolated = code + ((state.momentum - 1.0) / momentum) * (code - state.code)  # [B, K]
    return SparseState(potential=code, code=code, extrapolated=extrapolated, momentum=momentum)


SPARSE_STEPS = {"lca": lca_step, "ista": ista_step, "fista": fista_step}


@dataclass(frozen=True)
class SparseCodingOptions:
    """sparse_algorithm: "lca", "ista" or "fista".  sparsity: lambda, the L1 weight.  nonnegative: codes >= 0
    (else signed).  inference_rate: the step (LCA: dt/tau) as a fraction of the stable step 1/L, L = ||Phi||_2^2."""

    sparse_algorithm: str = "lca"
    sparsity: float = 0.1
    nonnegative: bool = True
    inference_rate: float = 1.0

    def __post_init__(self) -> None:
        check_options(self, {"sparsity": NON_NEGATIVE,
                             "inference_rate": (f"in (0, {MAX_INFERENCE_RATE:g}]", inference_rate_is_stable)},
                      {"sparse_algorithm": tuple(SPARSE_STEPS)})


def energy(code: Tensor, x: Tensor, params: SparseParams) -> Tensor:
    """1/2 ||x - Phi a||^2 + lambda ||a||_1 per sample, [B]."""
    return 0.5 * (x - code @ params.phi.T).square().sum(-1) + params.sparsity * code.abs().sum(-1)


class SparseCoder(UnitNormDictionaryCoder):
    """A unit-norm dictionary Phi [M, K] with LCA, ISTA or FISTA inference."""

    def __init__(self, config: ModelConfig, generator: torch.Generator | None = None):
        super().__init__(config, generator)
        self.step_function = SPARSE_STEPS[config.options.sparse_algorithm]

    def sparse_params(self) -> SparseParams:
        options = self.config.options
        return SparseParams(phi=self.phi, sparsity=options.sparsity, rate=options.inference_rate,
                            nonnegative=options.nonnegative, lipschitz=spectral_norm_squared(self.phi))

    def iterate(
        self, x: Tensor, n_steps: int, *, temperature: float = 0.0, generator: torch.Generator | None = None
    ) -> Iterator[StepOutput]:
        """Deterministic inference on x [B, M] (``temperature`` and ``generator`` are unused)."""
        if n_steps <= 0:
            raise ValueError("n_steps must be positive")
        params = self.sparse_params()
        state = initial_state(params, x.shape[0])
        no_kl = x.new_zeros(x.shape[0])  # [B]
        for _ in range(n_steps):
            state = self.step_function(state, x, params)
            yield StepOutput(state.potential, state.code, state.code @ params.phi.T, no_kl, state)

    def loss(
        self, x: Tensor, n_steps: int, *, beta: float = 0.0, temperature: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> LossTerms:
        """Energy at the inferred code (held fixed): its gradient in Phi is the dictionary update."""
        with torch.no_grad():
            for step in self.iterate(x, n_steps):
                pass
        code = step.z.detach()  # [B, K]
        squared_error = 0.5 * (x - code @ self.phi.T).square().sum(-1).mean()
        penalty = self.config.options.sparsity * code.abs().sum(-1).mean()
        return LossTerms(
            total=squared_error + penalty, nll=squared_error, kl=penalty,
            mse_per_pixel=(x - step.recon).square().mean(), zeros=zero_fraction(code, relaxed_counts=False),
        )

    def macs_per_inference(self, n_steps: int) -> int:
        return 2 * n_steps * dictionary_macs(self.config.n_inputs, self.config.n_latents)

    def project_parameters(self) -> None:
        normalize_columns_(self.phi)

    def pixel_precision(self) -> Tensor:
        """The energy's squared error has unit weight: D = 1, [M]."""
        return self.phi.new_ones(self.config.n_inputs)


MODEL, OPTIONS = SparseCoder, SparseCodingOptions
PRESETS = {algorithm: dict(options=dict(sparse_algorithm=algorithm)) for algorithm in SPARSE_STEPS}
