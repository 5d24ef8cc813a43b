"""`ipvae import` of a checkpoint made by the authors' own trainer (tests/fixtures/authors_ipvae, README there).

Oracles: their inference outputs saved beside the checkpoint by their code. Where randomness is shared (their
recorded draws) the imported dynamics must reproduce their potentials to float32 rounding; where it is not,
the imported model's R^2 and spike counts over the same images and as many seeds must agree with theirs
within a margin derived from the spread over seeds.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from ipvae.errors import CheckpointError, OutputPathError
from ipvae.train.checkpoint import load_run
from ipvae.train.importers.authors import read_authors_checkpoint
from ipvae.train.importers.deploy import CAP_CHOICES, choose_cap, import_checkpoint, run_config, toolkit_model
from ipvae.train.importers.safe_torch_zip import load_torch_zip
from ipvae.train.inference import authors_poisson, reconstruction_drive

FIXTURE = Path(__file__).parent / "fixtures" / "authors_ipvae"
CHECKPOINT = next(FIXTURE.glob("IPVAE+Trainer-*.pt"))
STEPS = (16, 64)
SIGMAS = 4.0  # margin in standard errors of the difference of two seed means
ROUNDING = 1e-4  # |u| <= 10: float32 rounding of 64 steps of different operation orders stays far below this


@pytest.fixture(scope="module")
def theirs():
    return np.load(FIXTURE / "authors_outputs.npz", allow_pickle=False)


@pytest.fixture(scope="module")
def imported():
    model = read_authors_checkpoint(CHECKPOINT)
    config = run_config(model, CAP_CHOICES[-1])
    return model, config, toolkit_model(model, config)


def test_fixture_is_small_and_plain():
    assert sum(path.stat().st_size for path in FIXTURE.iterdir()) < 2 * 2**20
    assert (FIXTURE / "ConfigPoisVAE.json").is_file() and (FIXTURE / "ConfigTrain.json").is_file()


@torch.no_grad()
def test_their_recorded_draws_give_their_potentials(theirs, imported):
    """Shared randomness: their draws z_{t-1} fed to the imported update give their u_t at every step."""
    _, _, network = imported
    params = network.inference_params()
    drive_counts = theirs["drive_counts"].astype(np.float32)  # [n, T, K] draws from u_0..u_{T-1}
    n_images, n_steps, _ = drive_counts.shape
    x = torch.from_numpy(theirs["images"][:n_images])
    state = authors_poisson.initial_state(params, n_images)
    worst = 0.0
    for t in range(n_steps):
        z = torch.from_numpy(drive_counts[:, t])
        drive = reconstruction_drive(x, z @ params.phi.T, params)
        state = authors_poisson.update(state, None, drive, params)
        worst = max(worst, float((state.u - torch.from_numpy(theirs["u"][:, t])).abs().max()))
    assert worst < ROUNDING


@torch.no_grad()
def test_toolkit_dynamics_do_not_reproduce_their_potentials(theirs, imported):
    """Control: the toolkit's own update (no du clamp, soft ceiling before the floor) misses their potentials,
    so the test above can tell the two apart."""
    from ipvae.train.inference import poisson

    _, _, network = imported
    params = network.inference_params()
    drive_counts = theirs["drive_counts"].astype(np.float32)
    n_images, n_steps, _ = drive_counts.shape
    x = torch.from_numpy(theirs["images"][:n_images])
    state = poisson.initial_state(params, n_images)
    worst = 0.0
    for t in range(n_steps):
        drive = reconstruction_drive(x, torch.from_numpy(drive_counts[:, t]) @ params.phi.T, params)
        state = poisson.update(state, None, drive, params)
        worst = max(worst, float((state.u - torch.from_numpy(theirs["u"][:, t])).abs().max()))
    assert worst > 100 * ROUNDING


@torch.no_grad()
def test_imported_inference_matches_theirs_within_sampling_noise(theirs, imported):
    """Independent randomness: R^2 and spikes at T = 16 and 64 over the same images and as many seeds."""
    from ipvae.export.fidelity import r2_per_image

    _, _, network = imported
    images = theirs["images"]
    x = torch.from_numpy(images)
    r2, spikes = [], []
    for seed in theirs["seeds"]:
        trajectory = network.trajectory(x, max(STEPS), generator=torch.Generator().manual_seed(1000 + int(seed)))
        r2.append([r2_per_image(images, trajectory.recon[t - 1].numpy()).mean() for t in STEPS])
        spikes.append([trajectory.z[t - 1].sum(dim=1).mean().item() for t in STEPS])
    r2, spikes = np.asarray(r2), np.asarray(spikes)  # [S, 2]
    their_r2 = theirs["r2"][:, [t - 1 for t in STEPS]]
    their_spikes = theirs["spikes"][:, [t - 1 for t in STEPS]]
    for ours, reference in ((r2, their_r2), (spikes, their_spikes)):
        standard_error = np.sqrt(ours.var(axis=0, ddof=1) / len(ours) + reference.var(axis=0, ddof=1) / len(reference))
        assert np.all(np.abs(ours.mean(axis=0) - reference.mean(axis=0)) <= SIGMAS * standard_error + 1e-6), (
            ours.mean(axis=0), reference.mean(axis=0), standard_error)


def test_cap_rule_on_planted_counts():
    counts = np.zeros((4, 10, 8))
    counts[0, 0, 0] = 40  # 40 of 1040 spikes beyond a cap of 0..; lost above 31: 9 / 1040 > 1e-3
    counts[1:, :, :] = 1  # 3 * 80 * 1 = 240 spikes
    counts[0, 1:, :] = 10
    total = counts.sum()
    chosen = choose_cap(counts)
    expected = next(cap for cap in CAP_CHOICES if np.maximum(counts - cap, 0).sum() / total <= 1e-3)
    assert chosen["max_spike_count"] == expected == 63
    assert chosen["largest_count"] == 40


def test_import_writes_a_run_that_loads_and_matches_their_weights(tmp_path):
    images = np.load(FIXTURE / "authors_outputs.npz", allow_pickle=False)["images"][:32]
    record = import_checkpoint(CHECKPOINT, tmp_path / "run", calibration_steps=16, images=images)
    run = load_run(tmp_path / "run")
    saved = load_torch_zip(CHECKPOINT)["model"]
    np.testing.assert_array_equal(run.model.phi.detach().numpy(), saved["layer.phi.weight"])
    np.testing.assert_array_equal(run.model.u_prior.detach().numpy(), saved["layer.u_init.0"][0])
    np.testing.assert_array_equal(run.model.log_b.detach().numpy(), saved["layer.log_bias"][0])
    assert run.config.model.dynamics == "authors" and run.config.model.u_min == -8.0
    assert run.config.model.u_max == pytest.approx(2.0 + float(saved["layer.eps"]) * (10.0 - 2.0))
    assert run.config.model.max_spike_count == record["deployment"]["cap"]["max_spike_count"] in CAP_CHOICES
    assert json.loads((tmp_path / "run" / "import.json").read_text())["weights"] == "model"
    with pytest.raises(OutputPathError, match="already holds a run"):
        import_checkpoint(CHECKPOINT, tmp_path / "run", calibration_steps=4, images=images)


def test_ema_weights_are_chosen_with_ema_and_refused_when_absent(tmp_path):
    with pytest.raises(CheckpointError, match="no averaged weights"):
        read_authors_checkpoint(CHECKPOINT, use_ema=True)
    saved = torch.load(CHECKPOINT, weights_only=False)  # safe: the committed fixture, made by the test suite's authors
    averaged = {name: value.clone() for name, value in saved["model"].items()}
    averaged["layer.phi.weight"] = averaged["layer.phi.weight"] * 0.5
    saved["model_ema"] = averaged
    folder = tmp_path / "with_ema"
    folder.mkdir()
    torch.save(saved, folder / "IPVAE+Trainer-0001.pt")
    shutil.copy(FIXTURE / "ConfigPoisVAE.json", folder)
    model = read_authors_checkpoint(folder / "IPVAE+Trainer-0001.pt", use_ema=True)
    np.testing.assert_array_equal(model.phi, averaged["layer.phi.weight"].numpy())


def _cli(capsys, *args: str) -> tuple[int, str]:
    from ipvae.cli import main

    code = main(["import", *args])
    return code, capsys.readouterr().err


def test_cli_refuses_a_planted_pickle_and_a_gaussian_config_in_one_line(tmp_path, capsys):
    marker = tmp_path / "executed"
    folder = tmp_path / "planted"
    folder.mkdir()
    shutil.copy(FIXTURE / "ConfigPoisVAE.json", folder)

    class Planted:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    torch.save({"model": {"layer.phi.weight": torch.ones(2, 2)}, "metadata": Planted()}, folder / "evil.pt")
    code, error = _cli(capsys, str(folder / "evil.pt"), "--out", str(tmp_path / "run"))
    assert code != 0 and not marker.exists()
    assert error.count("\n") == 1 and "system" in error and "nothing was executed" in error
    gaussian = tmp_path / "gaussian"
    gaussian.mkdir()
    shutil.copy(CHECKPOINT, gaussian / "IGVAE+Trainer-0001.pt")
    (gaussian / "ConfigGausVAE.json").write_text("{}")
    code, error = _cli(capsys, str(gaussian / "IGVAE+Trainer-0001.pt"), "--out", str(tmp_path / "run2"))
    assert code != 0 and error.count("\n") == 1 and "Gaussian" in error
