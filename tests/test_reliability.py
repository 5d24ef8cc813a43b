"""Regression tests for the reliability rules: every bad input is one line and a non-zero
exit, output paths are checked before the work, strings from files are bounded and escaped, and values
that are finite but outside what the fixed-point spec implies are refused."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

import ipvae.lava.pipeline as pipeline_module
from ipvae.export.hdf5 import CONTENT_HASH, ExportMetadata, content_digest, read_model, write_model
from ipvae.export.quantize import quantize, spec_for
from ipvae.export.synthetic import SyntheticConfig, random_float_params
from ipvae.cli import main
from ipvae.errors import ExportFormatError
from ipvae.train.checkpoint import save_run
from ipvae.train.config import ModelConfig, RunConfig, TrainConfig
from ipvae.train.model import IterativeVAE

N_INPUTS, N_LATENTS = 16, 6
INPUT_SCALE = 1.0 / 127
METADATA = ExportMetadata(source="runs/example", source_checkpoint_sha256="ab" * 32, calibration="fixed",
                          calibration_images=0, input_max=1.0, float_step_size=0.5)


def one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    return lines[0]


@pytest.fixture(scope="module")
def export_path(tmp_path_factory) -> Path:
    params = random_float_params(SyntheticConfig(n_inputs=N_INPUTS, n_latents=N_LATENTS, seed=2))
    model = quantize(params, spec_for(params, seed=3), INPUT_SCALE, n_steps=4)
    path = tmp_path_factory.mktemp("export") / "model.h5"
    write_model(path, model, METADATA)
    return path


@pytest.fixture(scope="module")
def images_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("images") / "x.npy"
    np.save(path, np.random.default_rng(0).random((3, N_INPUTS)))
    return path


@pytest.fixture(scope="module")
def mnist_sized_run(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("run")
    config = RunConfig(model=ModelConfig(n_inputs=784, n_latents=8), train=TrainConfig())
    save_run(path, config, IterativeVAE(config.model, generator=torch.Generator().manual_seed(0)))
    return path


def edited_copy(source: Path, target: Path, edits: dict[str, np.ndarray], resign: bool = True) -> Path:
    """Copy an export, replace datasets, and (as an adversary would) recompute the content hash."""
    shutil.copyfile(source, target)
    with h5py.File(target, "r+") as file:
        for name, value in edits.items():
            del file[name]
            file.create_dataset(name, data=value)
        if resign:
            datasets = {}
            file.visititems(lambda name, node: datasets.__setitem__(name, node[()]) if isinstance(node, h5py.Dataset) else None)
            del file[CONTENT_HASH]
            file.create_dataset(CONTENT_HASH, data=np.array(content_digest(datasets).encode(), dtype=np.bytes_))
    return target


def forbid_work(monkeypatch):
    def work_started(*args, **kwargs):
        raise AssertionError("the computation started before the output path was checked")

    monkeypatch.setattr(pipeline_module, "run_backend", work_started)
    monkeypatch.setattr(pipeline_module, "load_inputs", work_started)


# ------------------------------------------------------------------------------------------ defect 3


def test_run_out_existing_file_is_refused_before_the_work(export_path, images_path, tmp_path, capsys, monkeypatch):
    existing = tmp_path / "a_file"
    existing.write_text("keep me")
    forbid_work(monkeypatch)
    code = main(["run", str(export_path), "--backend", "reference", "--data", str(images_path), "-n", "2",
                 "--out", str(existing)])
    assert code == 2 and "is not a folder" in one_error_line(capsys)
    assert existing.read_text() == "keep me"


def test_run_out_in_an_unwritable_place(export_path, images_path, capsys, monkeypatch):
    forbid_work(monkeypatch)
    code = main(["run", str(export_path), "--backend", "reference", "--data", str(images_path), "-n", "2",
                 "--out", "/proc/ipvae_out"])
    assert code == 2 and "/proc/ipvae_out" in one_error_line(capsys)


def test_eval_out_below_a_file(mnist_sized_run, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    code = main(["eval", str(mnist_sized_run), "--limit", "2", "--probe-train", "0", "--out", str(blocker / "sub")])
    assert code == 2 and str(blocker) in one_error_line(capsys)


def test_train_out_existing_file(tmp_path, capsys):
    existing = tmp_path / "a_file"
    existing.write_text("")
    code = main(["train", "--data", "bars", "--epochs", "1", "--out", str(existing)])
    assert code == 2 and "is not a folder" in one_error_line(capsys)


def test_eval_on_data_of_another_size(mnist_sized_run, capsys):
    code = main(["eval", str(mnist_sized_run), "--data", "natural_patches", "--limit", "2", "--probe-train", "0"])
    message = one_error_line(capsys)
    assert code == 2 and "256" in message and "784" in message


@pytest.mark.parametrize("field,value", [("batch_size", "abc"), ("learning_rate", "fast"), ("epochs", 0),
                                         ("learning_rate", -1.0), ("seed", True), ("optimizer", "fast")])
def test_config_values_of_the_wrong_type_or_range(tmp_path, capsys, field, value):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"train": {"data": "bars", field: value}}))
    code = main(["train", "--config", str(config), "--out", str(tmp_path / "run")])
    assert code == 2 and f"TrainConfig.{field}" in one_error_line(capsys)
    assert not (tmp_path / "run").exists()


def test_saved_config_of_the_wrong_type(mnist_sized_run, tmp_path, capsys):
    run_dir = tmp_path / "run"
    shutil.copytree(mnist_sized_run, run_dir)
    config = json.loads((run_dir / "config.json").read_text())
    config["model"]["n_latents"] = "eight"
    (run_dir / "config.json").write_text(json.dumps(config))
    assert main(["eval", str(run_dir), "--limit", "2", "--probe-train", "0"]) == 2
    assert "ModelConfig.n_latents" in one_error_line(capsys)


# ------------------------------------------------------------------------------------------ defect 4


def test_a_huge_string_gives_a_bounded_message(export_path, tmp_path, capsys):
    huge = edited_copy(export_path, tmp_path / "huge.h5", {"layer/1/neuron/type": np.array(b"X" * 2_000_000)})
    assert main(["inspect", str(huge)]) == 2
    message = one_error_line(capsys)
    assert "layer/1/neuron/type" in message and len(message) < 400


def test_an_unexpected_string_is_escaped_and_cut(export_path, tmp_path, capsys):
    odd = edited_copy(export_path, tmp_path / "odd.h5", {"layer/1/neuron/type": np.array(b"LIF\x1b[31m" + b"Y" * 500)})
    assert main(["inspect", str(odd)]) == 2
    message = one_error_line(capsys)
    assert "\x1b" not in message and "\\x1b" in message and len(message) < 400


def test_inspect_escapes_control_characters_in_metadata(export_path, tmp_path, capsys):
    odd = edited_copy(export_path, tmp_path / "meta.h5", {"metadata/source": np.array(b"runs/x\x1b[2J\rfake line")})
    assert main(["inspect", str(odd)]) == 0
    printed = capsys.readouterr().out
    assert "\x1b" not in printed and "\r" not in printed and "\\x1b[2J\\rfake line" in printed


# ------------------------------------------------------------------------------------------ defect 5


def _decoder_with_entry(export_path: Path, value: float) -> np.ndarray:
    phi = read_model(export_path).model.decoder_phi.copy()
    phi[0, 0] = value
    return phi


@pytest.mark.parametrize("name,value_of", [
    ("decoder/phi", lambda path: _decoder_with_entry(path, 3e38)),
    ("metadata/float_step_size", lambda path: np.array(0.0)),
    ("metadata/float_step_size", lambda path: np.array(-0.5)),
    ("metadata/input_max", lambda path: np.array(-1.0)),
    ("metadata/input_max", lambda path: np.array(5.0)),
    ("layer/0/input_scale", lambda path: np.array(1e-320)),
    ("layer/1/neuron/cdf", lambda path: np.zeros_like(read_model(path).model.cdf)),
])
def test_finite_but_absurd_values_are_refused_even_when_re_signed(export_path, tmp_path, name, value_of):
    edited = edited_copy(export_path, tmp_path / "edited.h5", {name: value_of(export_path)})
    with pytest.raises(ExportFormatError, match=name):
        read_model(edited)


def test_the_shipped_style_export_still_reads(export_path):
    read_model(export_path)  # the checks above hold for what the exporter writes


def test_inputs_far_outside_the_training_range_are_refused(export_path, tmp_path, capsys):
    huge = tmp_path / "huge.npy"
    np.save(huge, np.full((2, N_INPUTS), 1e30))
    code = main(["run", str(export_path), "--backend", "reference", "--data", str(huge), "-n", "2", "--no-figures",
                 "--out", str(tmp_path / "out")])
    assert code == 2 and "input range" in one_error_line(capsys)


# ------------------------------------------------------------------------------------------ defect 6


def test_inspect_a_directory_says_so(tmp_path, capsys):
    assert main(["inspect", str(tmp_path)]) == 2
    assert "is a folder" in one_error_line(capsys)


def test_unknown_flag_points_to_the_subcommand_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["inspect", "model.h5", "--bogus"])
    assert exit_info.value.code == 2
    message = one_error_line(capsys)
    assert "ipvae inspect --help" in message and "ipvae ipvae" not in message


def test_exports_get_the_same_file_mode_as_other_outputs(export_path, tmp_path):
    from ipvae.fileio import write_json

    write_json(tmp_path / "other.json", {})
    params = random_float_params(SyntheticConfig(n_inputs=N_INPUTS, n_latents=N_LATENTS, seed=2))
    write_model(tmp_path / "m.h5", quantize(params, spec_for(params), INPUT_SCALE, n_steps=4), METADATA)
    mode = stat.S_IMODE(os.stat(tmp_path / "m.h5").st_mode)
    assert mode == stat.S_IMODE(os.stat(tmp_path / "other.json").st_mode)
    assert mode == 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
