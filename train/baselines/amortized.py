"""Amortized VAEs (the paper's P-VAE / G-VAE): an encoder network maps x to the posterior in one pass.

    Poisson:        u = clamp(encoder(x)),  z ~ min(Poisson(exp(u)), cap)   (relaxed sampler in training)
    Gaussian:       (m, log s) = encoder(x),  z = m + s * eps
    Gaussian+ReLU:  z = gain * relu(m + s * eps)
    x ~ N(Phi z, diag(sigma^2)),  Phi [M, K] linear decoder, sigma learned per pixel (as the iP-VAE)
    loss = mean over n samples of NLL(x | Phi z) + beta * KL(q(z|x) || p(z))

The prior is learned: Poisson rates exp(u_prior) (init as the iP-VAE's), or N(m0, s0^2). Poisson
latents use the iP-VAE's relaxed sampler and exact KL (``ipvae.train.distributions``). An "inference" of
n steps draws n samples from the one posterior (the encoder runs once), so the evaluation of the
iterative models applies unchanged; ``macs_per_inference(n)`` counts the encoder once and n decodes.

Encoders ("linear", "mlp", "conv"): the conv encoder is three 3x3 convolutions (c, 2c, 4c channels,
the last two with stride 2), SiLU activations, then one linear layer to the posterior parameters.
Assumption (the paper's appendix was not available offline): its channel base c = 32 and SiLU
("swish") follow the authors' published run configs (n_ch = 32, activation swish); their conv
P-VAE also has a conv decoder and 6.79M parameters, ours keeps the linear decoder of the iP-VAE
(3.7M parameters for Poisson, 6.9M for Gaussian at K = 512 on MNIST; ``n_params`` reports it).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor, nn

from ipvae.errors import IpvaeError
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
from ipvae.train.distributions import PoissonLatent, gaussian_kl, poisson_kl
from ipvae.train.inference.common import soft_clamp
from ipvae.train.inference.gaussian import LOG_SCALE_MAX, LOG_SCALE_MIN
from ipvae.train.model import LossTerms, StepOutput, Trajectory, register_latent_prior

CONV_STRIDE = 2
CONV_KERNEL = 3
CONV_PADDING = 1


class Posterior(NamedTuple):
    """location [B, K] (Poisson: log rate u; Gaussian: mean), log_scale [B, K] (Gaussian only)."""

    location: Tensor
    log_scale: Tensor | None


def mlp_encoder(n_inputs: int, hidden_size: int, n_outputs: int) -> nn.Module:
    return nn.Sequential(
        nn.Linear(n_inputs, hidden_size), nn.SiLU(),
        nn.Linear(hidden_size, hidden_size), nn.SiLU(),
        nn.Linear(hidden_size, n_outputs),
    )


def conv_encoder(n_inputs: int, channels: int, n_outputs: int) -> nn.Module:
    side = math.isqrt(n_inputs)
    if side * side != n_inputs:
        raise IpvaeError(f"the conv encoder needs square images; {n_inputs} pixels is not a square")
    reduced_side = side
    for _ in range(2):
        reduced_side = (reduced_side + 2 * CONV_PADDING - CONV_KERNEL) // CONV_STRIDE + 1
    widest = 4 * channels
    return nn.Sequential(
        nn.Unflatten(1, (1, side, side)),
        nn.Conv2d(1, channels, CONV_KERNEL, padding=CONV_PADDING), nn.SiLU(),
        nn.Conv2d(channels, 2 * channels, CONV_KERNEL, stride=CONV_STRIDE, padding=CONV_PADDING), nn.SiLU(),
        nn.Conv2d(2 * channels, widest, CONV_KERNEL, stride=CONV_STRIDE, padding=CONV_PADDING), nn.SiLU(),
        nn.Flatten(),
        nn.Linear(widest * reduced_side * reduced_side, n_outputs),
    )


ENCODERS = ("linear", "mlp", "conv")


@dataclass(frozen=True)
class AmortizedOptions:
    """encoder: "linear", "mlp" or "conv".  hidden_size: width of the MLP encoder's hidden layers.
    conv_channels: channels of the conv encoder's first layer (doubled at each of its two stride-2 layers)."""

    encoder: str = "linear"
    hidden_size: int = 512
    conv_channels: int = 32

    def __post_init__(self) -> None:
        check_options(self, {"hidden_size": POSITIVE, "conv_channels": POSITIVE}, {"encoder": ENCODERS})


def build_encoder(config: ModelConfig, n_outputs: int) -> nn.Module:
    options = config.options
    builders = {
        "linear": lambda: nn.Linear(config.n_inputs, n_outputs),
        "mlp": lambda: mlp_encoder(config.n_inputs, options.hidden_size, n_outputs),
        "conv": lambda: conv_encoder(config.n_inputs, options.conv_channels, n_outputs),
    }
    return builders[options.encoder]()


class AmortizedVAE(nn.Module):
    """Encoder network + the iP-VAE's linear decoder and pixel noise; Poisson or Gaussian latents."""

    def __init__(self, config: ModelConfig, generator: torch.Generator | None = None):
        super().__init__()
        self.config = config
        self.is_poisson = config.family == "poisson"
        n_inputs, n_latents = config.n_inputs, config.n_latents
        outputs_per_latent = 1 if self.is_poisson else 2
        self.encoder = build_encoder(config, outputs_per_latent * n_latents)
        init_layers_(self.encoder, generator)
        self.phi = nn.Parameter(torch.randn(n_inputs, n_latents, generator=generator) * config.init_phi_std)  # [M, K]
        self.log_sigma = nn.Parameter(torch.full((n_inputs,), config.init_log_sigma))  # [M]
        register_latent_prior(self, config, generator)

    @property
    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def posterior(self, x: Tensor) -> Posterior:
        out = self.encoder(x)  # [B, K] or [B, 2K]
        if self.is_poisson:
            return Posterior(soft_clamp(out, self.config.u_min, self.config.u_max), None)
        mean, log_scale = out.chunk(2, dim=-1)  # [B, K] each
        return Posterior(mean, soft_clamp(log_scale, LOG_SCALE_MIN, LOG_SCALE_MAX))

    def kl(self, posterior: Posterior) -> Tensor:
        """KL(q(z|x) || p(z)) summed over latents, [B]."""
        if self.is_poisson:
            return poisson_kl(posterior.location, self.u_prior).sum(-1)
        return gaussian_kl(posterior.location, posterior.log_scale, self.u_prior, self.prior_log_scale).sum(-1)

    def _code(self, pre_activation: Tensor) -> Tensor:
        if self.config.family == "gaussian_relu":
            return self.log_gain.exp() * torch.relu(pre_activation)
        return pre_activation

    def sample(self, posterior: Posterior, temperature: float, generator: torch.Generator | None) -> Tensor:
        """One code z [B, K]: relaxed (temperature > 0) or exact Poisson counts; reparametrised Gaussian."""
        if self.is_poisson:
            latent = PoissonLatent(posterior.location, self.config.max_spike_count)
            return latent.rsample(temperature=temperature, generator=generator)
        noise = torch.randn(posterior.location.shape, generator=generator, dtype=posterior.location.dtype)  # [B, K]
        return self._code(posterior.location + posterior.log_scale.exp() * noise)

    def iterate(
        self, x: Tensor, n_steps: int, *, temperature: float = 0.0, generator: torch.Generator | None = None
    ) -> Iterator[StepOutput]:
        """n_steps independent samples from the one posterior q(z | x) of x [B, M]."""
        if n_steps <= 0:
            raise ValueError("n_steps must be positive")
        posterior = self.posterior(x)
        kl = self.kl(posterior)  # [B]
        for _ in range(n_steps):
            z = self.sample(posterior, temperature, generator)  # [B, K]
            yield StepOutput(posterior.location, z, z @ self.phi.T, kl, posterior)

    def trajectory(
        self, x: Tensor, n_steps: int, *, temperature: float = 0.0, generator: torch.Generator | None = None
    ) -> Trajectory:
        steps = list(self.iterate(x, n_steps, temperature=temperature, generator=generator))
        return stack_trajectory(steps, self.features(steps[-1]))

    def forward(self, x: Tensor, n_steps: int, **kwargs) -> Trajectory:
        return self.trajectory(x, n_steps, **kwargs)

    def features(self, step: StepOutput) -> Tensor:
        """Probe features: rates exp(u) (Poisson) or the posterior mean (Gaussian), [B, K]."""
        return step.state.location.exp() if self.is_poisson else step.state.location

    def mean_reconstruction(self, step: StepOutput) -> Tensor:
        """Phi E[z] (Poisson: the mean of the capped count; Gaussian: the code at the mean), [B, M]."""
        location = step.state.location
        if self.is_poisson:
            code = PoissonLatent(location, self.config.max_spike_count).capped_mean  # [B, K]
        else:
            code = self._code(location)  # [B, K]
        return code @ self.phi.T

    def pixel_log_sigma(self) -> Tensor:
        return bounded_log_sigma(self.log_sigma, self.config.log_sigma_bound)  # [M]

    def loss(
        self, x: Tensor, n_steps: int, *, beta: float, temperature: float, generator: torch.Generator | None = None
    ) -> LossTerms:
        """-ELBO with n_steps samples: mean_n NLL(x | Phi z_n) + beta * KL (KL in closed form)."""
        log_sigma = self.pixel_log_sigma()
        nll_sum = x.new_zeros(())
        squared_error_sum = x.new_zeros(())
        zeros_sum = x.new_zeros(())
        for step in self.iterate(x, n_steps, temperature=temperature, generator=generator):
            nll_sum = nll_sum + gaussian_nll(x, step.recon, log_sigma).mean()
            kl = step.kl.mean()
            with torch.no_grad():
                squared_error_sum += (x - step.recon).square().mean()
                zeros_sum += zero_fraction(step.z, relaxed_counts=self.is_poisson)
        nll = nll_sum / n_steps
        return LossTerms(
            total=nll + beta * kl, nll=nll, kl=kl,
            mse_per_pixel=squared_error_sum / n_steps, zeros=zeros_sum / n_steps,
        )

    def macs_per_inference(self, n_steps: int) -> int:
        """Encoder once (counted with forward hooks) + n_steps decodes Phi z."""
        example = self.phi.new_zeros(1, self.config.n_inputs)  # [1, M]
        return count_macs(self.encoder, example) + n_steps * dictionary_macs(self.config.n_inputs, self.config.n_latents)

    def project_parameters(self) -> None:
        """No constraint on the parameters."""

    def pixel_precision(self) -> Tensor:
        """D = 1 / sigma^2 of the pixel likelihood, [M]."""
        return torch.exp(-2.0 * self.pixel_log_sigma())


MODEL, OPTIONS = AmortizedVAE, AmortizedOptions
PRESETS = {
    f"amortized_{family}_{encoder}": dict(family=family, options=dict(encoder=encoder))
    for family in ("poisson", "gaussian", "gaussian_relu")
    for encoder in ENCODERS
}
