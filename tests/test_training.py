"""Training: planted-dictionary recovery, reproducibility, resume, NaN guard, schedules."""

import math

import numpy as np
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


def planted_bars_data():
    """A small bars problem: side 6, 12 planted atoms on 36 pixels, 1000 images."""
    return planted_dictionary_data(1000, side=BARS_SIDE, n_active=2.0, noise_std=0.05, seed=0)


@pytest.fixture
def planted_bars(monkeypatch):
    """Serve the small bars problem as the training set."""
    planted = planted_bars_data()

    def fake_get_dataset(name, split, **kwargs):
        return planted.x, None

    monkeypatch.setattr(trainer_module, "get_dataset", fake_get_dataset)
    return planted


def tiny_config(**train_overrides) -> RunConfig:
    train_values = dict(data="bars", epochs=2, batch_size=50, t_train=4, learning_rate=1e-2,
                        checkpoint_every_steps=7, seed=3, train_limit=None)
    train_values.update(train_overrides)
    return RunConfig(model=ModelConfig(n_inputs=BARS_SIDE**2, n_latents=16), train=TrainConfig(**train_values))


def bars_recovery_config(seed: int) -> RunConfig:
    return RunConfig(
        model=ModelConfig(n_inputs=BARS_SIDE**2, n_latents=24),
        train=TrainConfig(data="bars", epochs=12, batch_size=50, t_train=8, learning_rate=3e-2, seed=seed,
                          checkpoint_every_steps=10**6),
    )


def recovery_scores(planted_phi: torch.Tensor, learned_phi: torch.Tensor) -> torch.Tensor:
    """Per planted atom, the best cosine similarity with any learned atom; [K_true]."""
    learned = torch.nn.functional.normalize(learned_phi, dim=0)  # [M, K]
    truth = torch.nn.functional.normalize(planted_phi, dim=0)  # [M, K_true]
    return (truth.T @ learned).max(dim=1).values  # [K_true]


# Oracles for the best cosine match of each planted bar with a learned atom (tests/measure_margins.py --only
# bars reruns the spread; numbers below: training seeds 0-9 at 1 thread on a shared 2-core AMD EPYC; the
# 2-thread pass did not finish in time on the loaded machine, a Zen 4 run gave seed 0 min 0.7992).
# - chance: the untrained dictionary of the same seed; its median best match is 0.27-0.39 (analytically a
#   random direction in R^36 has cos ~ N(0, 1/36) with a bar, the best of 24 about 0.33);
# - a merged atom, the sum of a horizontal and a vertical bar (one shared pixel), scores sqrt(7/12) = 0.76
#   with both; a perfect recovery scores 1.
# Training is chaotic: a different CPU, BLAS or thread count changes the float reduction order and can move a
# run as far as another seed would. Over seeds 0-9 the worst atom scores 0.41-0.86 (so a per-atom threshold
# such as the former min > 0.8 fails on 6 of 10 seeds) and the median atom 0.60-0.95 (two of ten runs blow
# up in their first epochs and recover only half the bars). A single run can therefore only be required to
# be far above chance; recovery proper is asserted on the median over seeds (slow test below).
RECOVERY_MEDIAN_ONE_RUN = 0.5  # between chance (<= 0.39) and the worst of ten seeds (0.60)
MERGED_PAIR_SCORE = math.sqrt(7 / 12)
RECOVERY_SEEDS = range(7)


def initial_dictionary(config: RunConfig) -> torch.Tensor:
    """The untrained dictionary of a run (the trainer seeds the model with the run's seed); [M, K]."""
    return IterativeVAE(config.model, generator=torch.Generator().manual_seed(config.train.seed)).phi.detach()


def test_dictionary_recovery_on_planted_bars(planted_bars, tmp_path):
    config = bars_recovery_config(seed=0)
    chance = recovery_scores(planted_bars.phi, initial_dictionary(config))  # [K_true]
    train(config, tmp_path, show_progress=False)
    best_match = recovery_scores(planted_bars.phi, load_run(tmp_path).model.phi.detach())  # [K_true]
    print("best match per planted atom", best_match, "untrained", chance)
    assert chance.median() < RECOVERY_MEDIAN_ONE_RUN, chance  # the oracle separates chance from recovery
    assert best_match.median() > RECOVERY_MEDIAN_ONE_RUN, best_match


@pytest.mark.slow
def test_dictionary_recovery_on_planted_bars_over_seeds(planted_bars, tmp_path):
    """The typical run recovers the bars as separate atoms: the median over seeds of the median best match
    is above a merged pair (measured on seeds 0-6: 0.90, per-seed medians 0.60-0.95)."""
    medians = []
    for seed in RECOVERY_SEEDS:
        train(bars_recovery_config(seed), tmp_path / str(seed), show_progress=False)
        learned = load_run(tmp_path / str(seed)).model.phi.detach()  # [M, K]
        medians.append(float(recovery_scores(planted_bars.phi, learned).median()))
    print("median best match per seed", medians)
    assert float(np.median(medians)) > MERGED_PAIR_SCORE, medians


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


def gaussian_family_losses(family: str, x: torch.Tensor, run_dir, seed: int = TrainConfig.seed) -> tuple[float, float]:
    """Loss on x before and after three epochs of training (the bars must be served as the dataset)."""
    config = RunConfig(model=ModelConfig(family=family, n_inputs=BARS_SIDE**2, n_latents=16),
                       train=TrainConfig(data="bars", epochs=3, batch_size=50, t_train=4, learning_rate=1e-2,
                                         checkpoint_every_steps=10**6, seed=seed))
    model_before = IterativeVAE(config.model, generator=torch.Generator().manual_seed(config.train.seed))
    with torch.no_grad():
        before = model_before.loss(x, 4, beta=1.0, temperature=0.0, generator=torch.Generator().manual_seed(9)).total
    train(config, run_dir, show_progress=False)
    trained = load_run(run_dir).model
    with torch.no_grad():
        after = trained.loss(x, 4, beta=1.0, temperature=0.0, generator=torch.Generator().manual_seed(9)).total
    return float(before), float(after)


@pytest.mark.parametrize("family", ["gaussian", "gaussian_relu"])
def test_gaussian_families_train_through_the_same_loop(planted_bars, tmp_path, family):
    """iG-VAE and iG_relu-VAE use the same trainer; one epoch lowers their loss on the bars."""
    before, after = gaussian_family_losses(family, planted_bars.x[:200], tmp_path)
    assert math.isfinite(after) and after < before


def test_init_start_u_moves_the_start_and_keeps_the_leak_target(tmp_path):
    """TrainConfig.init_start_u / init_leak_target_offset rewrite init_from's u_prior and b by the closed form
    b' = b + a (u_0 - u_prior + d) / lr (the update equivalence itself: tests/test_sparsity.py); the other
    weights are init_from's unchanged."""
    from ipvae.errors import IpvaeError
    from ipvae.train.checkpoint import save_run

    leak, start_u, offset = 2.0**-8, -2.5, 4.5
    model_config = ModelConfig(n_inputs=BARS_SIDE**2, n_latents=16, leak=leak)
    base = IterativeVAE(model_config, generator=torch.Generator().manual_seed(0))
    save_run(tmp_path / "base", RunConfig(model=model_config, train=TrainConfig(data="bars")), base)
    config = RunConfig(model=model_config, train=TrainConfig(data="bars", init_from=str(tmp_path / "base"),
                                                             init_start_u=start_u, init_leak_target_offset=offset))
    moved = IterativeVAE(model_config, generator=torch.Generator().manual_seed(1))
    trainer_module._initialise_from(moved, config)
    before, after = base.inference_params(), moved.inference_params()
    assert torch.all(after.u_prior == start_u)
    expected_bias = before.bias + leak * (start_u - before.u_prior + offset) / before.step_size  # [K]
    torch.testing.assert_close(after.bias, expected_bias, rtol=1e-5, atol=0.0)
    torch.testing.assert_close(moved.phi, base.phi, rtol=0.0, atol=0.0)

    without_leak = ModelConfig(n_inputs=BARS_SIDE**2, n_latents=16)
    save_run(tmp_path / "no_leak", RunConfig(model=without_leak, train=TrainConfig(data="bars")), IterativeVAE(without_leak))
    with pytest.raises(IpvaeError, match="leak"):
        trainer_module._initialise_from(IterativeVAE(without_leak), RunConfig(
            model=without_leak, train=TrainConfig(data="bars", init_from=str(tmp_path / "no_leak"), init_start_u=-2.0)))
    with pytest.raises(ValueError, match="need init_from"):
        TrainConfig(data="bars", init_start_u=-2.0)
