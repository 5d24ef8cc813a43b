"""The fast training loss against the direct computation it replaced (``ipvae.train.reference_loss``).

The fast path computes the error and the drive through the [K, K] lateral weights and evaluates the
relaxed Poisson count only for the neurons whose first arrival can matter; the reference decodes
Phi z in pixel space at every step and sums the sigmoids of every arrival, differentiated by autograd.
Both consume the same random numbers, so their losses, gradients and short training runs agree to
float rounding.
"""

from functools import partial

import pytest
import torch

from ipvae.train.config import ModelConfig
from ipvae.data import planted_dictionary_data
from ipvae.train.distributions import COMPACT_FRACTION, PoissonLatent, draw_active_arrival_noise
from ipvae.train.model import IterativeVAE, precision_weighted_terms
from ipvae.train.reference_loss import legacy_loss, reference_loss, reference_relaxed_count

SIDE = 6
N_LATENTS = 16
BATCH = 50
T_TRAIN = 6
N_OPTIMISER_STEPS = 20


def loss_trajectory(loss_fn, family: str, temperature: float, dtype: torch.dtype) -> list[float]:
    """Losses of N_OPTIMISER_STEPS Adamax steps on planted bars from one seed."""
    planted = planted_dictionary_data(BATCH * 4, side=SIDE, n_active=2.0, noise_std=0.05, seed=0)
    model = IterativeVAE(ModelConfig(family=family, n_inputs=SIDE**2, n_latents=N_LATENTS),
                         generator=torch.Generator().manual_seed(1)).to(dtype)
    optimizer = torch.optim.Adamax(model.parameters(), lr=1e-2)
    sampling = torch.Generator().manual_seed(2)
    losses = []
    for step in range(N_OPTIMISER_STEPS):
        x = planted.x[(step % 4) * BATCH : (step % 4 + 1) * BATCH].to(dtype)  # [B, M]
        terms = loss_fn(model, x, T_TRAIN, beta=0.5, temperature=temperature, generator=sampling)
        optimizer.zero_grad(set_to_none=True)
        terms.total.backward()
        optimizer.step()
        losses.append(float(terms.total))
    return losses


def fast_loss(model, *args, **kwargs):
    return model.loss(*args, **kwargs)


def reference_with_fast_noise(model, *args, **kwargs):
    """The direct computation consuming the same random numbers as ``model.loss``."""
    return reference_loss(model, *args, fast_noise=True, **kwargs)


@pytest.mark.parametrize("family,temperature", [("poisson", 1.0), ("poisson", 0.07), ("gaussian_relu", 1.0)])
def test_short_run_loss_trajectory_matches_reference(family, temperature):
    """float64: at low temperature the run amplifies rounding differences (it does so between thread
    counts too), so float32 trajectories part after ~10 steps; float64 ones stay within 1e-9."""
    fast = loss_trajectory(fast_loss, family, temperature, torch.float64)
    reference = loss_trajectory(reference_with_fast_noise, family, temperature, torch.float64)
    assert fast[0] != fast[-1]  # the run trains
    torch.testing.assert_close(torch.tensor(fast), torch.tensor(reference), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("family,temperature", [("poisson", 1.0), ("poisson", 0.07), ("gaussian_relu", 1.0)])
def test_legacy_numerics_match_the_old_code_path(family, temperature):
    """``legacy_numerics`` (every arrival's noise drawn) against the direct computation as the trainer had it."""
    legacy = loss_trajectory(legacy_loss, family, temperature, torch.float64)
    reference = loss_trajectory(reference_loss, family, temperature, torch.float64)
    torch.testing.assert_close(torch.tensor(legacy), torch.tensor(reference), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("legacy,prior_kl,leak", [(False, False, 0.0), (True, False, 0.0), (False, True, 0.0),
                                                   (False, False, 2.0**-8)])
def test_warm_start_and_lateral_penalty_match_the_direct_computation(legacy, prior_kl, leak):
    """The shipped recipe's last stage: a warm start of exact draws (through W, or through pixel space
    with legacy numerics), then relaxed steps, plus the lateral L1 penalty (and, with ``prior_kl``, the
    first scored KL against the prior; with ``leak``, the leak toward u_prior): terms and gradients of the
    objective equal the direct computation's on the same random numbers."""
    model = IterativeVAE(ModelConfig(n_inputs=784, n_latents=64, u_max=4.0, hard_upper_clamp=True, leak=leak),
                         generator=torch.Generator().manual_seed(0)).double()
    x = torch.rand(20, 784, generator=torch.Generator().manual_seed(1), dtype=torch.float64)  # [B, M]
    options = dict(beta=0.7, temperature=0.07, warm_start_steps=9, lateral_l1=60.0, warm_start_prior_kl=prior_kl)
    loss = partial(legacy_loss, model) if legacy else model.loss
    got = loss(x, 6, generator=torch.Generator().manual_seed(2), **options)
    expected = reference_loss(model, x, 6, generator=torch.Generator().manual_seed(2), fast_noise=not legacy, **options)
    assert got.penalty is not None and float(got.penalty) > 0
    for name in got._fields:
        tolerance = 1e-6 if name == "zeros" else 1e-10  # the fast path averages the zeros in float32
        torch.testing.assert_close(getattr(got, name), getattr(expected, name), rtol=tolerance, atol=tolerance,
                                   check_dtype=False, msg=lambda text, name=name: f"{name}: {text}")
    # u_prior gets a gradient only through the prior KL or the leak's pull toward it: the warm start's
    # state is detached
    parameters = list(model.parameters())
    got_grads = torch.autograd.grad(got.objective, parameters, allow_unused=True)
    expected_grads = torch.autograd.grad(expected.objective, parameters, allow_unused=True)
    assert sum(grad is not None for grad in got_grads) == len(parameters) - (0 if prior_kl or leak else 1)
    for a, b in zip(got_grads, expected_grads):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-8 * float(b.abs().max()))


def test_short_run_loss_trajectory_matches_reference_in_float32_at_high_temperature():
    fast = loss_trajectory(fast_loss, "poisson", 1.0, torch.float32)
    reference = loss_trajectory(reference_with_fast_noise, "poisson", 1.0, torch.float32)
    torch.testing.assert_close(torch.tensor(fast), torch.tensor(reference), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("temperature", [0.0, 0.3])
def test_loss_terms_and_gradients_match_reference_on_a_mnist_sized_model(temperature):
    """K = 64, M = 784 with high-rate and silent neurons: every term and every gradient."""
    model = IterativeVAE(ModelConfig(n_inputs=784, n_latents=64), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        model.u_prior.copy_(torch.linspace(-7.0, 3.0, 64))  # rates from 1e-3 to 20 (above the cap)
    x = torch.rand(20, 784, generator=torch.Generator().manual_seed(1))  # [B, M]
    fast = model.loss(x, 8, beta=0.7, temperature=temperature, generator=torch.Generator().manual_seed(2))
    reference = reference_with_fast_noise(model, x, 8, beta=0.7, temperature=temperature,
                                          generator=torch.Generator().manual_seed(2))
    for got, expected in zip(fast, reference):
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    if temperature > 0:
        parameters = list(model.parameters())
        for got, expected in zip(torch.autograd.grad(fast.total, parameters),
                                 torch.autograd.grad(reference.total, parameters)):
            torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4 * float(expected.abs().max()))


@pytest.mark.parametrize("low,high", [(-9.0, -3.0), (-2.0, 4.0)])
def test_relaxed_count_matches_textbook_sum_in_compact_and_dense_regimes(low, high):
    """All-arrival noise: mostly silent neurons (the compact gather) and mostly active ones (the dense
    pass) against autograd through the textbook construction; and the old dense sampler gives the same."""
    log_rate = torch.empty(40, 50, dtype=torch.float64).uniform_(low, high, generator=torch.Generator().manual_seed(0))
    log_rate.requires_grad_(True)
    temperature = 0.2
    inverse_rate = torch.exp(-log_rate.detach())
    first_arrivals = torch.empty((15, 40, 50), dtype=torch.float64).exponential_(
        generator=torch.Generator().manual_seed(4))[0] * inverse_rate
    active_fraction = float((first_arrivals < 1 + 30 * temperature).double().mean())
    assert (active_fraction <= COMPACT_FRACTION) == (high < 0)  # each case exercises its branch
    weights = torch.randn(40, 50, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    fused = PoissonLatent(log_rate, 15).rsample(temperature=temperature, generator=torch.Generator().manual_seed(4))
    unit = torch.empty((15, 40, 50), dtype=torch.float64).exponential_(generator=torch.Generator().manual_seed(4))
    textbook = textbook_relaxed_count(log_rate, unit, temperature)
    (grad_fused,) = torch.autograd.grad((fused * weights).sum(), log_rate)
    (grad_textbook,) = torch.autograd.grad((textbook * weights).sum(), log_rate)
    torch.testing.assert_close(fused, textbook, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grad_fused, grad_textbook, rtol=1e-10, atol=1e-11)
    old = reference_relaxed_count(log_rate, 15, temperature, torch.Generator().manual_seed(4))
    (grad_old,) = torch.autograd.grad((old * weights).sum(), log_rate)
    torch.testing.assert_close(old, textbook, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grad_old, grad_textbook, rtol=1e-10, atol=1e-11)


def textbook_relaxed_count(log_rate, unit_exponentials, temperature):
    """sum_j sigmoid((1 - T_j) / tau), T_j = cumsum(E)_j / r, differentiable by autograd."""
    arrivals = torch.cumsum(unit_exponentials, dim=0) / log_rate.exp()  # [n, B, K]
    return torch.sigmoid((1 - arrivals) / temperature).sum(0)


@pytest.mark.parametrize("low,high", [(-9.0, -3.0), (-2.0, 4.0)])
def test_active_arrival_noise_gives_the_textbook_count_whatever_the_undrawn_arrivals(low, high):
    """The default noise draws E_2..E_n only for the neurons whose first arrival can matter. The
    textbook count of the same draws, with the undrawn arrivals set to 1 or to 10^6 (they come after a
    negligible first arrival, so no value can matter), equals the sampler's, with its gradient."""
    log_rate = torch.empty(40, 50, dtype=torch.float64).uniform_(low, high, generator=torch.Generator().manual_seed(0))
    log_rate.requires_grad_(True)
    temperature = 0.2
    noise = draw_active_arrival_noise(log_rate.detach(), 15, temperature, torch.Generator().manual_seed(4))
    assert 0 < noise.active.numel() < log_rate.numel()  # both kinds of neuron occur
    weights = torch.randn(40, 50, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    fused = PoissonLatent(log_rate, 15).rsample(temperature=temperature, generator=torch.Generator().manual_seed(4),
                                                fast_noise=True)
    (grad_fused,) = torch.autograd.grad((fused * weights).sum(), log_rate)
    for fill in (1.0, 1e6):
        textbook = textbook_relaxed_count(log_rate, noise.dense(fill), temperature)
        (grad_textbook,) = torch.autograd.grad((textbook * weights).sum(), log_rate)
        torch.testing.assert_close(fused, textbook, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(grad_fused, grad_textbook, rtol=1e-10, atol=1e-11)


def test_active_and_all_arrival_noise_give_the_same_count_distribution():
    """Monte Carlo over 4,000 independent draws per neuron: the mean relaxed count of each noise layout
    matches the other within 5 standard errors (what the textbook construction's spread allows), at
    rates from 0.01 to 20 spanning silent, active and capped neurons."""
    n_draws = 4000
    log_rate = torch.linspace(-4.6, 3.0, 12, dtype=torch.float64).expand(n_draws, -1)  # [draws, K]
    means, errors = [], []
    for fast_noise in (True, False):
        counts = PoissonLatent(log_rate, 15).rsample(temperature=0.3, generator=torch.Generator().manual_seed(9),
                                                     fast_noise=fast_noise)  # [draws, K]
        means.append(counts.mean(0))
        errors.append(counts.std(0) / n_draws**0.5)
    standard_error = (errors[0].square() + errors[1].square()).sqrt()  # [K]
    assert torch.all((means[0] - means[1]).abs() <= 5 * standard_error + 1e-12)


def test_prior_kl_after_a_warm_start_is_the_closed_form_poisson_kl_to_the_prior():
    """One scored step after a warm start, same random numbers: the KL term with ``warm_start_prior_kl``
    is KL(q_{W+1} || q_0) = sum_k r0 f(r / r0), f(y) = 1 - y + y log y, on the u_{W+1} that the plain
    loss's KL(q_{W+1} || q_W) pins down; without a warm start the option changes nothing."""
    model = IterativeVAE(ModelConfig(n_inputs=36, n_latents=12, u_max=4.0, hard_upper_clamp=True),
                         generator=torch.Generator().manual_seed(0)).double()
    x = torch.rand(8, 36, generator=torch.Generator().manual_seed(1), dtype=torch.float64)  # [B, M]
    terms = {flag: model.loss(x, 1, beta=1.0, temperature=0.07, generator=torch.Generator().manual_seed(2),
                              warm_start_steps=5, warm_start_prior_kl=flag) for flag in (False, True)}
    assert float(terms[False].nll) == float(terms[True].nll)  # the same path
    # the states themselves: the same warm start and first update, replayed through iterate's pieces
    params = model.inference_params()
    generator = torch.Generator().manual_seed(2)
    weighted = precision_weighted_terms(x, params)
    state = model._lateral_warm_start(model.dynamics.initial_state(params, 8), weighted, params, 5, generator)
    latent = model.dynamics.draw(state, params, 0.07, generator, None, fast_noise=True)
    following = model.dynamics.update(state, latent, weighted.feedforward - latent.z @ weighted.lateral, params)
    rate, previous_rate, prior_rate = following.u.exp(), state.u.exp(), params.u_prior.exp()  # [B, K], [B, K], [K]

    def closed_form(r, r0):
        y = r / r0
        return (r0 * (1 - y + y * torch.log(y))).sum(-1).mean()

    torch.testing.assert_close(terms[False].kl, closed_form(rate, previous_rate), rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(terms[True].kl, closed_form(rate, prior_rate), rtol=1e-9, atol=1e-9)
    assert float(terms[True].kl) > 10 * float(terms[False].kl)  # the prior is far from a converged posterior
    cold = {flag: model.loss(x, 3, beta=1.0, temperature=0.07, generator=torch.Generator().manual_seed(3),
                             warm_start_prior_kl=flag).kl for flag in (False, True)}
    assert float(cold[False]) == float(cold[True])


def test_weighted_gram_backward_matches_autograd():
    from ipvae.train.inference.common import _WeightedGram

    generator = torch.Generator().manual_seed(0)
    phi = torch.randn(9, 5, dtype=torch.float64, generator=generator, requires_grad=True)
    precision = torch.rand(9, dtype=torch.float64, generator=generator).add(0.5).requires_grad_(True)
    torch.autograd.gradcheck(_WeightedGram.apply, (phi, precision))
    weights = torch.randn(5, 5, dtype=torch.float64, generator=generator)  # a non-symmetric upstream gradient
    got = torch.autograd.grad((_WeightedGram.apply(phi, precision) * weights).sum(), (phi, precision))
    expected = torch.autograd.grad((((phi * precision[:, None]).T @ phi) * weights).sum(), (phi, precision))
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b)
