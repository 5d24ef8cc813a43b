"""Iterative amortized inference (Marino, Yue & Mandt 2018): a network refines the posterior from its gradient.

Gaussian posterior q_t = N(m_t, diag(s_t^2)), linear decoder x ~ N(Phi z, diag(sigma^2)), learned
prior N(m0, s0^2). Unrolled like the iP-VAE (state_0 = the prior; step t is driven by the sample of
step t-1):

    z_{t-1} = m_{t-1} + s_{t-1} * eps
    g_t = d/d(m, log s) [ -log N(x; Phi z_{t-1}, sigma^2) + KL(q_{t-1} || p) ]      (one sample, in closed form)
    (delta, gate) = refiner(LayerNorm(g_t), m_{t-1}, log s_{t-1})
    (m_t, log s_t) = gate * (m_{t-1}, log s_{t-1}) + (1 - gate) * delta             (gated update)

Closed-form gradients with D = diag(1/sigma^2) and e = x - Phi z:
    dL/dm = -Phi^T D e + (m - m0) / s0^2,   dL/dlog s = -(Phi^T D e) * eps * s + s^2 / s0^2 - 1
The gradient enters the refiner as an input (held fixed, as in the paper's gradient encoding); the
refiner is trained through the unrolled steps on the mean over t of -ELBO(q_t).
Per step: 2 M K MACs for the gradient (Phi z and Phi^T e) plus the refiner's MACs (forward hooks).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor, nn

from ipvae.train.baselines.common import (
    bounded_log_sigma,
    count_macs,
    dictionary_macs,
    gaussian_nll,
    init_layers_,
    stack_trajectory,
    zero_fraction,
)
from ipvae.train.config import POSITIVE, ModelConfig, check_options
from ipvae.train.distributions import gaussian_kl
from ipvae.train.inference.common import soft_clamp
from ipvae.train.inference.gaussian import LOG_SCALE_MAX, LOG_SCALE_MIN
from ipvae.train.model import LossTerms, StepOutput, Trajectory

POSTERIOR_PARTS = 2  # mean and log scale
REFINER_INPUTS = 2 * POSTERIOR_PARTS  # gradients and current values of both


class PosteriorState(NamedTuple):
    mean: Tensor  # [B, K]
    log_scale: Tensor  # [B, K]


class Sample(NamedTuple):
    z: Tensor  # [B, K]
    noise: Tensor  # [B, K] eps
    recon: Tensor  # [B, M]


class Refiner(nn.Module):
    """(gradient, posterior) [B, 4K] -> (update, gate) of the posterior parameters."""

    def __init__(self, n_latents: int, hidden_size: int):
        super().__init__()
        self.gradient_norm = nn.LayerNorm(POSTERIOR_PARTS * n_latents)
        self.body = nn.Sequential(
            nn.Linear(REFINER_INPUTS * n_latents, hidden_size), nn.SiLU(),
            nn.Linear(hidden_size, hidden_size), nn.SiLU(),
        )
        self.update = nn.Linear(hidden_size, POSTERIOR_PARTS * n_latents)
        self.gate = nn.Linear(hidden_size, POSTERIOR_PARTS * n_latents)

    def forward(self, gradient: Tensor, posterior: Tensor) -> tuple[Tensor, Tensor]:
        hidden = self.body(torch.cat([self.gradient_norm(gradient), posterior], dim=-1))  # [B, H]
        return self.update(hidden), torch.sigmoid(self.gate(hidden))  # [B, 2K] each


def elbo_gradient(
    state: PosteriorState, sample: Sample, x: Tensor, phi: Tensor, precision: Tensor,
    prior: PosteriorState,
) -> Tensor:
    """d(-ELBO)/d(mean, log scale) of the one-sample estimate, [B, 2K] (see the module docstring)."""
    scale = state.log_scale.exp()  # [B, K]
    prior_variance = (2.0 * prior.log_scale).exp()  # [K]
    drive = ((x - sample.recon) * precision) @ phi  # [B, K] Phi^T D e
    mean_gradient = -drive + (state.mean - prior.mean) / prior_variance
    log_scale_gradient = -drive * sample.noise * scale + scale.square() / prior_variance - 1.0
    return torch.cat([mean_gradient, log_scale_gradient], dim=-1)


@dataclass(frozen=True)
class IterativeAmortizedOptions:
    """hidden_size: width of the refiner's hidden layers."""

    hidden_size: int = 512

    def __post_init__(self) -> None:
        check_options(self, {"hidden_size": POSITIVE})


class IterativeAmortizedVAE(nn.Module):
    """Gaussian latents refined by a learned network from the ELBO gradient; linear decoder."""

    def __init__(self, config: ModelConfig, generator: torch.Generator | None = None):
        super().__init__()
        self.config = config
        n_inputs, n_latents = config.n_inputs, config.n_latents
        self.refiner = Refiner(n_latents, config.options.hidden_size)
        init_layers_(self.refiner, generator)
        self.phi = nn.Parameter(torch.randn(n_inputs, n_latents, generator=generator) * config.init_phi_std)  # [M, K]
        self.log_sigma = nn.Parameter(torch.full((n_inputs,), config.init_log_sigma))  # [M]
        self.u_prior = nn.Parameter(torch.zeros(n_latents))  # [K] prior mean
        self.prior_log_scale = nn.Parameter(torch.zeros(n_latents))  # [K]

    @property
    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def pixel_log_sigma(self) -> Tensor:
        return bounded_log_sigma(self.log_sigma, self.config.log_sigma_bound)  # [M]

    def prior(self) -> PosteriorState:
        return PosteriorState(self.u_prior, self.prior_log_scale)

    def sample(self, state: PosteriorState, generator: torch.Generator | None) -> Sample:
        noise = torch.randn(state.mean.shape, generator=generator, dtype=state.mean.dtype)  # [B, K]
        z = state.mean + state.log_scale.exp() * noise  # [B, K]
        return Sample(z=z, noise=noise, recon=z @ self.phi.T)

    def refine(self, state: PosteriorState, sample: Sample, x: Tensor) -> PosteriorState:
        precision = torch.exp(-2.0 * self.pixel_log_sigma())  # [M]
        gradient = elbo_gradient(state, sample, x, self.phi, precision, self.prior()).detach()  # [B, 2K]
        current = torch.cat([state.mean, state.log_scale], dim=-1)  # [B, 2K]
        update, gate = self.refiner(gradient, current)
        mean, log_scale = (gate * current + (1.0 - gate) * update).chunk(POSTERIOR_PARTS, dim=-1)
        return PosteriorState(mean, soft_clamp(log_scale, LOG_SCALE_MIN, LOG_SCALE_MAX))

    def iterate(
        self, x: Tensor, n_steps: int, *, temperature: float = 0.0, generator: torch.Generator | None = None
    ) -> Iterator[StepOutput]:
        """Refine q from the prior for n_steps on x [B, M] (``temperature`` is unused: Gaussian samples)."""
        if n_steps <= 0:
            raise ValueError("n_steps must be positive")
        batch_size = x.shape[0]
        prior = self.prior()
        state = PosteriorState(prior.mean.expand(batch_size, -1), prior.log_scale.expand(batch_size, -1))
        sample = self.sample(state, generator)
        for _ in range(n_steps):
            state = self.refine(state, sample, x)
            sample = self.sample(state, generator)
            kl = gaussian_kl(state.mean, state.log_scale, prior.mean, prior.log_scale).sum(-1)  # [B]
            yield StepOutput(state.mean, sample.z, sample.recon, kl, state)

    def trajectory(
        self, x: Tensor, n_steps: int, *, temperature: float = 0.0, generator: torch.Generator | None = None
    ) -> Trajectory:
        steps = list(self.iterate(x, n_steps, generator=generator))
        return stack_trajectory(steps, self.features(steps[-1]))

    def forward(self, x: Tensor, n_steps: int, **kwargs) -> Trajectory:
        return self.trajectory(x, n_steps, **kwargs)

    def features(self, step: StepOutput) -> Tensor:
        return step.state.mean  # [B, K]

    def mean_reconstruction(self, step: StepOutput) -> Tensor:
        return step.state.mean @ self.phi.T  # [B, M]

    def loss(
        self, x: Tensor, n_steps: int, *, beta: float, temperature: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> LossTerms:
        """Mean over the T refinements of NLL(x | Phi z_t) + beta * KL(q_t || p)."""
        log_sigma = self.pixel_log_sigma()
        nll_sum, kl_sum = x.new_zeros(()), x.new_zeros(())
        squared_error_sum, zeros_sum = x.new_zeros(()), x.new_zeros(())
        for step in self.iterate(x, n_steps, generator=generator):
            nll_sum = nll_sum + gaussian_nll(x, step.recon, log_sigma).mean()
            kl_sum = kl_sum + step.kl.mean()
            with torch.no_grad():
                squared_error_sum += (x - step.recon).square().mean()
                zeros_sum += zero_fraction(step.z, relaxed_counts=False)
        nll, kl = nll_sum / n_steps, kl_sum / n_steps
        return LossTerms(total=nll + beta * kl, nll=nll, kl=kl, mse_per_pixel=squared_error_sum / n_steps,
                         zeros=zeros_sum / n_steps)

    def macs_per_inference(self, n_steps: int) -> int:
        n_latents = self.config.n_latents
        example = self.phi.new_zeros(1, POSTERIOR_PARTS * n_latents)  # [1, 2K]
        refiner = count_macs(self.refiner, example, example)
        return n_steps * (refiner + 2 * dictionary_macs(self.config.n_inputs, n_latents))

    def project_parameters(self) -> None:
        """No constraint on the parameters."""

    def pixel_precision(self) -> Tensor:
        """D = 1 / sigma^2 of the pixel likelihood, [M]."""
        return torch.exp(-2.0 * self.pixel_log_sigma())


MODEL, OPTIONS = IterativeAmortizedVAE, IterativeAmortizedOptions
PRESETS = {"iterative_amortized": {}}
