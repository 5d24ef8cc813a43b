"""The hand-written inference updates against autograd of the free energy (closed-form expectations)."""

import dataclasses

import pytest
import torch

from ipvae.train.config import ModelConfig
from ipvae.train.inference import LatentSample, decode, gaussian, poisson
from ipvae.train.model import IterativeVAE

M, K, B = 12, 7, 3
DTYPE = torch.float64


def small_params(family: str, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    model = IterativeVAE(ModelConfig(family=family, n_inputs=M, n_latents=K, init_phi_std=0.3), generator=generator)
    model = model.to(DTYPE)
    with torch.no_grad():
        model.log_sigma.copy_(torch.randn(M, generator=generator, dtype=DTYPE) * 0.3)
        model.log_lr.fill_(-1.3)
    return model, model.inference_params(), generator


def expected_error(x, rate, params):
    """E_{z ~ Poisson(rate)} 0.5 ||x - Phi z||^2_D = 0.5 ||x - Phi r||^2_D + 0.5 sum_k r_k W_kk."""
    lateral_diagonal = (params.phi.square() * params.precision[:, None]).sum(0)  # [K] W_kk
    residual = x - rate @ params.phi.T
    return 0.5 * (residual.square() * params.precision).sum(-1) + 0.5 * (rate * lateral_diagonal).sum(-1)


def test_poisson_update_is_natural_gradient_of_free_energy():
    """With b = diag(W)/2 and z replaced by its mean, step(u) - u = -lr exp(-u) dF/du at the prior u."""
    model, params, generator = small_params("poisson")
    lateral_diagonal = (params.phi.square() * params.precision[:, None]).sum(0).detach()
    params = dataclasses.replace(params, bias=lateral_diagonal / 2, u_max=50.0, u_min=-50.0)
    x = torch.rand(B, M, generator=generator, dtype=DTYPE)
    u_prior = torch.randn(B, K, generator=generator, dtype=DTYPE) * 0.5 - 1.0
    u = u_prior.clone().requires_grad_(True)
    rate = u.exp()
    kl = (u_prior.exp() - rate + rate * (u - u_prior)).sum(-1)  # KL(q || previous posterior)
    free_energy = (expected_error(x, rate, params) + kl).sum()
    (gradient,) = torch.autograd.grad(free_energy, u)
    mean_rate = u_prior.exp()
    latent = LatentSample(z=mean_rate, recon=decode(mean_rate, params))
    with torch.no_grad():
        updated = poisson.step(poisson.PoissonState(u_prior), latent, x, params).u
    # soft clamp at u_max = 50 is the identity to ~1e-20 here
    torch.testing.assert_close(updated - u_prior, -params.step_size.detach() * torch.exp(-u_prior) * gradient)


def test_poisson_update_is_linear_feedforward_plus_lateral():
    """u' = u + lr (Phi^T D x - b) - lr (Phi^T D Phi) z: drive and inhibition computed separately."""
    model, params, generator = small_params("poisson", seed=1)
    params = dataclasses.replace(params, u_max=50.0)
    x = torch.rand(B, M, generator=generator, dtype=DTYPE)
    z = torch.poisson(torch.full((B, K), 2.0, dtype=DTYPE), generator=generator)
    u = torch.randn(B, K, generator=generator, dtype=DTYPE)
    with torch.no_grad():
        feedforward = params.step_size * ((x * params.precision) @ params.phi - params.bias)
        lateral = params.step_size * (params.phi.T * params.precision) @ params.phi
        expected = u + feedforward - z @ lateral.T
        got = poisson.step(poisson.PoissonState(u), LatentSample(z, decode(z, params)), x, params).u
    torch.testing.assert_close(got, expected)


def test_gaussian_mean_update_is_natural_gradient():
    model, params, generator = small_params("gaussian")
    x = torch.rand(B, M, generator=generator, dtype=DTYPE)
    mean0 = torch.randn(B, K, generator=generator, dtype=DTYPE)
    log_scale = torch.randn(B, K, generator=generator, dtype=DTYPE) * 0.2 - 1.0
    mean = mean0.clone().requires_grad_(True)
    lateral_diagonal = (params.phi.square() * params.precision[:, None]).sum(0)
    expected_loss = 0.5 * ((x - mean @ params.phi.T).square() * params.precision).sum() + 0.5 * (
        log_scale.exp().square() * lateral_diagonal
    ).sum()
    (gradient,) = torch.autograd.grad(expected_loss, mean)
    zero_noise = torch.zeros(B, K, dtype=DTYPE)
    latent = LatentSample(z=mean0, recon=decode(mean0, params), noise=zero_noise)
    with torch.no_grad():
        state = gaussian.step(gaussian.GaussianState(mean0, log_scale), latent, x, params)
    torch.testing.assert_close(state.mean - mean0, -params.step_size.detach() * log_scale.exp().square() * gradient)


def test_gaussian_log_scale_update_is_natural_gradient_of_expected_error():
    """log s' - log s = -lr * (1/2) * d/dlog s E[error], the gradient taken by autograd of the closed form."""
    model, params, generator = small_params("gaussian", seed=2)
    x = torch.rand(B, M, generator=generator, dtype=DTYPE)
    mean = torch.randn(B, K, generator=generator, dtype=DTYPE)
    log_scale0 = torch.full((B, K), -1.5, dtype=DTYPE)
    log_scale = log_scale0.clone().requires_grad_(True)
    lateral_diagonal = (params.phi.square() * params.precision[:, None]).sum(0).detach()
    expected_error = 0.5 * ((x - mean @ params.phi.detach().T).square() * params.precision.detach()).sum() + 0.5 * (
        log_scale.exp().square() * lateral_diagonal
    ).sum()
    (gradient,) = torch.autograd.grad(expected_error, log_scale)
    noise = torch.randn(B, K, generator=generator, dtype=DTYPE)
    z = mean + log_scale0.exp() * noise
    with torch.no_grad():
        updated = gaussian.step(gaussian.GaussianState(mean, log_scale0), LatentSample(z, decode(z, params), noise), x, params)
        # undo the soft upper clamp c - softplus(c - y): y = c - log(expm1(c - out))
        ceiling = gaussian.LOG_SCALE_MAX
        unclamped = ceiling - torch.log(torch.expm1(ceiling - updated.log_scale))
    torch.testing.assert_close(unclamped - log_scale0, -params.step_size.detach() * 0.5 * gradient)


@pytest.mark.parametrize("n_steps", [1, 16, 100])
@pytest.mark.parametrize("family", ["poisson", "gaussian", "gaussian_relu"])
def test_trajectory_shapes_and_finiteness(n_steps, family):
    model = IterativeVAE(ModelConfig(family=family, n_inputs=M, n_latents=K), generator=torch.Generator().manual_seed(0))
    x = torch.rand(B, M, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        trajectory = model.trajectory(x, n_steps, generator=torch.Generator().manual_seed(2))
    assert trajectory.u.shape == (n_steps, B, K)
    assert trajectory.z.shape == (n_steps, B, K)
    assert trajectory.recon.shape == (n_steps, B, M)
    assert trajectory.kl.shape == (n_steps, B)
    assert trajectory.features.shape == (B, K)
    assert all(torch.isfinite(t).all() for t in trajectory)
    if family == "poisson":
        assert torch.all(trajectory.z == trajectory.z.round())
        assert trajectory.z.max() <= model.config.max_spike_count
        assert trajectory.u.min() >= model.config.u_min and trajectory.u.max() <= model.config.u_max
    torch.testing.assert_close(trajectory.recon, trajectory.z @ model.phi.detach().T)


def test_frames_drive_each_step_and_inference_is_stateless():
    """A sequence input uses frame t at step t; running twice with one seed gives the same result."""
    model = IterativeVAE(ModelConfig(n_inputs=M, n_latents=K, init_log_lr=0.0), generator=torch.Generator().manual_seed(0))
    static = torch.rand(B, M, generator=torch.Generator().manual_seed(1))
    frames = static.expand(5, B, M)
    with torch.no_grad():
        a = model.trajectory(static, 5, generator=torch.Generator().manual_seed(3))
        b = model.trajectory(frames, 5, generator=torch.Generator().manual_seed(3))
        c = model.trajectory(torch.zeros(5, B, M), 5, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(a.u, b.u)
    assert not torch.allclose(a.u, c.u)
    assert not any(isinstance(v, torch.Tensor) and v.dim() == 2 and v.shape[0] == B for v in vars(model).values())


def test_hard_upper_clamp_saturates_where_the_soft_clamp_pulls_down():
    """Closed forms: hard = clip(y, u_min, u_max); soft = max(u_min, u_max - log(1 + exp(u_max - y)))."""
    config = ModelConfig(n_inputs=6, n_latents=4, u_max=4.0)
    soft_model = IterativeVAE(config, generator=torch.Generator().manual_seed(0))
    hard_model = IterativeVAE(dataclasses.replace(config, hard_upper_clamp=True))
    hard_model.load_state_dict(soft_model.state_dict())
    x = torch.rand(3, 6, generator=torch.Generator().manual_seed(1))  # [B, M]
    for model in (soft_model, hard_model):
        with torch.no_grad():
            model.log_b.fill_(-20.0)  # no bias: the drive below decides u
    params_soft, params_hard = soft_model.inference_params(), hard_model.inference_params()
    state = poisson.PoissonState(u=torch.tensor([[-9.0, 1.0, 3.9, 6.0]]).expand(3, -1))  # [B, K]
    latent = LatentSample(z=torch.zeros(3, 4), recon=torch.zeros(3, 6))
    drive = params_soft.step_size * ((x * params_soft.precision) @ params_soft.phi - params_soft.bias)  # [B, K]
    y = state.u + drive
    expected_hard = y.clamp(min=-8.0, max=4.0)
    expected_soft = torch.clamp(4.0 - torch.log1p(torch.exp(4.0 - y)), min=-8.0)
    torch.testing.assert_close(poisson.step(state, latent, x, params_hard).u, expected_hard)
    torch.testing.assert_close(poisson.step(state, latent, x, params_soft).u, expected_soft)
    assert (expected_hard >= expected_soft).all() and (expected_hard - expected_soft).abs().max() > 0.01


def test_leak_relaxes_a_neuron_without_input_geometrically_to_its_fixed_point():
    """Phi = 0 removes every drive: u_{t+1} = u_t - lr b - a (u_t - u_prior), so with u* = u_prior - lr b / a
    the offset shrinks geometrically, u_t - u* = (1 - a)^t (u_0 - u*), whatever the spikes."""
    leak = 2.0**-3
    model = IterativeVAE(ModelConfig(n_inputs=6, n_latents=4, leak=leak, u_min=-50.0, u_max=50.0, hard_upper_clamp=True))
    model = model.to(DTYPE)
    with torch.no_grad():
        model.phi.zero_()
        model.u_prior.copy_(torch.tensor([-3.0, -1.0, 0.5, 2.0], dtype=DTYPE))
        model.log_b.copy_(torch.tensor([-3.0, -1.0, -2.0, -4.0], dtype=DTYPE))
    params = model.inference_params()
    fixed_point = params.u_prior - params.step_size * params.bias / leak  # [K]
    n_steps = 40
    with torch.no_grad():
        steps = list(model.iterate(torch.rand(2, 6, dtype=DTYPE), n_steps, generator=torch.Generator().manual_seed(0)))
    for t, step in enumerate(steps, start=1):  # the initial state is u_0 = u_prior
        expected = fixed_point + (1 - leak) ** t * (params.u_prior - fixed_point)  # [K]
        torch.testing.assert_close(step.u, expected.expand(2, -1), rtol=0, atol=1e-12)


@pytest.mark.parametrize("leak", [0.0, 2.0**-4])
def test_leak_bounds_the_random_walk_of_a_silent_neuron(leak):
    """A neuron that never fires integrates its input noise: u_{t+1} = u_t + lr xi_t - a u_t (b = 0, u_prior = 0).

    Closed forms for xi ~ N(0, s^2): with a = 0, Var u_t = lr^2 s^2 t grows without bound; with a > 0 it tends
    to lr^2 s^2 (1 - (1 - a)^(2t)) / (1 - (1 - a)^2). Monte Carlo over 4000 independent neurons: the sample
    variance has relative sd sqrt(2 / 4000) = 2.2%, so 10% is 4.5 sd."""
    n_chains, n_steps, noise_sd = 4000, 300, 0.7
    model = IterativeVAE(ModelConfig(n_inputs=3, n_latents=n_chains, leak=leak, u_min=-1e6, u_max=1e6, hard_upper_clamp=True))
    model = model.to(DTYPE)
    with torch.no_grad():
        model.u_prior.zero_()
        model.log_b.fill_(-200.0)  # b = 0
    params = model.inference_params()
    lr = float(params.step_size)
    generator = torch.Generator().manual_seed(5)
    state = poisson.initial_state(params, 1)
    silent = LatentSample(z=torch.zeros(1, n_chains, dtype=DTYPE), recon=None)
    for _ in range(n_steps):
        noise = torch.randn(1, n_chains, generator=generator, dtype=DTYPE) * noise_sd  # [1, K] the drive xi_t
        state = poisson.update(state, silent, noise, params)
    if leak:
        decay = (1 - leak) ** 2
        expected = lr**2 * noise_sd**2 * (1 - decay**n_steps) / (1 - decay)
    else:
        expected = lr**2 * noise_sd**2 * n_steps
    assert float(state.u.var()) == pytest.approx(expected, rel=0.10)


def test_leak_is_validated():
    with pytest.raises(ValueError, match="leak"):
        ModelConfig(leak=1.0)
    with pytest.raises(ValueError, match="leak"):
        ModelConfig(leak=-0.1)
    with pytest.raises(ValueError, match="Poisson"):
        ModelConfig(family="gaussian", leak=0.01)
    assert ModelConfig(leak=2.0**-8).leak == 2.0**-8
