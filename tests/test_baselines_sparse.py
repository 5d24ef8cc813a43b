"""Sparse coding (LCA, ISTA, FISTA): fixed points against scikit-learn's Lasso; dictionary recovery."""

import numpy as np
import pytest
import torch
from sklearn.linear_model import Lasso

from ipvae.train.baselines.common import spectral_norm_squared
from ipvae.train.baselines.sparse_coding import SPARSE_STEPS, SparseParams, energy, initial_state
from ipvae.train.config import ModelConfig
from ipvae.train.registry import Model, build_model

N_INPUTS, N_LATENTS = 24, 32  # overcomplete, as in the paper's K > M
SPARSITY = 0.3
STEPS = {"lca": 4000, "ista": 4000, "fista": 800}
RATES = {"lca": 1.0, "ista": 1.0, "fista": 1.0}  # steps (LCA: dt/tau) in units of 1/L


def lasso_code(phi: torch.Tensor, x: torch.Tensor, sparsity: float, nonnegative: bool) -> torch.Tensor:
    """sklearn minimises 1/(2 n) ||x - Phi a||^2 + alpha ||a||_1 with n = M rows: alpha = lambda / M."""
    lasso = Lasso(alpha=sparsity / phi.shape[0], fit_intercept=False, positive=nonnegative,
                  tol=1e-12, max_iter=200_000)
    codes = [lasso.fit(phi.numpy(), sample.numpy()).coef_.copy() for sample in x]
    return torch.from_numpy(np.stack(codes))


def planted_problem(seed: int):
    generator = torch.Generator().manual_seed(seed)
    phi = torch.randn(N_INPUTS, N_LATENTS, generator=generator, dtype=torch.float64)
    phi = phi / phi.norm(dim=0)  # [M, K]
    sparse = (torch.rand(4, N_LATENTS, generator=generator) < 0.15).double()  # [B, K]
    x = (sparse * torch.rand(4, N_LATENTS, generator=generator)) @ phi.T  # [B, M]
    x = x + 0.05 * torch.randn(x.shape, generator=generator, dtype=torch.float64)
    return phi, x


@pytest.mark.parametrize("algorithm", ["lca", "ista", "fista"])
@pytest.mark.parametrize("nonnegative", [True, False])
@pytest.mark.parametrize("seed", [0, 1])
def test_fixed_point_is_the_lasso_solution(algorithm, nonnegative, seed):
    phi, x = planted_problem(seed)
    params = SparseParams(phi=phi, sparsity=SPARSITY, rate=RATES[algorithm], nonnegative=nonnegative,
                          lipschitz=spectral_norm_squared(phi))
    state = initial_state(params, x.shape[0])
    for _ in range(STEPS[algorithm]):
        state = SPARSE_STEPS[algorithm](state, x, params)
    expected = lasso_code(phi, x, SPARSITY, nonnegative)
    assert (expected != 0).any() and (expected == 0).any()  # a sparse, non-trivial solution
    torch.testing.assert_close(state.code, expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(energy(state.code, x, params), energy(expected, x, params), atol=1e-8, rtol=1e-9)


def test_ista_energy_never_increases():
    """Proximal gradient with step 1/L is a descent method (Beck & Teboulle, Lemma 2.3)."""
    for seed in range(3):
        phi, x = planted_problem(seed)
        params = SparseParams(phi=phi, sparsity=SPARSITY, rate=1.0, nonnegative=False,
                              lipschitz=spectral_norm_squared(phi))
        state = initial_state(params, x.shape[0])
        previous = energy(state.code, x, params)
        for _ in range(200):
            state = SPARSE_STEPS["ista"](state, x, params)
            current = energy(state.code, x, params)
            assert torch.all(current <= previous + 1e-12)
            previous = current


@pytest.mark.parametrize("algorithm", ["lca", "ista", "fista"])
def test_model_interface_float32_agrees_with_lasso(algorithm):
    config = ModelConfig(kind="sparse_coding", n_inputs=N_INPUTS, n_latents=N_LATENTS,
                         options=dict(sparse_algorithm=algorithm, sparsity=SPARSITY, inference_rate=RATES[algorithm]))
    model = build_model(config, generator=torch.Generator().manual_seed(0))
    assert isinstance(model, Model)
    torch.testing.assert_close(model.phi.norm(dim=0), torch.ones(N_LATENTS))
    _, x64 = planted_problem(3)
    x = x64.float()
    with torch.no_grad():
        trajectory = model.trajectory(x, STEPS[algorithm])
    expected = lasso_code(model.phi.detach().double(), x64, SPARSITY, nonnegative=True)
    torch.testing.assert_close(trajectory.z[-1].double(), expected, atol=2e-3, rtol=0)
    assert model.macs_per_inference(5) == 2 * 5 * N_INPUTS * N_LATENTS
    terms = model.loss(x, 50)
    terms.total.backward()
    assert model.phi.grad is not None and torch.isfinite(model.phi.grad).all()
    with torch.no_grad():
        model.phi.mul_(3.0)
    model.project_parameters()
    torch.testing.assert_close(model.phi.norm(dim=0), torch.ones(N_LATENTS))
