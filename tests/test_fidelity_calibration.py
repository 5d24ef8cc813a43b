"""`ipvae export --calibration-data`: calibrate on the user's images (a file through ipvae.images, or a data set
name through ipvae.data) instead of the run's training set."""

from __future__ import annotations

import numpy as np
import pytest

from ipvae.cli import main
from ipvae.export.hdf5 import read_model

torch = pytest.importorskip("torch")
checkpoint = pytest.importorskip("ipvae.train.checkpoint")
config_module = pytest.importorskip("ipvae.train.config")
model_module = pytest.importorskip("ipvae.train.model")

N_IMAGES = 12
PLANTED_PEAK = 0.625  # the calibration images' largest value: s_x must be PLANTED_PEAK / 127


def save_small_run(run_dir, n_inputs: int, n_latents: int) -> None:
    config = config_module.RunConfig(
        model=config_module.ModelConfig(n_inputs=n_inputs, n_latents=n_latents),
        train=config_module.TrainConfig(t_train=6),
    )
    checkpoint.save_run(run_dir, config, model_module.IterativeVAE(config.model, generator=torch.Generator().manual_seed(0)))


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    path = tmp_path_factory.mktemp("run64")
    save_small_run(path, n_inputs=64, n_latents=8)
    return path


def test_calibration_data_from_an_array_file_sets_the_input_scale(small_run, tmp_path):
    images = np.random.default_rng(0).uniform(0.0, 0.5, size=(N_IMAGES, 64))
    images[3, 17] = PLANTED_PEAK
    source = tmp_path / "mine.npy"
    np.save(source, images)
    output = tmp_path / "m.h5"
    assert main(["export", str(small_run), "-o", str(output), "--calibration-data", str(source)]) == 0
    stored = read_model(output)
    assert stored.model.input_scale == pytest.approx(PLANTED_PEAK / 127)
    assert stored.metadata.calibration_images == N_IMAGES
    assert str(source) in stored.metadata.calibration


def test_calibration_data_takes_the_first_calibration_images(small_run, tmp_path):
    images = np.full((N_IMAGES, 64), 0.25)
    images[-1, 0] = PLANTED_PEAK  # outside the first 4: must not set the scale
    source = tmp_path / "mine.npy"
    np.save(source, images)
    output = tmp_path / "m.h5"
    assert main(["export", str(small_run), "-o", str(output), "--calibration-data", str(source), "--calibration", "4"]) == 0
    stored = read_model(output)
    assert stored.model.input_scale == pytest.approx(0.25 / 127)
    assert stored.metadata.calibration_images == 4


def test_calibration_data_by_data_set_name_and_split(tmp_path):
    data = pytest.importorskip("ipvae.data")
    run = tmp_path / "run784"
    save_small_run(run, n_inputs=784, n_latents=8)
    output = tmp_path / "m.h5"
    assert main(["export", str(run), "-o", str(output), "--calibration-data", "mnist:test", "--calibration", "20"]) == 0
    images = data.get_dataset("mnist", "test", limit=20)[0].numpy()
    stored = read_model(output)
    assert stored.metadata.input_max == pytest.approx(float(np.abs(images).max()))
    assert stored.metadata.calibration == "mnist:test[:20]"


@pytest.mark.parametrize("make_source, expected", [
    (lambda tmp: np.save(tmp / "wrong.npy", np.ones((3, 50))) or tmp / "wrong.npy", "pixels"),
    (lambda tmp: "no_such_data_set", "unknown data set"),
    (lambda tmp: np.save(tmp / "nan.npy", np.full((3, 64), np.nan)) or tmp / "nan.npy", "NaN"),
])
def test_bad_calibration_data_is_one_line_and_nonzero(small_run, tmp_path, capsys, make_source, expected):
    source = make_source(tmp_path)
    code = main(["export", str(small_run), "-o", str(tmp_path / "o.h5"), "--calibration-data", str(source)])
    error = capsys.readouterr().err.strip()
    assert code != 0 and expected in error and "\n" not in error and "Traceback" not in error
    assert not (tmp_path / "o.h5").exists()
