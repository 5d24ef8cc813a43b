"""Pieces the baselines share: the pixel likelihood, trajectories, deterministic init, MAC counts."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ipvae.train.config import ModelConfig
from ipvae.train.model import StepOutput, Trajectory

LOG_TWO_PI = math.log(2.0 * math.pi)
COUNTED_LAYERS = (nn.Linear, nn.Conv2d)
RELAXED_COUNT_ZERO_BELOW = 0.5  # a relaxed count below 1/2 rounds to zero spikes
MAX_INFERENCE_RATE = 2.0  # sparse / predictive coding: a gradient step eta = rate / L is stable for rate < 2


def inference_rate_is_stable(rate: float) -> bool:
    """The inference step of sparse / predictive coding as a fraction of 1/L is in (0, MAX_INFERENCE_RATE]."""
    return 0.0 < rate <= MAX_INFERENCE_RATE


def bounded_log_sigma(raw: Tensor, bound: float) -> Tensor:
    """log sigma soft-clamped to +-bound (as the iterative VAE does), [M]."""
    return bound * torch.tanh(raw / bound)


def gaussian_nll(x: Tensor, recon: Tensor, log_sigma: Tensor) -> Tensor:
    """-log N(x; recon, diag(exp(log_sigma)^2)) summed over pixels, [B]."""
    squared = ((x - recon) * torch.exp(-log_sigma)).square()  # [B, M]
    return 0.5 * squared.sum(-1) + log_sigma.sum() + 0.5 * x.shape[-1] * LOG_TWO_PI


def stack_trajectory(steps: Sequence[StepOutput], features: Tensor) -> "Trajectory":
    return Trajectory(
        u=torch.stack([s.u for s in steps]),  # [T, B, K]
        z=torch.stack([s.z for s in steps]),  # [T, B, K]
        recon=torch.stack([s.recon for s in steps]),  # [T, B, M]
        kl=torch.stack([s.kl for s in steps]),  # [T, B]
        features=features,  # [B, K]
    )


class UnitNormDictionaryCoder(nn.Module):
    """Base of the deterministic dictionary coders (LCA / ISTA / FISTA, predictive coding): a unit-norm
    dictionary Phi [M, K] drawn from ``generator``, and what follows from a deterministic code: the
    features and the mean reconstruction are the code and its reconstruction. Subclasses provide
    ``iterate`` (yielding ``StepOutput``), ``loss`` and ``macs_per_inference``."""

    def __init__(self, config: ModelConfig, generator: torch.Generator | None = None):
        super().__init__()
        self.config = config
        phi = torch.randn(config.n_inputs, config.n_latents, generator=generator)  # [M, K]
        normalize_columns_(phi)
        self.phi = nn.Parameter(phi)

    @property
    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def trajectory(
        self, x: Tensor, n_steps: int, *, temperature: float = 0.0, generator: torch.Generator | None = None
    ) -> Trajectory:
        steps = list(self.iterate(x, n_steps))
        return stack_trajectory(steps, self.features(steps[-1]))

    def forward(self, x: Tensor, n_steps: int, **kwargs) -> Trajectory:
        return self.trajectory(x, n_steps, **kwargs)

    def features(self, step: StepOutput) -> Tensor:
        return step.z  # [B, K] the code

    def mean_reconstruction(self, step: StepOutput) -> Tensor:
        return step.recon  # [B, M] the code is deterministic


def init_layers_(module: nn.Module, generator: torch.Generator | None) -> None:
    """Re-draw every Linear/Conv2d weight and bias from U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with ``generator``.

    The same distribution as PyTorch's default bias init (and the scale of its weight init), but
    drawn from an explicit generator so a seed fixes the model.
    """
    with torch.no_grad():
        for layer in module.modules():
            if isinstance(layer, COUNTED_LAYERS):
                fan_in = layer.weight[0].numel()
                bound = 1.0 / math.sqrt(fan_in)
                layer.weight.uniform_(-bound, bound, generator=generator)
                if layer.bias is not None:
                    layer.bias.uniform_(-bound, bound, generator=generator)


def layer_macs(layer: nn.Module, output: Tensor) -> int:
    """Multiply-accumulates one Linear/Conv2d layer spent producing ``output`` (whole batch)."""
    if isinstance(layer, nn.Linear):
        return output.numel() * layer.in_features
    kernel_h, kernel_w = layer.kernel_size
    return output.numel() * (layer.in_channels // layer.groups) * kernel_h * kernel_w


def count_macs(module: nn.Module, *inputs: Tensor) -> int:
    """MACs of ``module(*inputs)`` per sample, counted with forward hooks on its Linear/Conv2d layers.

    Inputs carry a leading batch dimension; the count is divided by it. Element-wise work
    (activations, biases) is not counted, as is usual for MAC figures.
    """
    total = 0

    def hook(layer, _inputs, output):
        nonlocal total
        total += layer_macs(layer, output)

    handles = [layer.register_forward_hook(hook) for layer in module.modules() if isinstance(layer, COUNTED_LAYERS)]
    try:
        with torch.no_grad():
            module(*inputs)
    finally:
        for handle in handles:
            handle.remove()
    batch_size = inputs[0].shape[0]
    return total // batch_size


def zero_fraction(z: Tensor, *, relaxed_counts: bool) -> Tensor:
    """Fraction of zero entries of a code; relaxed Poisson counts round to the nearest integer."""
    is_zero = z < RELAXED_COUNT_ZERO_BELOW if relaxed_counts else z == 0
    return is_zero.float().mean()


def dictionary_macs(n_inputs: int, n_latents: int) -> int:
    """One product with the M x K dictionary (Phi z or Phi^T e)."""
    return n_inputs * n_latents


def normalize_columns_(phi: Tensor) -> None:
    """Scale every atom (column of phi [M, K]) to unit L2 norm, in place."""
    with torch.no_grad():
        phi.div_(phi.norm(dim=0, keepdim=True).clamp_min(torch.finfo(phi.dtype).tiny))


def spectral_norm_squared(phi: Tensor) -> Tensor:
    """L = ||Phi||_2^2, the Lipschitz constant of the gradient of 0.5 ||x - Phi a||^2 (a scalar)."""
    return torch.linalg.matrix_norm(phi.detach(), ord=2).square()
