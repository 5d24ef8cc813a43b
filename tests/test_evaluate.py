"""Evaluation metrics against independent definitions (scikit-learn, closed forms)."""

import numpy as np
import pytest
import torch
from sklearn.metrics import r2_score

from ipvae.train.config import ModelConfig
from ipvae.train.evaluate import EvalSettings, r2_per_image, run_inference, treves_rolls_sparsity
from ipvae.train.model import IterativeVAE


def test_r2_per_image_matches_sklearn():
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(5, 30, generator=generator, dtype=torch.float64)
    recon = x + 0.2 * torch.randn(5, 30, generator=generator, dtype=torch.float64)
    expected = [r2_score(x[i].numpy(), recon[i].numpy()) for i in range(5)]
    np.testing.assert_allclose(r2_per_image(x, recon).numpy(), expected, rtol=1e-12)


def test_treves_rolls_extremes_and_closed_form():
    one_hot = torch.zeros(1, 10)
    one_hot[0, 3] = 4.0
    uniform = torch.full((1, 10), 2.0)
    assert float(treves_rolls_sparsity(one_hot, dim=1)) == pytest.approx(1.0)
    assert float(treves_rolls_sparsity(uniform, dim=1)) == pytest.approx(0.0, abs=1e-7)
    half = torch.tensor([[1.0, 1.0, 0.0, 0.0]])  # a = (0.5)^2 / 0.5 = 0.5; S = (1 - 0.5) / (1 - 1/4)
    assert float(treves_rolls_sparsity(half, dim=1)) == pytest.approx(2.0 / 3.0)


def test_streaming_metrics_equal_direct_computation():
    """Batching and streaming do not change the numbers: compare with one full trajectory."""
    model = IterativeVAE(ModelConfig(n_inputs=16, n_latents=12, init_log_lr=-1.0), generator=torch.Generator().manual_seed(0))
    x = torch.rand(30, 16, generator=torch.Generator().manual_seed(1))
    settings = EvalSettings(t_test=5, batch_size=30, seed=4)
    metrics, curves, features = run_inference(model, x, settings)
    with torch.no_grad():
        trajectory = model.trajectory(x, 5, generator=torch.Generator().manual_seed(4))
    z_last, recon_last = trajectory.z[-1], trajectory.recon[-1]
    assert metrics["mse_per_pixel"] == pytest.approx(float((x - recon_last).square().mean()), rel=1e-5)
    assert metrics["r2"] == pytest.approx(float(r2_per_image(x, recon_last).mean()), rel=1e-5)
    assert metrics["zeros"] == pytest.approx(float((z_last == 0).float().mean()), rel=1e-6)
    assert metrics["spikes_per_inference"] == pytest.approx(float(trajectory.z.sum()) / 30, rel=1e-6)
    torch.testing.assert_close(features, trajectory.u[-1].exp())
    np.testing.assert_allclose(curves["zeros"], (trajectory.z == 0).float().mean(dim=(1, 2)).numpy(), rtol=1e-6)


def test_final_features_equal_the_features_of_the_full_evaluation():
    model = IterativeVAE(ModelConfig(n_inputs=16, n_latents=12, init_log_lr=-1.0), generator=torch.Generator().manual_seed(0))
    x = torch.rand(25, 16, generator=torch.Generator().manual_seed(2))
    settings = EvalSettings(t_test=6, batch_size=10, seed=7)
    from ipvae.train.evaluate import final_features

    _, _, expected = run_inference(model, x, settings)
    torch.testing.assert_close(final_features(model, x, settings), expected)
