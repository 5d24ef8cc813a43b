"""The training loss computed the direct way, kept as the reference for the fast ``IterativeVAE.loss``, and
the legacy numerics that runs trained before the fast path rebuild with.

``reference_loss`` is the code path the trainer used before the loss went through the [K, K] lateral
weights: every step decodes Phi z [B, M] and takes the drive and the Gaussian error through pixel space,
and the relaxed Poisson count sums the sigmoids of all [n, B, K] arrivals (the fused custom Function the
sampler had). It shares with the fast path only the state update of each family (``update``) and the
way noise is drawn, so a test comparing the two checks exactly what the fast path changed: how the
same numbers are computed. By default the noise is drawn as that trainer drew it, every arrival of
every neuron (the old code path as a whole, which ``benchmarks/train_speed.py`` times); ``fast_noise``
draws it as ``IterativeVAE.loss`` does, so the two can be compared number for number. Used by
``tests/test_training_speed_path.py`` and ``benchmarks/train_speed.py``.

``legacy_loss`` is what the trainer runs for ``TrainConfig.legacy_numerics`` (the shipped recipe's first
four stages): the fast path's scored steps, but with every arrival's noise drawn, the warm start through
pixel space and the lateral penalty on a second W = Phi^T D Phi, the numbers those runs were trained
with, so that they rebuild bit for bit.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ipvae.train.distributions import BatchShard, PoissonLatent, draw_active_arrival_noise, draw_exponential, draw_rows
from ipvae.train.inference import (
    InferenceParams,
    LatentSample,
    decode,
    poisson,
    precision_weighted_terms,
    reconstruction_drive,
)
from ipvae.train.model import IterativeVAE, LossTerms, check_unsharded_warm_start


def reference_relaxed_count(
    log_rate: Tensor, max_count: int, temperature: float, generator: torch.Generator | None,
    shard: BatchShard | None = None, fast_noise: bool = False,
) -> Tensor:
    """The relaxed count as the trainer computed it before: validated posterior, dense [n, B, K] pass
    (the noise of the active neurons' later arrivals as the sampler draws it, or all of it)."""
    posterior = PoissonLatent(log_rate, max_count)
    if temperature <= 0.0:
        return posterior.rsample(temperature=0.0, generator=generator, fast_noise=fast_noise)
    with torch.no_grad():
        if not fast_noise:
            unit_exponentials = draw_rows((max_count, *log_rate.shape), 1, shard, log_rate, generator, draw_exponential)  # [n, B, K]
        else:
            noise = draw_active_arrival_noise(log_rate, max_count, temperature, generator, shard)
            unit_exponentials = noise.dense()  # [n, B, K]
        for j in range(1, max_count):
            unit_exponentials[j] += unit_exponentials[j - 1]  # arrival times at rate 1
    return _DenseRelaxedCount.apply(log_rate, unit_exponentials, temperature)


class _DenseRelaxedCount(torch.autograd.Function):
    """z = sum_j sigmoid((1 - S_j exp(-u)) / tau) over every arrival, with dz/du from the same pass."""

    @staticmethod
    def forward(ctx, log_rate: Tensor, unit_arrivals: Tensor, temperature: float) -> Tensor:
        arrival_times = unit_arrivals * torch.exp(-log_rate)  # [n, B, K]
        soft_steps = torch.sigmoid((1.0 - arrival_times) / temperature)  # [n, B, K]
        count = soft_steps.sum(dim=0)  # [B, K]
        if ctx.needs_input_grad[0]:
            slope = soft_steps * (1.0 - soft_steps) * arrival_times  # [n, B, K]
            ctx.save_for_backward(slope.sum(dim=0) / temperature)  # [B, K]
        return count

    @staticmethod
    def backward(ctx, grad_count: Tensor):
        (count_grad_log_rate,) = ctx.saved_tensors
        return grad_count * count_grad_log_rate, None, None


def _draw_with_reconstruction(
    model: IterativeVAE, state, params: InferenceParams, temperature: float, generator, shard, fast_noise: bool
) -> LatentSample:
    if model.dynamics is poisson:
        z = reference_relaxed_count(state.u, params.max_spike_count, temperature, generator, shard, fast_noise)  # [B, K]
        return LatentSample(z=z, recon=decode(z, params))
    latent = model.dynamics.draw(state, params, temperature, generator, shard)
    return latent._replace(recon=decode(latent.z, params))


def reference_loss(
    model: IterativeVAE,
    x: Tensor,
    n_steps: int,
    *,
    beta: float,
    temperature: float,
    generator: torch.Generator | None = None,
    shard: BatchShard | None = None,
    warm_start_steps: int = 0,
    lateral_l1: float = 0.0,
    fast_noise: bool = False,
    warm_start_prior_kl: bool = False,
) -> LossTerms:
    """What ``model.loss`` returns, computed step by step through pixel space (``fast_noise``: see
    ``reference_relaxed_count``); the warm start steps through pixel space, the penalty is taken on a
    second W = Phi^T D Phi; ``warm_start_prior_kl``: the first scored KL is taken against the prior."""
    params = model.inference_params()
    dynamics = model.dynamics
    state = dynamics.initial_state(params, x.shape[0])
    prior = state
    if warm_start_steps:
        with torch.no_grad():
            for _ in range(warm_start_steps):
                latent = _draw_with_reconstruction(model, state, params, 0.0, generator, None, fast_noise)
                state = dynamics.step(state, latent, x, params)
        state = type(state)(*(value.detach() for value in state))
    latent = _draw_with_reconstruction(model, state, params, temperature, generator, shard, fast_noise)
    nll_sum = x.new_zeros(())
    kl_sum = x.new_zeros(())
    squared_error_sum = x.new_zeros(())
    zeros_sum = x.new_zeros(())
    for step in range(n_steps):
        previous = prior if (warm_start_prior_kl and step == 0) else state
        state = dynamics.update(state, latent, reconstruction_drive(x, latent.recon, params), params)
        latent = _draw_with_reconstruction(model, state, params, temperature, generator, shard, fast_noise)
        nll_sum = nll_sum + model.gaussian_nll(x, latent.recon).mean()
        kl_sum = kl_sum + dynamics.kl(state, previous, params).mean()
        with torch.no_grad():
            squared_error_sum += (x - latent.recon).square().mean()
            zeros_sum += (latent.z < 0.5).float().mean()
    nll, kl = nll_sum / n_steps, kl_sum / n_steps
    return LossTerms(
        total=nll + beta * kl,
        nll=nll,
        kl=kl,
        mse_per_pixel=squared_error_sum / n_steps,
        zeros=zeros_sum / n_steps,
        penalty=lateral_l1 * model.lateral_magnitude() if lateral_l1 else None,
    )


def legacy_loss(
    model: IterativeVAE,
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
    """``model.loss`` as the trainer computed it for ``TrainConfig.legacy_numerics``: the same distribution
    and objective, with all [n, B, K] arrival noise drawn, the warm start through pixel space
    (``IterativeVAE.iterate``'s) and the penalty on a second W = Phi^T D Phi."""
    check_unsharded_warm_start(warm_start_steps, shard)
    params = model.inference_params()
    terms = precision_weighted_terms(x, params)
    prior_state = model.dynamics.initial_state(params, x.shape[0])
    state = prior_state
    if warm_start_steps:
        state = model.warm_start(state, x, params, warm_start_steps, generator)
    scored = model.scored_unroll(
        x, n_steps, params, terms, state, prior_state if warm_start_prior_kl else None, beta=beta,
        temperature=temperature, generator=generator, shard=shard, fast_noise=False,
    )
    if not lateral_l1:
        return scored
    return scored._replace(penalty=lateral_l1 * model.lateral_magnitude())
