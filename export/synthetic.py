"""Small random float models and images, for tests and demos that must not wait for a trained run.

The parameters are drawn so that the dynamics are lively (rates around 0.1-1 spikes per step), which
makes statistical comparisons meaningful on a few hundred images.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ipvae.export.integer_model import FloatParams

DEFAULT_U_MIN, DEFAULT_U_MAX, DEFAULT_CAP = -8.0, 4.0, 15


@dataclass(frozen=True)
class SyntheticConfig:
    n_inputs: int = 64
    n_latents: int = 32
    phi_std: float = 0.15
    sigma: float = 0.5
    log_b: float = -2.0
    step_size: float = 0.5
    u_prior_low: float = -2.0
    u_prior_high: float = 0.0
    seed: int = 0


def random_float_params(config: SyntheticConfig = SyntheticConfig()) -> FloatParams:
    """A random iP-VAE parameter set (float64), reproducible from config.seed."""
    rng = np.random.default_rng(config.seed)
    return FloatParams(
        phi=rng.normal(0.0, config.phi_std, size=(config.n_inputs, config.n_latents)),  # [M, K]
        precision=np.full(config.n_inputs, config.sigma**-2),  # [M]
        bias=np.full(config.n_latents, np.exp(config.log_b)),  # [K]
        step_size=config.step_size,
        u_prior=rng.uniform(config.u_prior_low, config.u_prior_high, size=config.n_latents),  # [K]
        u_min=DEFAULT_U_MIN,
        u_max=DEFAULT_U_MAX,
        max_spike_count=DEFAULT_CAP,
    )


def random_images(n_images: int, n_inputs: int, seed: int) -> np.ndarray:
    """Sparse MNIST-like images in [0, 1], float32 [N, M]: about a third of the pixels on."""
    rng = np.random.default_rng(seed)
    on = rng.random((n_images, n_inputs)) < 1.0 / 3.0
    return (on * rng.uniform(0.5, 1.0, size=(n_images, n_inputs))).astype(np.float32)
