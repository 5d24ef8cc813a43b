"""The iterative VAE as a thin ``nn.Module``: it owns the learnable tensors, nothing else.

Inference state never lives on the module: ``iterate`` and ``trajectory`` take an input and return
the whole state trajectory; the dynamics themselves are the pure step functions of
``ipvae.train.inference``.

Step convention (shared with the integer reference and the Lava network):
    state_0 = prior;  latent_0 ~ q(state_0)
    for t = 1..T:  state_t = step(state_{t-1}, latent_{t-1}, x_t);  latent_t ~ q(state_t)
    recon_t = Phi z_t
so step t's update is driven by the spikes of step t-1 (the lateral synapse delivers the previous
step's spikes), and the loss at step t scores latent_t against x plus KL(q_t || q_{t-1}).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import NamedTuple

import torch
from torch import Tensor, nn

from ipvae.train.config import ModelConfig
from ipvae.train.distributions import BatchShard
from ipvae.train.inference import (
    InferenceParams,
    PrecisionWeightedTerms,
    decode,
    dynamics_module,
    precision_weighted_terms,
    weighted_gram,
)

LOG_TWO_PI = math.log(2.0 * math.pi)


class StepOutput(NamedTuple):
    """One inference step for a batch: u [B, K] (potential), z [B, K], recon [B, M], kl [B], state."""

    u: Tensor
    z: Tensor
    recon: Tensor
    kl: Tensor
    state: tuple


class Trajectory(NamedTuple):
    """Stacked steps t = 1..T: u [T, B, K], z [T, B, K], recon [T, B, M], kl [T, B]; features [B, K] at T."""

    u: Tensor
    z: Tensor
    recon: Tensor
    kl: Tensor
    features: Tensor


class LossTerms(NamedTuple):
    """Scalars averaged over steps and batch; ``total`` (+ ``penalty`` where given) is what is minimised.

    ``penalty``: a regulariser of the weights added to the objective but not to the logged loss
    (the iterative VAE's ``lateral_l1`` term), None where there is none."""

    total: Tensor
    nll: Tensor
    kl: Tensor
    mse_per_pixel: Tensor
    zeros: Tensor
    penalty: Tensor | None = None

    @property
    def objective(self) -> Tensor:
        """What the optimiser minimises: total + penalty."""
        return self.total if self.penalty is None else self.total + self.penalty


def register_latent_prior(module: nn.Module, config: ModelConfig, generator: torch.Generator | None) -> None:
    """The learned prior's parameters on ``module``, shared by the iterative and amortized VAEs.

    Poisson: u_prior [K] = log r0, uniform in [init_u_prior_low, init_u_prior_high] (one draw from
    ``generator``). Gaussian: u_prior [K] = m0 and prior_log_scale [K] = log s0, both 0; gaussian_relu
    also log_gain [K] = 0.
    """
    n_latents = config.n_latents
    if config.family == "poisson":
        low, high = config.init_u_prior_low, config.init_u_prior_high
        module.u_prior = nn.Parameter(low + (high - low) * torch.rand(n_latents, generator=generator))  # [K]
        return
    module.u_prior = nn.Parameter(torch.zeros(n_latents))  # [K] prior mean
    module.prior_log_scale = nn.Parameter(torch.zeros(n_latents))  # [K]
    if config.family == "gaussian_relu":
        module.log_gain = nn.Parameter(torch.zeros(n_latents))  # [K]


def initial_log_step_size(config: ModelConfig) -> float:
    """config.init_log_lr, or the step size giving initial self-inhibition lr * W_kk = init_lateral_gain."""
    if config.init_log_lr is not None:
        return config.init_log_lr
    expected_lateral_diagonal = config.n_inputs * config.init_phi_std**2 * math.exp(-2.0 * config.init_log_sigma)
    return math.log(config.init_lateral_gain / expected_lateral_diagonal)


class IterativeVAE(nn.Module):
    """iP-VAE (and its Gaussian relatives): learned dictionary, pixel noise, biases, step size, prior."""

    def __init__(self, config: ModelConfig, generator: torch.Generator | None = None):
        super().__init__()
        self.config = config
        self.dynamics = dynamics_module(config.family, config.dynamics)
        n_inputs, n_latents = config.n_inputs, config.n_latents
        phi = torch.randn(n_inputs, n_latents, generator=generator) * config.init_phi_std  # [M, K]
        self.phi = nn.Parameter(phi)
        self.log_sigma = nn.Parameter(torch.full((n_inputs,), config.init_log_sigma))  # [M]
        self.log_lr = nn.Parameter(torch.tensor(initial_log_step_size(config)))  # []
        register_latent_prior(self, config, generator)
        if config.family == "poisson":
            self.log_b = nn.Parameter(torch.full((n_latents,), config.init_log_b))  # [K]

    @property
    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def sigma(self) -> Tensor:
        bound = self.config.log_sigma_bound
        return torch.exp(bound * torch.tanh(self.log_sigma / bound))  # [M]

    def inference_params(self) -> InferenceParams:
        config = self.config
        is_poisson = config.family == "poisson"
        return InferenceParams(
            phi=self.phi,
            precision=self.sigma().pow(-2),
            bias=self.log_b.exp() if is_poisson else torch.zeros_like(self.u_prior),
            step_size=self.log_lr.exp(),
            u_prior=self.u_prior,
            u_min=config.u_min,
            u_max=config.u_max,
            max_spike_count=config.max_spike_count,
            hard_upper_clamp=config.hard_upper_clamp,
            leak=config.leak,
            prior_log_scale=None if is_poisson else self.prior_log_scale,
            gain=self.log_gain.exp() if config.family == "gaussian_relu" else None,
            rectify=config.family == "gaussian_relu",
        )

    def lateral_magnitude(self) -> Tensor:
        """sum_{i != j} |W_ij| / K of the lateral weights W = Phi^T D Phi (TrainConfig.lateral_l1), a scalar."""
        params = self.inference_params()
        return off_diagonal_magnitude(weighted_gram(params.phi, params.precision))

    def iterate(
        self,
        x: Tensor,
        n_steps: int,
        *,
        temperature: float = 0.0,
        generator: torch.Generator | None = None,
        warm_start_steps: int = 0,
    ) -> Iterator[StepOutput]:
        """Run inference on x [B, M] (static) or [T, B, M] (one frame per step); yield t = 1..T.

        ``warm_start_steps`` (static x only) first runs that many steps with exact draws and no
        gradient, then yields the n_steps that follow: steps W+1..W+T of the same inference.
        Training with a random W (truncated backpropagation through time) scores the dynamics where
        they are used, long after T_train, not only on their first T_train steps.
        """
        if n_steps <= 0:
            raise ValueError("n_steps must be positive")
        if warm_start_steps < 0:
            raise ValueError("warm_start_steps must be non-negative")
        frames = x if x.dim() == 3 else None
        if frames is not None and frames.shape[0] < n_steps:
            raise ValueError(f"got {frames.shape[0]} frames for {n_steps} steps")
        if frames is not None and warm_start_steps:
            raise ValueError("warm_start_steps needs a static input")
        params = self.inference_params()
        batch_size = x.shape[-2]
        dynamics = self.dynamics
        state = dynamics.initial_state(params, batch_size)
        if warm_start_steps:
            state = self.warm_start(state, x, params, warm_start_steps, generator)
        latent = dynamics.sample(state, params, temperature, generator)
        for t in range(n_steps):
            x_t = frames[t] if frames is not None else x  # [B, M]
            previous = state
            state = dynamics.step(state, latent, x_t, params)
            latent = dynamics.sample(state, params, temperature, generator)
            kl = dynamics.kl(state, previous, params)  # [B]
            yield StepOutput(dynamics.potential(state), latent.z, latent.recon, kl, state)

    @torch.no_grad()
    def warm_start(self, state: tuple, x: Tensor, params: InferenceParams, n_steps: int, generator) -> tuple:
        """n_steps of inference with exact draws and no gradient; the state is returned detached."""
        dynamics = self.dynamics
        for _ in range(n_steps):
            latent = dynamics.sample(state, params, 0.0, generator)
            state = dynamics.step(state, latent, x, params)
        return type(state)(*(value.detach() for value in state))

    @torch.no_grad()
    def _lateral_warm_start(
        self, state: tuple, terms: PrecisionWeightedTerms, params: InferenceParams, n_steps: int, generator
    ) -> tuple:
        """``_warm_start`` through the lateral weights: the drive Phi^T D x - W z, one [B, K] x [K, K]
        product per step instead of two through pixel space; exact draws by ``fast_noise``."""
        dynamics = self.dynamics
        feedforward, lateral = terms.feedforward.detach(), terms.lateral.detach()  # [B, K], [K, K]
        for _ in range(n_steps):
            latent = dynamics.draw(state, params, 0.0, generator, fast_noise=True)
            drive = torch.addmm(feedforward, latent.z, lateral, alpha=-1.0)  # [B, K] Phi^T D x - W z in one product
            state = dynamics.update(state, latent, drive, params)
        return type(state)(*(value.detach() for value in state))

    def trajectory(
        self,
        x: Tensor,
        n_steps: int,
        *,
        temperature: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> Trajectory:
        steps = list(self.iterate(x, n_steps, temperature=temperature, generator=generator))
        return Trajectory(
            u=torch.stack([s.u for s in steps]),  # [T, B, K]
            z=torch.stack([s.z for s in steps]),  # [T, B, K]
            recon=torch.stack([s.recon for s in steps]),  # [T, B, M]
            kl=torch.stack([s.kl for s in steps]),  # [T, B]
            features=self.dynamics.features(steps[-1].state),  # [B, K]
        )

    def forward(self, x: Tensor, n_steps: int, **kwargs) -> Trajectory:
        return self.trajectory(x, n_steps, **kwargs)

    def features(self, step: StepOutput) -> Tensor:
        """Probe features of one step: rates (Poisson) or posterior means (Gaussian), [B, K]."""
        return self.dynamics.features(step.state)

    def mean_reconstruction(self, step: StepOutput) -> Tensor:
        """Phi E[z] at one step (decoding from rates), [B, M]."""
        params = self.inference_params()
        return decode(self.dynamics.expected_code(step.state, params), params)

    def macs_per_inference(self, n_steps: int) -> int:
        """Dense MACs of n_steps: each step one drive Phi^T D (x - Phi z) and one decode Phi z (2 M K)."""
        return 2 * n_steps * self.config.n_inputs * self.config.n_latents

    def project_parameters(self) -> None:
        """No constraint on the parameters (called by the trainer after each optimiser step)."""

    def pixel_precision(self) -> Tensor:
        """D = 1 / sigma^2, [M]."""
        return self.sigma().pow(-2)

    def gaussian_nll(self, x: Tensor, recon: Tensor) -> Tensor:
        """-log N(x; recon, diag(sigma^2)) summed over pixels, [B]."""
        log_sigma = torch.log(self.sigma())  # [M]
        squared = ((x - recon) / self.sigma()).square()  # [B, M]
        return 0.5 * squared.sum(-1) + log_sigma.sum() + 0.5 * x.shape[-1] * LOG_TWO_PI

    def loss(
        self,
        x: Tensor,
        n_steps: int,
        *,
        beta: float,
        temperature: float,
        generator: torch.Generator | None = None,
        shard: BatchShard | None = None,
        warm_start_steps: int = 0,
        lateral_l1: float = 0.0,
        warm_start_prior_kl: bool = False,
    ) -> LossTerms:
        """Mean over the T unrolled steps of  NLL(x | Phi z_t) + beta * KL(q_t || q_{t-1}).

        The same quantities as ``iterate`` + ``gaussian_nll`` (``ipvae.train.reference_loss`` keeps that
        path), computed through the [K, K] lateral weights (``scored_unroll``).
        ``shard``: x is a slice of a global batch (data-parallel training), see ``BatchShard``.
        ``warm_start_steps`` = W: the scored steps are W+1..W+T (see ``iterate``), the warm start taken
        through the lateral weights too; single process only, because its exact draws are not sliced
        from a global draw.
        ``lateral_l1``: ``penalty`` = lateral_l1 * sum_{i != j} |W_ij| / K on the W the loop uses.
        ``warm_start_prior_kl``: the first scored step's KL is KL(q_{W+1} || q_0), q_0 the prior, instead
        of KL(q_{W+1} || q_W) (``TrainConfig.warm_start_prior_kl``); the same loss when W = 0.
        """
        check_unsharded_warm_start(warm_start_steps, shard)
        params = self.inference_params()
        terms = precision_weighted_terms(x, params)
        prior_state = self.dynamics.initial_state(params, x.shape[0])
        state = prior_state
        if warm_start_steps:
            state = self._lateral_warm_start(state, terms, params, warm_start_steps, generator)
        scored = self.scored_unroll(
            x, n_steps, params, terms, state, prior_state if warm_start_prior_kl else None, beta=beta,
            temperature=temperature, generator=generator, shard=shard, fast_noise=True,
        )
        if not lateral_l1:
            return scored
        return scored._replace(penalty=lateral_l1 * off_diagonal_magnitude(terms.lateral))

    def scored_unroll(
        self,
        x: Tensor,
        n_steps: int,
        params: InferenceParams,
        terms: PrecisionWeightedTerms,
        state: tuple,
        first_kl_against: tuple | None,
        *,
        beta: float,
        temperature: float,
        generator: torch.Generator | None,
        shard: BatchShard | None,
        fast_noise: bool,
    ) -> LossTerms:
        """The scored steps of the loss from ``state``, through the lateral weights ``terms.lateral``.

        One [B, K] x [K, K] product per step drives the dynamics and scores the error, and the plain
        reconstructions for the MSE metric are one product over all steps, outside the graph.
        ``first_kl_against``: the state the first step's KL is taken against (None: ``state``).
        ``fast_noise``: how the relaxed sampler draws its noise (``PoissonLatent.rsample``). No penalty.
        """
        if n_steps <= 0:
            raise ValueError("n_steps must be positive")
        dynamics = self.dynamics
        latent = dynamics.draw(state, params, temperature, generator, shard, fast_noise=fast_noise)
        lateral_input = latent.z @ terms.lateral  # [B, K] W z
        twice_feedforward = 2.0 * terms.feedforward  # [B, K]
        quadratic_sum = x.new_zeros(())
        kl_sum = x.new_zeros(())
        codes = []
        for step in range(n_steps):
            previous = first_kl_against if (step == 0 and first_kl_against is not None) else state
            state = dynamics.update(state, latent, terms.feedforward - lateral_input, params)
            latent = dynamics.draw(state, params, temperature, generator, shard, fast_noise=fast_noise)
            lateral_input = latent.z @ terms.lateral  # [B, K]
            # (x - Phi z)^T D (x - Phi z) = x^T D x - 2 z . Phi^T D x + z . W z
            weighted_error = terms.data_energy + (latent.z * (lateral_input - twice_feedforward)).sum(-1)  # [B]
            quadratic_sum = quadratic_sum + weighted_error.mean()
            kl_sum = kl_sum + dynamics.kl(state, previous, params).mean()
            codes.append(latent.z.detach())
        normaliser = torch.log(self.sigma()).sum() + 0.5 * x.shape[-1] * LOG_TWO_PI
        nll = 0.5 * quadratic_sum / n_steps + normaliser
        kl = kl_sum / n_steps
        with torch.no_grad():
            code_steps = torch.stack(codes)  # [T, B, K]
            mse_per_pixel = (code_steps @ params.phi.T).sub_(x).square_().mean()  # [T, B, M] -> []
            zeros = (code_steps < 0.5).float().mean()
        return LossTerms(total=nll + beta * kl, nll=nll, kl=kl, mse_per_pixel=mse_per_pixel, zeros=zeros)


def check_unsharded_warm_start(warm_start_steps: int, shard: BatchShard | None) -> None:
    if warm_start_steps and shard is not None:
        raise ValueError("warm_start_steps is not supported with a sharded batch")


def off_diagonal_magnitude(gram: Tensor) -> Tensor:
    """sum_{i != j} |W_ij| / K of a [K, K] matrix, a scalar."""
    return (gram.abs().sum() - gram.diagonal().abs().sum()) / gram.shape[0]


MODEL, OPTIONS = IterativeVAE, None  # every field of ModelConfig but ``options`` is the iterative VAE's
PRESETS = {"ip_vae": dict(family="poisson"), "ig_vae": dict(family="gaussian"), "ig_relu_vae": dict(family="gaussian_relu")}
