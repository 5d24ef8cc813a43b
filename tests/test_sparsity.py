"""Sparsity against t (benchmarks/sparsity_vs_t.py, docs/sparsity.md).

Oracles:
- A planted model whose neurons do not interact (disjoint pixel supports, so W = Phi^T D Phi is diagonal):
  each neuron's mean-field fixed point solves lr (f_k - W_kk E[z](u) - b_k) = a (u - u_prior_k), a scalar
  root found by scipy's brentq, and its zeros are exp(-exp(u*)). The simulated stationary zeros must match
  it from a sparse start and from a dense start, and the approach must come from the side each starts on.
- The start / leak-target variant written as weights (``as_weights``) is the same update as the variant:
  one step from random potentials and counts, two formulations of the dynamics.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.optimize import brentq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from sparsity_vs_t import VARIANTS, Variant, as_weights, main, simulate, variant_params  # noqa: E402

from ipvae.train.inference import InferenceParams  # noqa: E402
from ipvae.train.inference import poisson as toolkit_poisson  # noqa: E402

N_LATENTS, PIXELS_PER_LATENT = 24, 4
ATOM = 0.05  # Phi entries on a neuron's own pixels: W_kk = 4 * 0.05^2 = 0.01
LEAK = 2.0**-6
STEP_SIZE = 1.0
U_PRIOR = -5.0
TARGET_U = np.linspace(-2.0, 1.0, N_LATENTS)  # planted fixed points: zeros from .87 to .07


def planted_model() -> tuple[InferenceParams, torch.Tensor, np.ndarray]:
    """Non-interacting neurons with drives chosen so the mean-field fixed points are TARGET_U (up to the cap).

    Returns the parameters, one image x [1, M], and the fixed points recomputed by brentq (the oracle)."""
    n_pixels = N_LATENTS * PIXELS_PER_LATENT
    phi = torch.zeros(n_pixels, N_LATENTS, dtype=torch.float64)
    for k in range(N_LATENTS):
        phi[k * PIXELS_PER_LATENT:(k + 1) * PIXELS_PER_LATENT, k] = ATOM
    bias = torch.full((N_LATENTS,), 0.02, dtype=torch.float64)
    lateral_diagonal = PIXELS_PER_LATENT * ATOM**2
    # f_k = W_kk exp(u*) + b_k + a (u* - u_prior) / lr, with f_k = ATOM * (sum of the neuron's pixels)
    drive = lateral_diagonal * np.exp(TARGET_U) + 0.02 + LEAK * (TARGET_U - U_PRIOR) / STEP_SIZE
    x = torch.from_numpy(np.repeat(drive / (ATOM * PIXELS_PER_LATENT), PIXELS_PER_LATENT))[None, :]  # [1, M]
    params = InferenceParams(
        phi=phi, precision=torch.ones(n_pixels, dtype=torch.float64), bias=bias,
        step_size=torch.tensor(STEP_SIZE, dtype=torch.float64), u_prior=torch.full((N_LATENTS,), U_PRIOR, dtype=torch.float64),
        u_min=-8.0, u_max=4.0, max_spike_count=31, hard_upper_clamp=True, leak=LEAK,
    )
    feedforward = (x * params.precision) @ phi  # [1, K]

    def balance(u: float, k: int) -> float:  # lr (f - W_kk E[min(Pois(e^u), 31)] - b) - a (u - u_prior); decreasing in u
        expected = float(toolkit_poisson.expected_code(toolkit_poisson.PoissonState(torch.tensor([[u]])), params))
        return STEP_SIZE * (float(feedforward[0, k]) - lateral_diagonal * expected - 0.02) - LEAK * (u - U_PRIOR)

    fixed = np.array([brentq(balance, -8.0, 4.0, args=(k,)) for k in range(N_LATENTS)])
    return params, x, fixed


def stationary_zeros(params, x, start_u, n_steps, seed):
    images = x.expand(32, -1).float()  # 32 independent chains of the same image
    params32 = dataclasses.replace(params, **{f.name: getattr(params, f.name).float() for f in dataclasses.fields(params)
                                              if isinstance(getattr(params, f.name), torch.Tensor)})
    return simulate(params32, Variant("planted", start_u=start_u), images, n_steps, seed)


def test_planted_fixed_point_is_reached_from_both_sides():
    params, x, fixed = planted_model()
    expected = float(np.exp(-np.exp(fixed)).mean())  # zeros at the fixed point
    late = slice(600, 1000)
    sparse = stationary_zeros(params, x, None, 1000, seed=0)  # u_0 = u_prior = -5: zeros .99 at t = 0
    dense = stationary_zeros(params, x, 2.0, 1000, seed=1)  # u_0 = 2: zeros .0006 at t = 0
    assert abs(sparse["zeros_curve"][late].mean() - expected) < 0.02
    assert abs(dense["zeros_curve"][late].mean() - expected) < 0.02
    # the approach: from the sparse start the code is sparser than its fixed point early on, from the dense start denser
    assert sparse["zeros_curve"][:16].mean() > expected + 0.1
    assert dense["zeros_curve"][:16].mean() < expected - 0.1


def test_variant_as_weights_is_the_same_update():
    generator = torch.Generator().manual_seed(0)
    k = 16
    params = InferenceParams(
        phi=torch.randn(30, k, generator=generator, dtype=torch.float64) * 0.1,
        precision=torch.rand(30, generator=generator, dtype=torch.float64) + 0.5,
        bias=torch.rand(k, generator=generator, dtype=torch.float64) * 0.1 + 0.05,
        step_size=torch.tensor(0.136, dtype=torch.float64),
        u_prior=torch.rand(k, generator=generator, dtype=torch.float64) * 4.0 - 6.0,
        u_min=-8.0, u_max=4.0, max_spike_count=31, hard_upper_clamp=True, leak=2.0**-8,
    )
    variant = VARIANTS["dense_side"]
    u_prior, bias = as_weights(params, variant)
    as_weights_params = dataclasses.replace(params, u_prior=u_prior, bias=bias)
    direct = variant_params(params, variant)
    u = torch.rand(8, k, generator=generator, dtype=torch.float64) * 10.0 - 7.0  # [B, K]
    drive = torch.randn(8, k, generator=generator, dtype=torch.float64)  # [B, K]
    stepped_direct = toolkit_poisson.update(toolkit_poisson.PoissonState(u), None, drive, direct).u
    stepped_weights = toolkit_poisson.update(toolkit_poisson.PoissonState(u), None, drive, as_weights_params).u
    torch.testing.assert_close(stepped_weights, stepped_direct, rtol=0.0, atol=1e-12)
    start = toolkit_poisson.initial_state(as_weights_params, 1).u[0]
    assert torch.all(start == variant.start_u)
    with pytest.raises(ValueError):
        as_weights(params, VARIANTS["authors"])


def test_benchmark_refuses_a_missing_run(tmp_path, capsys):
    assert main([str(tmp_path / "nothing"), "--quick", "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and len(error.strip().splitlines()) == 1


@pytest.mark.slow
def test_shipped_model_fixed_point_and_the_dense_side_start(tmp_path):
    """The shipped model: a sparse and a dense start settle on the same code (the same fixed point), and the
    dense-side variant does not lose zeros after t = 64 on MNIST and Fashion-MNIST (issue 22's criterion)."""
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "sparsity_vs_t.py"), "--n-images", "100",
                             "--sets", "mnist", "fashion_mnist", "--variants", "shipped", "dense_start", "dense_side",
                             "--out", str(tmp_path)], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((tmp_path / "sparsity.json").read_text())
    for set_name in ("mnist", "fashion_mnist"):
        rows = report["results"][set_name]
        assert abs(rows["shipped"]["zeros"]["1000"] - rows["dense_start"]["zeros"]["1000"]) < 0.01
        assert report["mechanism"][set_name]["u_correlation_sparse_vs_dense_start"] > 0.99
        assert rows["dense_side"]["zeros"]["1000"] >= rows["dense_side"]["zeros"]["64"] - 0.01
