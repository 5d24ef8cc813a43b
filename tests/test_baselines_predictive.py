"""Predictive coding: the energy never increases along inference; iPC's one SGD step equals its loop."""

import pytest
import torch

from ipvae.train.baselines.predictive_coding import CodingParams, energy, initial_state, lipschitz_constant, step
from ipvae.train.config import ModelConfig
from ipvae.train.registry import Model, build_model

N_INPUTS, N_LATENTS, BATCH = 20, 30, 6
SEEDS = range(5)


def random_problem(seed: int, prior_precision: float, sparsity: float, rate: float, nonnegative: bool):
    generator = torch.Generator().manual_seed(seed)
    phi = torch.randn(N_INPUTS, N_LATENTS, generator=generator, dtype=torch.float64)  # [M, K]
    phi = phi / phi.norm(dim=0)
    x = torch.randn(BATCH, N_INPUTS, generator=generator, dtype=torch.float64)  # [B, M]
    lipschitz = lipschitz_constant(phi, prior_precision, sparsity)
    params = CodingParams(phi=phi, prior_precision=prior_precision, sparsity=sparsity,
                          step_size=rate / lipschitz, nonnegative=nonnegative)
    return params, x


def energies_along_inference(params: CodingParams, x: torch.Tensor, n_steps: int) -> torch.Tensor:
    state = initial_state(x, params)
    values = [energy(state.z, x, params)]
    for _ in range(n_steps):
        state = step(state, x, params)
        values.append(energy(state.z, x, params))
    return torch.stack(values)  # [T + 1, B]


@pytest.mark.parametrize("nonnegative", [False, True])
@pytest.mark.parametrize("prior_precision, sparsity", [(0.0, 0.0), (0.5, 0.0), (0.1, 0.4)])
def test_energy_never_increases_with_step_one_over_lipschitz(nonnegative, prior_precision, sparsity):
    for seed in SEEDS:
        params, x = random_problem(seed, prior_precision, sparsity, 1.0, nonnegative)
        values = energies_along_inference(params, x, 300)
        increases = values[1:] - values[:-1]  # [T, B]
        assert increases.max() <= 1e-10 * values[0].max(), (seed, increases.max())
        assert (values[-1] < 0.9 * values[0]).all()  # and inference does reduce it


def test_the_energy_check_detects_an_unstable_step():
    """Oracle sensitivity: a step of 2.5 / L (beyond the stable 2 / L) makes the energy grow."""
    params, x = random_problem(0, 0.0, 0.0, 2.5, False)
    values = energies_along_inference(params, x, 50)
    assert (values[1:] - values[:-1]).max() > 0


def tiny_model(incremental: bool) -> "Model":
    config = ModelConfig(kind="predictive_coding", n_inputs=N_INPUTS, n_latents=N_LATENTS,
                         options=dict(prior_precision=0.1, sparsity=0.2, nonnegative=False, incremental=incremental,
                                      incremental_rate=0.05, inference_rate=0.5))
    return build_model(config, generator=torch.Generator().manual_seed(0)).double()


def test_incremental_pc_sgd_step_equals_the_incremental_loop():
    n_steps, rate = 7, 0.05
    model = tiny_model(incremental=True)
    assert isinstance(model, Model)
    x = torch.randn(BATCH, N_INPUTS, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    # the iPC loop written out: z and Phi updated together from (z_t, Phi_t), t = 0..T (z_0 = 0)
    phi = model.phi.detach().clone()
    params = model.coding_params(phi)
    z = torch.zeros(BATCH, N_LATENTS, dtype=torch.float64)
    for _ in range(n_steps + 1):
        error = x - z @ phi.T  # [B, M]
        dictionary_gradient = -(error.T @ z) / BATCH  # [M, K] d/dPhi of the batch-mean energy
        z_gradient = -(error @ phi) + 0.1 * z + 2 * 0.2 * z / (1 + z.square())  # [B, K]
        z, phi = z - params.step_size * z_gradient, phi - rate * dictionary_gradient
    optimizer = torch.optim.SGD(model.parameters(), lr=rate)
    model.loss(x, n_steps).total.backward()
    optimizer.step()
    torch.testing.assert_close(model.phi.detach(), phi, atol=1e-12, rtol=1e-10)


def test_pc_dictionary_gradient_is_the_energy_gradient_at_the_inferred_code():
    model = tiny_model(incremental=False)
    x = torch.randn(BATCH, N_INPUTS, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    with torch.no_grad():
        z = model.trajectory(x, 40).z[-1]  # [B, K]
    model.loss(x, 40).total.backward()
    expected = -((x - z @ model.phi.detach().T).T @ z) / BATCH
    torch.testing.assert_close(model.phi.grad, expected)
    assert model.macs_per_inference(3) == 2 * 3 * N_INPUTS * N_LATENTS
