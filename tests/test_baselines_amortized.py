"""Amortized VAEs: ELBO against Monte Carlo, MAC counts against hand counts, the shared interface."""

import math

import pytest
import torch
from torch import nn
from torch.distributions import Normal

from ipvae.train.baselines.amortized import AmortizedOptions, AmortizedVAE
from ipvae.train.baselines.common import count_macs
from ipvae.train.config import ModelConfig
from ipvae.train.distributions import PoissonLatent
from ipvae.train.inference import poisson
from ipvae.train.inference.common import InferenceParams
from ipvae.train.registry import Model, build_model

N_INPUTS, N_LATENTS = 16, 6
MC_SAMPLES = 20_000
STANDARD_ERRORS = 5.0  # a 5-sigma band: a correct ELBO fails it with probability ~1e-6 per image


def tiny_amortized(family: str, encoder: str = "linear", seed: int = 0) -> AmortizedVAE:
    config = ModelConfig(kind="amortized", family=family, n_inputs=N_INPUTS, n_latents=N_LATENTS, init_phi_std=0.3,
                         options=AmortizedOptions(encoder=encoder, hidden_size=8, conv_channels=2))
    return build_model(config, generator=torch.Generator().manual_seed(seed))


def monte_carlo_elbo(model: AmortizedVAE, x: torch.Tensor, generator: torch.Generator):
    """E_q[log p(x|z) + log p(z) - log q(z)] and E_q[log q - log p] per image, torch.distributions
    log-densities: (elbo mean, elbo s.e., kl mean, kl s.e.)."""
    posterior = model.posterior(x)
    sigma = model.pixel_log_sigma().exp()  # [M]
    if model.is_poisson:
        q = PoissonLatent(posterior.location, max_count=10**6)
        z = torch.poisson(q.rate.expand(MC_SAMPLES, *q.rate.shape), generator=generator)  # [S, B, K]
        log_q = q.log_prob(z).sum(-1)  # [S, B]
        log_prior = PoissonLatent(model.u_prior, max_count=10**6).log_prob(z).sum(-1)  # [S, B]
        code = z
    else:
        q = Normal(posterior.location, posterior.log_scale.exp())
        y = q.loc + q.scale * torch.randn((MC_SAMPLES, *q.loc.shape), generator=generator)  # [S, B, K]
        log_q = q.log_prob(y).sum(-1)
        log_prior = Normal(model.u_prior, model.prior_log_scale.exp()).log_prob(y).sum(-1)
        code = model._code(y)
    log_likelihood = Normal(code @ model.phi.T, sigma).log_prob(x).sum(-1)  # [S, B]
    terms = log_likelihood + log_prior - log_q  # [S, B]
    kl_terms = log_q - log_prior  # [S, B]
    root = math.sqrt(MC_SAMPLES)
    return terms.mean(0), terms.std(0) / root, kl_terms.mean(0), kl_terms.std(0) / root


@pytest.mark.parametrize("family", ["poisson", "gaussian", "gaussian_relu"])
def test_negative_loss_is_the_elbo_of_a_monte_carlo_estimate(family):
    model = tiny_amortized(family)
    x = torch.rand(3, N_INPUTS, generator=torch.Generator().manual_seed(1))  # [B, M]
    with torch.no_grad():
        if not model.is_poisson:  # a prior away from the posterior, so that the KL term matters
            prior = torch.Generator().manual_seed(5)
            model.u_prior.copy_(torch.randn(N_LATENTS, generator=prior))
            model.prior_log_scale.copy_(0.5 * torch.randn(N_LATENTS, generator=prior))
        if model.is_poisson:  # the closed-form KL is uncapped: keep the cap irrelevant (rates < 3)
            assert model.posterior(x).location.exp().max() < 3.0
        expected, standard_error, kl_expected, kl_error = monte_carlo_elbo(model, x, torch.Generator().manual_seed(2))
        closed_form_kl = model.kl(model.posterior(x))  # [B]
        elbo = []
        for image in x:  # loss() averages over the batch: one image, repeated, at a time
            repeated = image.expand(MC_SAMPLES, N_INPUTS)  # [S, M]
            terms = model.loss(repeated, 1, beta=1.0, temperature=0.0, generator=torch.Generator().manual_seed(3))
            elbo.append(-terms.total)
    elbo = torch.stack(elbo)
    assert torch.all((closed_form_kl - kl_expected).abs() < STANDARD_ERRORS * kl_error + 1e-4), (
        closed_form_kl, kl_expected, kl_error)
    # both sides are MC means of independent draws: the difference has s.e. sqrt(2) * s.e.
    assert torch.all((elbo - expected).abs() < STANDARD_ERRORS * math.sqrt(2) * standard_error + 1e-4), (
        elbo, expected, standard_error)


def test_capped_poisson_mean_matches_the_dynamics_and_monte_carlo():
    log_rate = torch.linspace(-3.0, 3.5, 9)[None]  # [1, 9], rates up to 33 > cap
    cap = 15
    latent = PoissonLatent(log_rate, cap)
    params = InferenceParams(phi=torch.zeros(1, 9), precision=torch.ones(1), bias=torch.zeros(9),
                             step_size=torch.tensor(1.0), u_prior=torch.zeros(9), u_min=-8.0, u_max=10.0,
                             max_spike_count=cap)
    torch.testing.assert_close(latent.capped_mean, poisson.expected_code(poisson.PoissonState(log_rate), params))
    draws = latent.sample((200_000,), generator=torch.Generator().manual_seed(0))  # [S, 1, 9]
    # capped counts have variance <= rate: 5 s.e. of the sample mean
    tolerance = 5 * (log_rate.exp().clamp(max=cap) / 200_000).sqrt()
    assert torch.all((draws.mean(0) - latent.capped_mean).abs() < tolerance)


def test_macs_are_the_hand_counts():
    linear = tiny_amortized("poisson", "linear")
    decode = N_INPUTS * N_LATENTS
    assert linear.macs_per_inference(1) == N_INPUTS * N_LATENTS + decode
    gaussian_mlp = tiny_amortized("gaussian", "mlp")
    hidden = 8
    assert gaussian_mlp.macs_per_inference(3) == N_INPUTS * hidden + hidden * hidden + hidden * 2 * N_LATENTS + 3 * decode
    conv = tiny_amortized("poisson", "conv")  # 4x4 image, channels 2, 4, 8; 4x4 -> 2x2 -> 1x1
    per_pixel = [(1, 2, 16), (2, 4, 4), (4, 8, 1)]  # (in channels, out channels, output pixels)
    conv_macs = sum(c_in * 9 * c_out * pixels for c_in, c_out, pixels in per_pixel)
    assert conv.macs_per_inference(1) == conv_macs + 8 * N_LATENTS + decode


def test_mac_counter_counts_each_layer_of_a_batch_once_per_sample():
    module = nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 3))
    assert count_macs(module, torch.zeros(4, 5)) == 5 * 7 + 7 * 3


def test_paper_sized_conv_encoder_parameters():
    """K = 512 on MNIST: the hand count of the conv encoder (3x3 convs 32, 64, 128 channels) + decoder."""
    config = ModelConfig(kind="amortized", family="poisson", options=AmortizedOptions(encoder="conv"))
    model = build_model(config)
    convs = (1 * 9 + 1) * 32 + (32 * 9 + 1) * 64 + (64 * 9 + 1) * 128
    head = (128 * 7 * 7 + 1) * 512
    decoder_and_noise_and_prior = 784 * 512 + 784 + 512
    assert model.n_params == convs + head + decoder_and_noise_and_prior


@pytest.mark.parametrize("family", ["poisson", "gaussian", "gaussian_relu"])
@pytest.mark.parametrize("encoder", ["linear", "mlp", "conv"])
def test_interface_shapes_and_gradients(family, encoder):
    model = tiny_amortized(family, encoder)
    assert isinstance(model, Model)
    x = torch.rand(5, N_INPUTS, generator=torch.Generator().manual_seed(0))
    trajectory = model.trajectory(x, 3, generator=torch.Generator().manual_seed(0))
    assert trajectory.z.shape == (3, 5, N_LATENTS) and trajectory.recon.shape == (3, 5, N_INPUTS)
    assert trajectory.features.shape == (5, N_LATENTS)
    terms = model.loss(x, 2, beta=1.0, temperature=0.5, generator=torch.Generator().manual_seed(0))
    terms.total.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_same_seed_same_model():
    a, b = tiny_amortized("gaussian", "mlp", seed=4), tiny_amortized("gaussian", "mlp", seed=4)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
