"""Training: planted-dictionary recovery, reproducibility, resume, NaN guard, schedules."""

import math

import pytest
import torch
from safetensors.torch import load_file

import ipvae.train.trainer as trainer_module
from ipvae.errors import TrainingDiverged
from ipvae.train.checkpoint import WEIGHTS_FILE, load_run, load_train_state
from ipvae.train.config import ModelConfig, RunConfig, TrainConfig
from ipvae.data import planted_dictionary_data
from ipvae.train.model import IterativeVAE
from ipvae.train.trainer import Schedules, train

BARS_SIDE = 6


@pytest.fixture
def planted_bars(monkeypatch):
    """Serve a small bars problem (side 6: 12 planted atoms on 36 pixels) as the training set."""
    planted = planted_dictionary_data(1000, side=BARS_SIDE, n_active=2.0, noise_std=0.05, seed=0)

    def fake_get_dataset(name, split, **kwargs):
        return planted.x, None

    monkeypatch.setattr(trainer_module, "get_dataset", fake_get_dataset)
    return planted


def tiny_config(**train_overrides) -> RunConfig:
    train_values = dict(data="bars", epochs=2, batch_size=50, t_train=4, learning_rate=1e-2,
                        checkpoint_every_steps=7, seed=3, train_limit=None)
    train_values.update(train_overrides)
    return RunConfig(model=ModelConfig(n_inputs=BARS_SIDE**2, n_latents=16), train=TrainConfig(**train_values))


def test_dictionary_recovery_on_planted_bars(planted_bars, tmp_path):
    config = RunConfig(
        model=ModelConfig(n_inputs=BARS_SIDE**2, n_latents=24),
        train=TrainConfig(data="bars", epochs=12, batch_size=50, t_train=8, learning_rate=3e-2, seed=0,
                          checkpoint_every_steps=10**6),
    )
    train(config, tmp_path, show_progress=False)
    learned = torch.nn.functional.normalize(load_run(tmp_path).model.phi.detach(), dim=0)  # [M, K]
    truth = torch.nn.functional.normalize(planted_bars.phi, dim=0)  # [M, K_true]
    best_match = (truth.T @ learned).max(dim=1).values  # [K_true]
    # a random 36-pixel direction has |cos| ~ 0.17 with a bar; recovered atoms are near 1
    print("best match per planted atom", best_match)
    assert best_match.min() > 0.8, best_match
    assert best_match.median() > 0.9, best_match


def test_same_seed_same_weights_and_resume_is_bit_identical(planted_bars, tmp_path, monkeypatch):
    config = tiny_config()
    train(config, tmp_path / "a", show_progress=False)
    train(config, tmp_path / "b", show_progress=False)
    weights_a = load_file(str(tmp_path / "a" / WEIGHTS_FILE))
    weights_b = load_file(str(tmp_path / "b" / WEIGHTS_FILE))
    assert all(torch.equal(weights_a[name], weights_b[name]) for name in weights_a)

    # interrupt run c when epoch 2 starts (after the end-of-epoch-1 checkpoint), then resume it
    original_order = trainer_module._epoch_order

    def interrupt_at_second_epoch(n_samples, seed, epoch):
        if epoch == 1:
            raise KeyboardInterrupt
        return original_order(n_samples, seed, epoch)

    monkeypatch.setattr(trainer_module, "_epoch_order", interrupt_at_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "c", show_progress=False)
    interrupted = load_file(str(tmp_path / "c" / WEIGHTS_FILE))
    assert not all(torch.equal(interrupted[name], weights_a[name]) for name in weights_a)
    monkeypatch.setattr(trainer_module, "_epoch_order", original_order)
    train(config, tmp_path / "c", resume=True, show_progress=False)
    resumed = load_file(str(tmp_path / "c" / WEIGHTS_FILE))
    assert all(torch.equal(resumed[name], weights_a[name]) for name in weights_a)


def test_training_in_slices_equals_one_run(planted_bars, tmp_path):
    """--max-steps stops mid-epoch with a checkpoint; resuming replays the remaining steps exactly."""
    config = tiny_config()
    train(config, tmp_path / "full", show_progress=False)
    reference = load_file(str(tmp_path / "full" / WEIGHTS_FILE))
    first = train(config, tmp_path / "sliced", show_progress=False, max_steps=9)
    assert first.steps == 9
    assert load_train_state(tmp_path / "sliced").step == 9
    train(config, tmp_path / "sliced", resume=True, show_progress=False)
    resumed = load_file(str(tmp_path / "sliced" / WEIGHTS_FILE))
    assert all(torch.equal(resumed[name], reference[name]) for name in reference)


def test_resume_with_more_epochs_extends_the_run(planted_bars, tmp_path):
    config = tiny_config(epochs=1)
    train(config, tmp_path, show_progress=False)
    longer = RunConfig(model=config.model, train=TrainConfig(**{**config.train.__dict__, "epochs": 2}))
    result = train(longer, tmp_path, resume=True, show_progress=False)
    assert result.steps == 2 * (1000 // 50)
    assert load_run(tmp_path).config.train.epochs == 2


def test_nan_guard_stops_and_keeps_last_good_checkpoint(planted_bars, tmp_path, monkeypatch):
    config = tiny_config(checkpoint_every_steps=2)
    original_loss = IterativeVAE.loss
    calls = {"n": 0}

    def loss_turning_nan(self, *args, **kwargs):
        terms = original_loss(self, *args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 5:
            return terms._replace(total=terms.total * float("nan"))
        return terms

    monkeypatch.setattr(IterativeVAE, "loss", loss_turning_nan)
    with pytest.raises(TrainingDiverged, match="step 4"):
        train(config, tmp_path, show_progress=False)
    kept = load_run(tmp_path)  # loads: the last good checkpoint (step 4) is intact and finite
    assert load_train_state(tmp_path).step == 4
    assert all(torch.isfinite(p).all() for p in kept.model.parameters())


def test_schedules_follow_their_definitions():
    config = TrainConfig(learning_rate=1e-2, learning_rate_min=1e-4, warmup_fraction=0.1, beta=5.0, beta_start=1e-4,
                         beta_hold_fraction=0.1, beta_ramp_fraction=0.2, temperature_start=1.0, temperature_end=0.01,
                         temperature_anneal_fraction=0.5)
    schedules = Schedules(config, total_steps=1000)
    assert schedules.learning_rate_factor(0) == pytest.approx(1 / 100)
    assert schedules.learning_rate_factor(99) == pytest.approx(1.0)
    assert schedules.learning_rate_factor(100) == pytest.approx(1.0)
    midpoint = 100 + 450
    assert schedules.learning_rate_factor(midpoint) == pytest.approx(0.01 + 0.99 * 0.5)
    assert schedules.learning_rate_factor(1000) == pytest.approx(0.01)
    assert schedules.beta(50) == pytest.approx(1e-4)
    assert schedules.beta(200) == pytest.approx(1e-4 + (5.0 - 1e-4) * 0.5)
    assert schedules.beta(400) == pytest.approx(5.0)
    assert schedules.temperature(0) == pytest.approx(1.0)
    assert schedules.temperature(250) == pytest.approx(math.sqrt(0.01))
    assert schedules.temperature(900) == pytest.approx(0.01)


def test_nan_training_data_is_rejected_before_training(monkeypatch, tmp_path):
    from ipvae.errors import IpvaeError

    x = torch.rand(100, BARS_SIDE**2)
    x[17, 3] = float("nan")
    monkeypatch.setattr(trainer_module, "get_dataset", lambda name, split, **kw: (x, None))
    with pytest.raises(IpvaeError, match="NaN"):
        train(tiny_config(), tmp_path, show_progress=False)
    assert not (tmp_path / WEIGHTS_FILE).exists()


@pytest.mark.parametrize("family", ["gaussian", "gaussian_relu"])
def test_gaussian_families_train_through_the_same_loop(planted_bars, tmp_path, family):
    """iG-VAE and iG_relu-VAE use the same trainer; one epoch lowers their loss on the bars."""
    config = RunConfig(model=ModelConfig(family=family, n_inputs=BARS_SIDE**2, n_latents=16),
                       train=TrainConfig(data="bars", epochs=3, batch_size=50, t_train=4, learning_rate=1e-2,
                                         checkpoint_every_steps=10**6))
    model_before = IterativeVAE(config.model, generator=torch.Generator().manual_seed(config.train.seed))
    x = planted_bars.x[:200]
    with torch.no_grad():
        before = model_before.loss(x, 4, beta=1.0, temperature=0.0, generator=torch.Generator().manual_seed(9)).total
    train(config, tmp_path, show_progress=False)
    trained = load_run(tmp_path).model
    with torch.no_grad():
        after = trained.loss(x, 4, beta=1.0, temperature=0.0, generator=torch.Generator().manual_seed(9)).total
    assert torch.isfinite(after) and after < before
