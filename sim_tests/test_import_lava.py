"""Models trained elsewhere, deployed: a plain-PyTorch iP-VAE through ``ipvae.export_model`` and the authors'
checkpoint through ``ipvae import``, both run on the Lava CPU simulator.

Oracles: the integer reference (ipvae.export.reference), which the Lava fixed_pt graph must match bit for bit,
and the user's own tensors, which the export's decoder, prior potential and drive must carry.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import ipvae

pytestmark = pytest.mark.lava

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "authors_ipvae"
N_INPUTS, N_LATENTS = 36, 8
N_STEPS = 12


class UsersIPVAE(torch.nn.Module):
    """An iP-VAE as a user might write it, with none of the toolkit's classes."""

    def __init__(self, generator: torch.Generator):
        super().__init__()
        self.phi = torch.nn.Parameter(0.3 * torch.randn(N_INPUTS, N_LATENTS, generator=generator))
        self.u_prior = torch.nn.Parameter(torch.full((N_LATENTS,), -1.0))
        self.log_bias = torch.nn.Parameter(torch.full((N_LATENTS,), -2.0))
        self.log_step_size = torch.nn.Parameter(torch.tensor(-2.5))
        self.log_sigma = torch.nn.Parameter(torch.zeros(N_INPUTS))


def test_plain_pytorch_model_exports_and_runs_on_lava(tmp_path):
    user_model = UsersIPVAE(torch.Generator().manual_seed(3))
    model = ipvae.export_model(user_model, tmp_path / "users.h5", input_max=1.0, n_steps=N_STEPS)
    assert (model.n_inputs, model.n_latents) == (N_INPUTS, N_LATENTS)
    np.testing.assert_array_equal(model.decoder_phi, user_model.phi.detach().numpy())
    lsb = 2.0 ** model.spec.u_frac_bits  # u-LSBs per unit of u
    np.testing.assert_array_equal(model.u_prior, np.full(N_LATENTS, round(-1.0 * lsb)))
    assert np.all(np.abs(model.bias + np.exp(-2.5) * np.exp(-2.0) * lsb) <= 1.0)  # -lr * b added every step, rounded
    x = np.random.default_rng(0).uniform(0.0, 1.0, size=(3, N_INPUTS))
    on_lava = ipvae.run(model, x, steps=N_STEPS, backend="lava")
    reference = ipvae.run(model, x, steps=N_STEPS, backend="reference")
    np.testing.assert_array_equal(on_lava.z, reference.z)
    assert on_lava.z[1:].sum() > 0  # it spikes: the comparison is not between two silent runs


def test_dict_contract_gives_the_same_export_as_the_module(tmp_path):
    user_model = UsersIPVAE(torch.Generator().manual_seed(3))
    as_dict = {"phi": user_model.phi.detach(), "u_prior": user_model.u_prior.detach(), "bias": user_model.log_bias.exp(),
               "step_size": float(user_model.log_step_size.exp()), "sigma": 1.0}
    first = ipvae.export_model(user_model, tmp_path / "a.h5", input_max=1.0, n_steps=N_STEPS)
    second = ipvae.export_model(as_dict, tmp_path / "b.h5", input_max=1.0, n_steps=N_STEPS)
    np.testing.assert_array_equal(first.ff.mantissa, second.ff.mantissa)
    np.testing.assert_array_equal(first.rec.mantissa, second.rec.mantissa)
    np.testing.assert_array_equal(first.bias, second.bias)
    np.testing.assert_array_equal(first.u_prior, second.u_prior)


def test_authors_checkpoint_imports_exports_and_passes_parity(tmp_path, capsys):
    from ipvae.cli import main

    checkpoint = next(FIXTURE.glob("IPVAE+Trainer-*.pt"))
    run = tmp_path / "imported"
    assert main(["import", str(checkpoint), "--out", str(run), "--calibration", "64", "--calibration-steps", "16"]) == 0
    assert main(["export", str(run), "-o", str(tmp_path / "model.h5"), "--calibration", "64"]) == 0
    capsys.readouterr()
    assert main(["parity", str(tmp_path / "model.h5"), "-n", "2", "--steps", "16"]) == 0
    assert "PARITY OK" in capsys.readouterr().out
