"""`ipvae export` / `ipvae inspect` end to end on a small random run saved with ipvae.train.checkpoint.save_run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ipvae.export.hdf5 import read_model
from ipvae.export.source import checkpoint_sha256
from ipvae.cli import main

torch = pytest.importorskip("torch")
checkpoint = pytest.importorskip("ipvae.train.checkpoint")
config_module = pytest.importorskip("ipvae.train.config")
model_module = pytest.importorskip("ipvae.train.model")


def save_small_run(run_dir, n_inputs=64, n_latents=16):
    config = config_module.RunConfig(
        model=config_module.ModelConfig(n_inputs=n_inputs, n_latents=n_latents),
        train=config_module.TrainConfig(t_train=6),
    )
    model = model_module.IterativeVAE(config.model, generator=torch.Generator().manual_seed(0))
    checkpoint.save_run(run_dir, config, model)
    return config, model


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("run")
    save_small_run(path)
    return path


def test_export_then_inspect(run_dir, tmp_path, capsys):
    output = tmp_path / "m.h5"
    assert main(["export", str(run_dir), "-o", str(output), "--weight-bits", "6", "--input-max", "1.0"]) == 0
    loaded = read_model(output)
    assert loaded.model.spec.weight_bits == 6 and loaded.model.n_steps == 6
    assert loaded.metadata.source_checkpoint_sha256 == checkpoint_sha256(run_dir)
    assert loaded.model.input_scale == pytest.approx(1.0 / 127)
    capsys.readouterr()
    assert main(["inspect", str(output)]) == 0
    text = capsys.readouterr().out
    for expected in ("layer 0  input", "layer 1  dense", "POISSON", "weight_rec", "6-bit", "decoder", "sha256"):
        assert expected in text


def test_export_matches_the_float_parameters(run_dir, tmp_path):
    """The stored integers dequantize to the closed-form targets lr Phi^T D s_x 2^F, -lr Phi^T D Phi 2^F, -lr b 2^F."""
    output = tmp_path / "m.h5"
    main(["export", str(run_dir), "-o", str(output), "--weight-bits", "12", "--input-max", "1.0"])
    model = read_model(output).model
    loaded = checkpoint.load_run(run_dir).model
    with torch.no_grad():
        params = loaded.inference_params()
        phi, precision = params.phi.double().numpy(), params.precision.double().numpy()
        lr, b = float(params.step_size), params.bias.double().numpy()
    scale = 2.0**model.spec.u_frac_bits
    ff_target = lr * phi.T * precision[None, :] * model.input_scale * scale
    rec_target = -lr * phi.T @ (precision[:, None] * phi) * scale
    # the default layout: per-neuron ff exponents, the lateral diagonal held apart at its own exponent
    half_lsb_ff = np.exp2(model.ff.row_exponents - 1.0)[:, None]  # [K, 1]
    assert np.all(np.abs(model.ff.dequantize() - ff_target) <= half_lsb_ff * (1 + 1e-9))
    off_diagonal = rec_target - np.diag(np.diag(rec_target))
    assert np.max(np.abs(model.rec.dequantize() - off_diagonal)) <= 2.0 ** (model.rec.exponent - 1) * (1 + 1e-9)
    held = model.self_inhibition
    assert np.max(np.abs(held.dequantize() - np.diag(rec_target))) <= 2.0 ** (held.exponent - 1) * (1 + 1e-9)
    assert np.array_equal(model.bias, np.rint(-lr * b * scale).astype(np.int32))


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["export", "{missing}", "-o", "{out}", "--input-max", "1"], "does not exist"),
        (["export", "{run}", "-o", "{out}", "--weight-bits", "20", "--input-max", "1"], "weight_bits = 20"),
        (["export", "{run}", "-o", "{out}", "--input-max", "-1"], "--input-max must be positive"),
        (["inspect", "{bad}"], "not a readable HDF5 file"),
        (["export", "{run}", "-o", "{dir}", "--input-max", "1"], "is a folder"),
        (["inspect", "{missing}"], "no such file"),
    ],
)
def test_bad_input_gives_one_line_and_nonzero_exit(run_dir, tmp_path, capsys, argv, expected):
    bad = tmp_path / "bad.h5"
    bad.write_text("garbage")
    (tmp_path / "adir").mkdir()
    names = {"dir": str(tmp_path / "adir"), "missing": str(tmp_path / "absent"), "out": str(tmp_path / "o.h5"), "run": str(run_dir), "bad": str(bad)}
    code = main([arg.format(**names) for arg in argv])
    error = capsys.readouterr().err.strip()
    assert code != 0 and expected in error and "\n" not in error and "Traceback" not in error
    assert not (tmp_path / "o.h5").exists() and list((tmp_path / "adir").iterdir()) == []


def test_calibration_uses_the_run_data(tmp_path):
    data = pytest.importorskip("ipvae.data")
    run = tmp_path / "run784"
    save_small_run(run, n_inputs=784, n_latents=8)
    output = tmp_path / "m.h5"
    assert main(["export", str(run), "-o", str(output), "--calibration", "20"]) == 0
    stored = read_model(output)
    images = data.get_dataset("mnist", "train", limit=20)[0].numpy()
    assert stored.metadata.calibration_images == 20
    assert stored.metadata.input_max == pytest.approx(float(np.abs(images).max()))
    assert stored.model.input_scale == pytest.approx(float(np.abs(images).max()) / 127)
    json.dumps(stored.metadata.__dict__)  # metadata is plain values
