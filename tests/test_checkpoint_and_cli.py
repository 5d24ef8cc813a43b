"""Run directories and the `ipvae train` / `ipvae eval` commands, including bad input."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ipvae.cli import main
from ipvae.errors import CheckpointError
from ipvae.train.checkpoint import CONFIG_FILE, WEIGHTS_FILE, load_run, save_run
from ipvae.train.config import ModelConfig, RunConfig, TrainConfig
from ipvae.train.model import IterativeVAE

TINY_TRAIN = ["--data", "mnist", "--train-limit", "200", "--epochs", "1", "--batch-size", "50", "--t-train", "4",
              "--n-latents", "32", "--seed", "1"]


@pytest.fixture
def saved_run(tmp_path):
    config = RunConfig(model=ModelConfig(n_inputs=20, n_latents=8), train=TrainConfig())
    model = IterativeVAE(config.model, generator=torch.Generator().manual_seed(0))
    save_run(tmp_path, config, model)
    return tmp_path, config, model


def test_save_load_round_trip(saved_run):
    run_dir, config, model = saved_run
    loaded = load_run(run_dir)
    assert loaded.config == config
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[name], tensor)


def test_corrupt_weights_give_checkpoint_error(saved_run):
    run_dir, _, _ = saved_run
    (run_dir / WEIGHTS_FILE).write_bytes(b"\x00garbage" * 10)
    with pytest.raises(CheckpointError, match="corrupt"):
        load_run(run_dir)


def test_mismatched_config_gives_checkpoint_error(saved_run):
    run_dir, config, _ = saved_run
    data = json.loads((run_dir / CONFIG_FILE).read_text())
    data["model"]["n_latents"] = 9
    (run_dir / CONFIG_FILE).write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match="shape"):
        load_run(run_dir)


def test_nan_weights_and_unknown_config_field_are_rejected(saved_run):
    run_dir, config, model = saved_run
    with torch.no_grad():
        model.phi[0, 0] = float("nan")
    save_run(run_dir, config, model)
    with pytest.raises(CheckpointError, match="NaN"):
        load_run(run_dir)
    data = json.loads((run_dir / CONFIG_FILE).read_text())
    data["model"]["n_neurons"] = 3
    (run_dir / CONFIG_FILE).write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match="n_neurons"):
        load_run(run_dir)


def test_cli_train_then_eval(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert main(["train", *TINY_TRAIN, "--out", str(run_dir)]) == 0
    capsys.readouterr()
    eval_dir = tmp_path / "eval"
    code = main(["eval", str(run_dir), "--t-test", "6", "--limit", "100", "--probe-train", "200", "--curves", "10",
                 "--json", "--out", str(eval_dir)])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    for key in ("mse_per_pixel", "r2", "r2_rate", "zeros", "spikes_per_inference", "lifetime_sparsity",
                "population_sparsity", "probe_accuracy", "params"):
        assert key in report, key
    assert report["images"] == 100 and report["t_test"] == 6
    assert 0.0 <= report["zeros"] <= 1.0 and 0.0 <= report["probe_accuracy"] <= 1.0
    assert report["params"] == 784 * 32 + 784 + 32 + 1 + 32
    curves = json.loads((eval_dir / "curves.json").read_text())
    assert len(curves["r2"]) == 10
    # the curve at t_test and the headline metric are the same measurement
    assert curves["r2"][5] == pytest.approx(report["r2"])
    for png in ("curves.png", "dictionary.png"):
        assert (eval_dir / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # a second train into the same directory refuses instead of overwriting
    assert main(["train", *TINY_TRAIN, "--out", str(run_dir)]) == 2


@pytest.mark.parametrize(
    "argv,fragment",
    [
        (["eval", "/nonexistent/run"], "does not exist"),
        (["train", "--out", "x", "--data", "nope"], "nope"),
        (["eval", "RUN", "--t-test", "0"], "positive integer"),
        (["train", "--out", "x", "--bogus-flag"], "unrecognized arguments"),
        (["train", "--out", "x", "--device", "tpu"], "invalid choice"),
        (["train", "--out", "x", "--leak", "1.5"], "leak must be in [0, 1)"),
        (["train", "--out", "x", "--leak", "0.01", "--family", "gaussian"], "Poisson"),
        (["train", "--out", "x", "--init-start-u", "nan"], "finite number"),
        (["train", "--out", "x", "--init-start-u", "-2"], "need init_from"),
        (["train", "--out", "x", "--init-from", "RUN", "--init-start-u", "-2", "--train-limit", "100"],
         "differ from this run's"),
    ],
)
def test_cli_bad_input_is_one_line_and_nonzero(argv, fragment, tmp_path, saved_run):
    argv = [str(saved_run[0]) if a == "RUN" else a for a in argv]
    result = subprocess.run([sys.executable, "-m", "ipvae.cli", *argv], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and fragment in lines[0], result.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_cuda_training_without_a_gpu_is_one_line_and_nonzero(tmp_path):
    result = subprocess.run([sys.executable, "-m", "ipvae.cli", "train", *TINY_TRAIN, "--device", "cuda",
                             "--out", str(tmp_path / "run")], capture_output=True, text=True)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "no CUDA GPU" in lines[0] and "--device cpu" in lines[0], result.stderr
    assert not (tmp_path / "run" / WEIGHTS_FILE).exists()


def test_leak_flag_reaches_the_model_config():
    from ipvae.train.cli import build_config
    from ipvae.cli import build_parser

    args = build_parser().parse_args(["train", "--out", "x", "--leak", "0.00390625"])
    assert build_config(args).model.leak == 2.0**-8
    plain = build_parser().parse_args(["train", "--out", "x", "--recipe", "plain"])  # the paper's dynamics
    assert build_config(plain).model.leak == 0.0


def test_training_device_is_validated_and_recorded():
    with pytest.raises(ValueError, match="device"):
        TrainConfig(device="tpu")
    assert RunConfig.from_dict({"model": {}, "train": {"device": "cuda"}}).train.device == "cuda"
    assert RunConfig.from_dict({"model": {}, "train": {}}).train.device == "cpu"  # configs saved before the field


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cli_trains_on_the_gpu_and_the_run_loads_on_the_cpu(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert main(["train", *TINY_TRAIN, "--device", "cuda", "--out", str(run_dir)]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["steps"] == 4
    run = load_run(run_dir)
    assert run.config.train.device == "cuda"
    assert all(tensor.device.type == "cpu" and torch.isfinite(tensor).all() for tensor in run.model.state_dict().values())


def test_corrupt_checkpoint_through_cli(saved_run):
    run_dir, _, _ = saved_run
    (run_dir / WEIGHTS_FILE).write_bytes(b"not a safetensors file")
    result = subprocess.run([sys.executable, "-m", "ipvae.cli", "eval", str(run_dir)], capture_output=True, text=True)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "corrupt" in result.stderr


def test_console_script_lists_subcommands():
    script = Path(sys.executable).parent / "ipvae"
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    for command in ("train", "eval"):
        assert command in result.stdout


def test_shipped_model_was_trained_by_the_documented_commands():
    """`make pretrained` trains six chained stages; the last one's config is exactly the shipped config."""
    from ipvae.train.cli import build_config
    from ipvae.train.cli import register as register_train_commands
    import argparse

    root = Path(__file__).resolve().parents[1]
    parser = argparse.ArgumentParser()
    register_train_commands(parser.add_subparsers())
    makefile = (root / "Makefile").read_text()
    stages = ["mnist_k512.json"] + [f"mnist_k512.stage{n}.json" for n in range(2, 7)]
    outputs = [f"runs/mnist_k512_stage{n}" for n in range(1, 6)] + ["runs/mnist_k512"]
    configs = []
    for stage, out in zip(stages, outputs):
        assert f"--config pretrained/{stage} --out {out}" in makefile
        args = parser.parse_args(["train", "--config", str(root / "pretrained" / stage), "--out", out])
        configs.append(build_config(args))
    # each stage starts from the previous stage's output
    assert [config.train.init_from for config in configs] == [None, *outputs[:-1]]
    shipped = load_run(root / "pretrained" / "mnist_k512")
    assert configs[-1] == shipped.config
    assert shipped.model.n_params == 784 * 512 + 784 + 512 + 1 + 512  # 0.40M, as in the paper
