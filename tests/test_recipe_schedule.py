"""The stable recipe as one schedule inside a run: phases by step fraction, resumable across a phase boundary
bit for bit, the defaults of `ipvae train` without --config, and the shipped stage configs untouched by it."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ipvae.cli import build_parser
from ipvae.train.cli import build_config
from ipvae.train.checkpoint import WEIGHTS_FILE
from ipvae.train.config import STABLE_RECIPE, ModelConfig, Phase, RunConfig, TrainConfig, phase_at
from ipvae.train.trainer import METRICS_FILE, train

from test_training import planted_bars, planted_bars_data, tiny_config  # noqa: F401 - the fixture is used by name

REPO_ROOT = Path(__file__).resolve().parents[1]
STAGE_CONFIGS = sorted((REPO_ROOT / "pretrained").glob("mnist_k512*.json"))
TWO_PHASES = ({"start": 0.0, "warm_start_max": 0, "lateral_l1": 0.0}, {"start": 0.5, "warm_start_max": 3, "lateral_l1": 2.0})


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run_dir / WEIGHTS_FILE))


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[name], b[name]) for name in a)


def test_phase_at_switches_at_the_rounded_fraction_of_the_steps():
    config = TrainConfig(phases=TWO_PHASES)
    total = 9  # the boundary at round(0.5 * 9) = 4 (round half to even)
    chosen = [phase_at(config, step, total).warm_start_max for step in range(total)]
    assert chosen == [0] * 4 + [3] * 5
    flat = TrainConfig(warm_start_max=7, lateral_l1=1.5)
    assert phase_at(flat, 5, total) == Phase(0.0, 7, 1.5)


@pytest.mark.parametrize("phases, fragment", [
    (({"start": 0.2},), "start at 0"),
    (({"start": 0.0}, {"start": 0.0}), "increasing"),
    (({"start": 0.0, "lateral_l1": -1.0},), "non-negative"),
    (({"start": 0.0, "speed": 1},), "no field"),
])
def test_bad_phases_are_refused(phases, fragment):
    with pytest.raises((TypeError, ValueError), match=fragment):
        TrainConfig(phases=phases)


def test_one_phase_equals_the_flat_fields_bit_for_bit(planted_bars, tmp_path):
    flat = tiny_config(epochs=1, warm_start_max=3, lateral_l1=2.0)
    phased = tiny_config(epochs=1, phases=({"start": 0.0, "warm_start_max": 3, "lateral_l1": 2.0},))
    train(flat, tmp_path / "flat", show_progress=False)
    train(phased, tmp_path / "phased", show_progress=False)
    assert _same(_weights(tmp_path / "flat"), _weights(tmp_path / "phased"))


def test_the_first_phase_trains_as_a_run_without_phases(planted_bars, tmp_path):
    config = tiny_config(epochs=2, phases=TWO_PHASES)
    plain = tiny_config(epochs=2)
    total = 2 * (planted_bars_data().x.shape[0] // 50)  # 2 epochs of batch 50
    boundary = round(0.5 * total)
    train(config, tmp_path / "phased", show_progress=False, max_steps=boundary)
    train(plain, tmp_path / "plain", show_progress=False, max_steps=boundary)
    assert _same(_weights(tmp_path / "phased"), _weights(tmp_path / "plain"))
    # one step into the second phase the warm start and the penalty change the weights
    train(config, tmp_path / "phased", resume=True, show_progress=False, max_steps=boundary + 1)
    train(plain, tmp_path / "plain", resume=True, show_progress=False, max_steps=boundary + 1)
    assert not _same(_weights(tmp_path / "phased"), _weights(tmp_path / "plain"))


def test_a_run_sliced_across_the_phase_boundary_resumes_bit_identically(planted_bars, tmp_path):
    config = tiny_config(epochs=2, phases=TWO_PHASES)
    train(config, tmp_path / "whole", show_progress=False)
    total = 2 * (planted_bars_data().x.shape[0] // 50)
    for stop in (total // 2 - 3, total // 2 + 2, total):  # before, across and to the end
        train(config, tmp_path / "sliced", resume=stop != total // 2 - 3, show_progress=False, max_steps=stop)
    assert _same(_weights(tmp_path / "whole"), _weights(tmp_path / "sliced"))
    lines = [json.loads(line) for line in (tmp_path / "sliced" / METRICS_FILE).read_text().splitlines()]
    assert [line["phase"] for line in lines] == [0, 1]
    whole = [json.loads(line) for line in (tmp_path / "whole" / METRICS_FILE).read_text().splitlines()]
    assert [{k: v for k, v in line.items() if k != "seconds"} for line in whole] == \
        [{k: v for k, v in line.items() if k != "seconds"} for line in lines]  # wall time aside


def test_ipvae_train_without_flags_gives_the_stable_recipe():
    config = build_config(build_parser().parse_args(["train", "--data", "mnist", "--out", "unused"]))
    for name, value in STABLE_RECIPE["model"].items():
        assert getattr(config.model, name) == value
    assert config.model.u_max == 4.0 and config.model.hard_upper_clamp and config.model.leak == 2**-8
    assert config.model.max_spike_count == 31
    assert [dataclasses.asdict(phase) for phase in config.train.phases] == STABLE_RECIPE["train"]["phases"]
    assert any(phase.warm_start_max == 64 and phase.lateral_l1 == 30.0 for phase in config.train.phases)
    assert RunConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config  # config.json round trip
    plain = build_config(build_parser().parse_args(["train", "--data", "mnist", "--out", "u", "--recipe", "plain"]))
    assert plain == RunConfig(model=ModelConfig(), train=TrainConfig())


@pytest.mark.parametrize("path", STAGE_CONFIGS, ids=lambda path: path.name)
def test_the_stage_configs_load_as_the_dataclass_defaults_plus_their_own_values(path):
    """The recipe is not applied under --config: each stage builds exactly the config its file names."""
    written = json.loads(path.read_text())
    built = build_config(build_parser().parse_args(["train", "--config", str(path), "--out", "unused"]))
    assert built.model == ModelConfig.from_dict({"n_inputs": 784, **written["model"]})
    assert built.train == TrainConfig(**written["train"])
    assert built.train.phases == () and built.model.leak == written["model"].get("leak", 0.0)


def test_the_shipped_config_json_loads_unchanged():
    shipped = json.loads((REPO_ROOT / "pretrained" / "mnist_k512" / "config.json").read_text())
    loaded = RunConfig.from_dict(shipped)
    for section in ("model", "train"):
        values = json.loads(json.dumps(dataclasses.asdict(getattr(loaded, section))))  # tuples as JSON lists
        assert all(values[name] == value for name, value in shipped[section].items() if name in values)
    assert loaded.train.phases == () and loaded.train.patch_size is None


def test_the_stage6_config_with_another_init_from_fine_tunes_any_run_onto_the_dense_side():
    """`ipvae train --config pretrained/mnist_k512.stage6.json --init-from RUN` is stage 6 applied to RUN: the
    flags replace the config's init_from and keep its start; the flags alone set the same fields."""
    stage6 = REPO_ROOT / "pretrained" / "mnist_k512.stage6.json"
    args = build_parser().parse_args(["train", "--config", str(stage6), "--init-from", "runs/mine", "--out", "x"])
    config = build_config(args)
    written = json.loads(stage6.read_text())["train"]
    assert config.train.init_from == "runs/mine"
    assert (config.train.init_start_u, config.train.init_leak_target_offset) == (
        written["init_start_u"], written["init_leak_target_offset"])
    flags = build_parser().parse_args(["train", "--init-from", "r", "--init-start-u", "-2", "--init-leak-target-offset",
                                       "3", "--out", "x"])
    from_flags = build_config(flags).train
    assert (from_flags.init_from, from_flags.init_start_u, from_flags.init_leak_target_offset) == ("r", -2.0, 3.0)
