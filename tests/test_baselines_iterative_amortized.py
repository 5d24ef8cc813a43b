"""Iterative amortized inference: the refiner's gradient input against autograd; interface; MACs."""

import torch

from ipvae.train.baselines.common import gaussian_nll
from ipvae.train.baselines.iterative_amortized import IterativeAmortizedVAE, PosteriorState, Sample, elbo_gradient
from ipvae.train.config import ModelConfig
from ipvae.train.distributions import gaussian_kl
from ipvae.train.registry import Model, build_model

N_INPUTS, N_LATENTS, HIDDEN, BATCH = 12, 5, 7, 4


def tiny_model(seed: int = 0) -> IterativeAmortizedVAE:
    config = ModelConfig(kind="iterative_amortized", n_inputs=N_INPUTS, n_latents=N_LATENTS, init_phi_std=0.3,
                         options=dict(hidden_size=HIDDEN))
    return build_model(config, generator=torch.Generator().manual_seed(seed)).double()


def test_closed_form_gradient_equals_autograd_of_the_one_sample_free_energy():
    generator = torch.Generator().manual_seed(0)
    model = tiny_model()
    with torch.no_grad():
        model.u_prior.copy_(torch.randn(N_LATENTS, generator=generator, dtype=torch.float64))
        model.prior_log_scale.copy_(0.3 * torch.randn(N_LATENTS, generator=generator, dtype=torch.float64))
        model.log_sigma.copy_(0.2 * torch.randn(N_INPUTS, generator=generator, dtype=torch.float64))
    x = torch.rand(BATCH, N_INPUTS, generator=generator, dtype=torch.float64)
    mean = torch.randn(BATCH, N_LATENTS, generator=generator, dtype=torch.float64, requires_grad=True)
    log_scale = (0.5 * torch.randn(BATCH, N_LATENTS, generator=generator, dtype=torch.float64)).requires_grad_()
    noise = torch.randn(BATCH, N_LATENTS, generator=generator, dtype=torch.float64)
    z = mean + log_scale.exp() * noise
    log_sigma = model.pixel_log_sigma()
    free_energy = gaussian_nll(x, z @ model.phi.T, log_sigma) + gaussian_kl(
        mean, log_scale, model.u_prior, model.prior_log_scale).sum(-1)  # [B]
    mean_gradient, log_scale_gradient = torch.autograd.grad(free_energy.sum(), [mean, log_scale])
    with torch.no_grad():
        state = PosteriorState(mean, log_scale)
        sample = Sample(z=z, noise=noise, recon=z @ model.phi.T)
        closed_form = elbo_gradient(state, sample, x, model.phi, torch.exp(-2 * log_sigma), model.prior())
    torch.testing.assert_close(closed_form, torch.cat([mean_gradient, log_scale_gradient], dim=-1))


def test_interface_gradients_and_mac_hand_count():
    model = tiny_model()
    assert isinstance(model, Model)
    x = torch.rand(BATCH, N_INPUTS, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    trajectory = model.trajectory(x, 3, generator=torch.Generator().manual_seed(0))
    assert trajectory.z.shape == (3, BATCH, N_LATENTS) and trajectory.kl.shape == (3, BATCH)
    terms = model.loss(x, 3, beta=1.0, generator=torch.Generator().manual_seed(0))
    terms.total.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    refiner = 4 * N_LATENTS * HIDDEN + HIDDEN * HIDDEN + 2 * (HIDDEN * 2 * N_LATENTS)
    assert model.macs_per_inference(3) == 3 * (refiner + 2 * N_INPUTS * N_LATENTS)


def test_refinement_starts_at_the_prior_and_same_seed_same_trajectory():
    model = tiny_model()
    x = torch.rand(BATCH, N_INPUTS, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    a = model.trajectory(x, 2, generator=torch.Generator().manual_seed(5))
    b = model.trajectory(x, 2, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a.z, b.z)
    with torch.no_grad():  # a refiner whose gate is shut keeps the prior exactly
        model.refiner.gate.bias.fill_(1e3)
        model.refiner.gate.weight.zero_()
        shut = model.trajectory(x, 2, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(shut.u[-1], model.u_prior.expand(BATCH, -1))
