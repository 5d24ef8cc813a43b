"""TrainConfig.lateral_l1: the L1 penalty on the lateral weights W = Phi^T D Phi (fewer synapses on the chip)."""

import dataclasses

import numpy as np
import pytest
import torch

from ipvae.errors import IpvaeError
from ipvae.train.checkpoint import load_run
from ipvae.train.config import ModelConfig, RunConfig, TrainConfig
from ipvae.train.model import IterativeVAE
from ipvae.train.trainer import train

from test_training import planted_bars, tiny_config  # noqa: F401 - the fixture is used by name


def test_lateral_magnitude_is_the_off_diagonal_l1_of_phi_t_d_phi_with_autograd_gradients():
    torch.manual_seed(0)
    model = IterativeVAE(ModelConfig(n_inputs=20, n_latents=6)).double()
    phi = model.phi.detach().numpy()  # [M, K]
    precision = model.sigma().detach().pow(-2).numpy()  # [M]
    gram = phi.T @ np.diag(precision) @ phi  # [K, K] the closed form, float64
    expected = (np.abs(gram).sum() - np.abs(np.diag(gram)).sum()) / gram.shape[0]
    magnitude = model.lateral_magnitude()
    assert float(magnitude) == pytest.approx(expected, rel=1e-12)
    # the custom backward of W against autograd through the plain expression
    magnitude.backward()
    custom = model.phi.grad.clone(), model.log_sigma.grad.clone()
    model.zero_grad()
    params = model.inference_params()
    plain = (params.phi * params.precision[:, None]).T @ params.phi  # [K, K]
    ((plain.abs().sum() - plain.diagonal().abs().sum()) / plain.shape[0]).backward()
    assert torch.allclose(custom[0], model.phi.grad, rtol=1e-10, atol=1e-12)
    assert torch.allclose(custom[1], model.log_sigma.grad, rtol=1e-10, atol=1e-12)


def _magnitude_after(config: RunConfig, run_dir) -> float:
    train(config, run_dir, show_progress=False)
    with torch.no_grad():
        return float(load_run(run_dir).model.lateral_magnitude())


def test_the_penalty_shrinks_the_lateral_weights_against_the_same_run_without_it(planted_bars, tmp_path):
    # Same seed, data and draws; only the penalty differs. A weight large against the per-image loss
    # (tens of nats on this problem) must pull the off-diagonal magnitude well below the unpenalised run's.
    plain = _magnitude_after(tiny_config(epochs=4), tmp_path / "plain")
    penalised = _magnitude_after(tiny_config(epochs=4, lateral_l1=10.0), tmp_path / "penalised")
    assert penalised < 0.5 * plain, (penalised, plain)


def test_bad_values_and_non_iterative_models_are_refused(planted_bars, tmp_path):
    with pytest.raises(ValueError, match="lateral_l1"):
        TrainConfig(lateral_l1=-1.0)
    config = tiny_config(lateral_l1=1.0)
    sparse = dataclasses.replace(config, model=ModelConfig(kind="sparse_coding", n_inputs=config.model.n_inputs,
                                                           n_latents=config.model.n_latents))
    with pytest.raises(IpvaeError, match="lateral_l1 needs an iterative model"):
        train(sparse, tmp_path / "sparse", show_progress=False)
    legacy = dataclasses.replace(sparse, train=dataclasses.replace(sparse.train, lateral_l1=0.0, legacy_numerics=True))
    with pytest.raises(IpvaeError, match="legacy_numerics applies to the iterative models only"):
        train(legacy, tmp_path / "legacy", show_progress=False)
