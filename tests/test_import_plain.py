"""A plain-PyTorch iP-VAE (the contract of ipvae.train.importers.plain) as a toolkit model.

Oracle: the user's own tensors. The converted model's inference parameters must be the user's Phi, prior,
b, lr and D = 1/sigma^2 (float32 rounding), whichever of the linear or log forms the user gave; bad
contracts are refused in one line.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ipvae.errors import CheckpointError
from ipvae.train.importers.plain import run_config_and_model, write_run

M, K = 12, 5


def _contract(generator: torch.Generator, sigma) -> dict:
    return {"phi": torch.randn(M, K, generator=generator), "u_prior": torch.linspace(-3.0, -1.0, K),
            "log_bias": torch.full((K,), -2.0), "step_size": 0.05, "sigma": sigma, "max_spike_count": 31}


@pytest.mark.parametrize("sigma", [0.5, torch.linspace(0.01, 400.0, M)])  # the second beyond the default bound
def test_parameters_are_the_users(sigma):
    values = _contract(torch.Generator().manual_seed(0), sigma)
    config, network = run_config_and_model(values)
    params = network.inference_params()
    expected_sigma = np.broadcast_to(np.asarray(sigma, dtype=np.float64), (M,))
    np.testing.assert_array_equal(params.phi.detach().numpy(), values["phi"].numpy())
    np.testing.assert_allclose(params.precision.detach().numpy(), expected_sigma**-2, rtol=1e-5)
    np.testing.assert_allclose(params.bias.detach().numpy(), np.exp(-2.0), rtol=1e-6)
    np.testing.assert_allclose(float(params.step_size), 0.05, rtol=1e-6)
    np.testing.assert_array_equal(params.u_prior.detach().numpy(), values["u_prior"].numpy())
    assert config.model.max_spike_count == 31 and config.model.hard_upper_clamp and config.model.dynamics == "toolkit"


def test_module_attributes_and_method_are_read():
    values = _contract(torch.Generator().manual_seed(1), 1.0)

    class WithMethod(torch.nn.Module):
        def ipvae_parameters(self):
            return values

    class WithAttributes(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.phi = torch.nn.Parameter(values["phi"].clone())
            self.u_prior = torch.nn.Parameter(values["u_prior"].clone())
            self.log_bias = torch.nn.Parameter(values["log_bias"].clone())
            self.register_buffer("log_step_size", torch.tensor(np.log(0.05), dtype=torch.float32))
            self.log_sigma = torch.nn.Parameter(torch.zeros(M))

    first = run_config_and_model(WithMethod())[1].state_dict()
    second = run_config_and_model(WithAttributes())[1].state_dict()
    for name in first:
        torch.testing.assert_close(first[name], second[name], msg=name)


@pytest.mark.parametrize("change, message", [
    (lambda v: v.pop("phi"), "lacks 'phi'"),
    (lambda v: v.pop("u_prior"), "lacks 'u_prior'"),
    (lambda v: v.update(phi=torch.ones(M)), r"phi must be \[M, K\]"),
    (lambda v: v.update(step_size=-1.0), "must be positive"),
    (lambda v: v.update(sigma=float("nan")), "NaN or Inf"),
    (lambda v: v.update(log_bias=torch.zeros(K + 1)), "bias must have shape"),
    (lambda v: v.update(max_spike_count=0), "settings are invalid"),
])
def test_bad_contracts_are_one_line(change, message):
    values = _contract(torch.Generator().manual_seed(2), 1.0)
    change(values)
    with pytest.raises(CheckpointError, match=message) as refusal:
        run_config_and_model(values)
    assert "\n" not in str(refusal.value)


def test_written_run_reloads(tmp_path):
    from ipvae.train.checkpoint import load_run

    values = _contract(torch.Generator().manual_seed(3), 2.0)
    write_run(values, tmp_path / "run", n_steps=8)
    loaded = load_run(tmp_path / "run")
    np.testing.assert_array_equal(loaded.model.phi.detach().numpy(), values["phi"].numpy())
    assert loaded.config.train.t_train == 8
