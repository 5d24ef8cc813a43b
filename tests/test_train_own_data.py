"""`ipvae train --data` on the user's own images: folders of PNGs, [N, H, W] / [N, M] arrays, whitened patches;
the preparation travels with the run and the export; bad folders are one line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from ipvae.cli import main
from ipvae.data import run_split
from ipvae.data.natural import BORDER_MARGIN, whiten_image
from ipvae.data.user_sets import load_user_set
from ipvae.errors import IpvaeError
from ipvae.images import InputPreparation, load_file_inputs

TINY = ["--epochs", "1", "--batch-size", "20", "--t-train", "3", "--n-latents", "16", "--no-progress"]


def _bars(n: int, height: int, width: int, seed: int) -> np.ndarray:
    """[n, H, W] in [0, 1]: one bright horizontal bar each (a planted structure)."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n, height, width))
    for image, row in zip(images, rng.integers(0, height, n)):
        image[row] = 1.0
    return images


def _write_pngs(folder, images, colour_every: int = 0) -> None:
    folder.mkdir()
    for index, image in enumerate(images):
        pixels = (image * 255).astype(np.uint8)
        if colour_every and index % colour_every == 0:
            pixels = np.stack([pixels, pixels // 2, pixels // 4], axis=-1)
        Image.fromarray(pixels).save(folder / f"{index:03d}.png")


def test_a_folder_of_pngs_keeps_its_size_converts_colour_and_carves_a_seeded_validation_split(tmp_path):
    images = _bars(40, 12, 10, seed=1)
    _write_pngs(tmp_path / "set", images, colour_every=4)
    loaded = load_user_set(str(tmp_path / "set"), val_fraction=0.25, seed=5)
    assert loaded.preparation == InputPreparation((12, 10), "plain")
    assert loaded.train.shape == (30, 120) and loaded.validation.shape == (10, 120)
    assert "10 colour image(s) converted to grey" in loaded.description
    # grey images come back exactly (a bar is 255, the rest 0: min-max scaling leaves them in {0, 1})
    grey = [index for index in range(40) if index % 4]
    rows = {tuple(row) for row in np.concatenate([loaded.train, loaded.validation])}
    assert all(tuple(images[index].reshape(-1).astype(np.float32)) in rows for index in grey)
    # the split is a function of the seed: the same seed, the same rows; another seed, other rows
    again = load_user_set(str(tmp_path / "set"), val_fraction=0.25, seed=5)
    other = load_user_set(str(tmp_path / "set"), val_fraction=0.25, seed=6)
    assert np.array_equal(again.validation, loaded.validation)
    assert not np.array_equal(other.validation, loaded.validation)


def test_an_array_of_non_square_images_and_a_flat_array_with_image_shape(tmp_path):
    images = _bars(30, 20, 24, seed=2).astype(np.float32)
    np.save(tmp_path / "stack.npy", images)
    np.save(tmp_path / "flat.npy", images.reshape(30, -1))
    stacked = load_user_set(str(tmp_path / "stack.npy"), val_fraction=0.0)
    flat = load_user_set(str(tmp_path / "flat.npy"), image_shape=(20, 24), val_fraction=0.0)
    assert stacked.preparation.shape == flat.preparation.shape == (20, 24)
    assert np.array_equal(stacked.train, images.reshape(30, -1)) and np.array_equal(flat.train, stacked.train)
    with pytest.raises(IpvaeError, match="not a square image"):
        load_user_set(str(tmp_path / "flat.npy"))


def test_patches_are_whitened_like_the_natural_set_and_new_images_are_prepared_with_the_saved_std(tmp_path):
    rng = np.random.default_rng(3)
    images = rng.random((6, 48, 40))
    np.save(tmp_path / "photos.npy", images)
    loaded = load_user_set(str(tmp_path / "photos.npy"), patch_size=8, n_patches=500, val_fraction=0.2, seed=1)
    assert loaded.preparation.mode == "patches" and loaded.preparation.shape == (8, 8)
    assert loaded.train.shape == (500, 64) and loaded.validation.shape[0] >= 1
    assert abs(float(loaded.train.std()) - 1.0) < 1e-4  # divided by its own std
    np.testing.assert_allclose(loaded.train.mean(axis=1), 0.0, atol=1e-5)  # each patch's mean removed
    # a new image through the one reader: every tile is a window of whiten_image, mean removed, / saved std
    tiles = InputPreparation((8, 8), "patches", loaded.preparation.patch_std)
    from ipvae.images import prepare_image

    prepared = prepare_image(images[0], tiles)  # [n, 64]
    window = whiten_image(images[0])[BORDER_MARGIN : BORDER_MARGIN + 8, BORDER_MARGIN : BORDER_MARGIN + 8]
    expected = (window - window.mean()).reshape(-1) / loaded.preparation.patch_std
    np.testing.assert_allclose(prepared[0], expected, rtol=1e-10)
    assert prepared.shape[0] == ((48 - 2 * BORDER_MARGIN) // 8) * ((40 - 2 * BORDER_MARGIN) // 8)


@pytest.mark.parametrize("make, fragment", [
    (lambda folder: None, "holds no image files"),
    (lambda folder: (folder / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n broken"), "not a readable image"),
    (lambda folder: (folder / "notes.txt").write_text("hello"), "holds no image files"),
    (lambda folder: [Image.fromarray(np.zeros((h, 8), np.uint8)).save(folder / f"{h}.png") for h in (8, 9)],
     "differ in size"),
])
def test_bad_folders_are_one_line_and_a_non_zero_exit(tmp_path, capsys, make, fragment):
    folder = tmp_path / "bad"
    folder.mkdir()
    make(folder)
    code = main(["train", "--data", str(folder), "--out", str(tmp_path / "run"), *TINY])
    err = capsys.readouterr().err.strip()
    assert code != 0 and fragment in err and len(err.splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize("shape, n_latents", [((32, 32), 16), ((20, 24), 64)])
def test_train_export_inspect_and_run_a_user_set_of_any_shape(tmp_path, capsys, shape, n_latents):
    images = _bars(120, *shape, seed=4)
    if shape == (32, 32):
        _write_pngs(tmp_path / "set", images)
        data = str(tmp_path / "set")
    else:
        np.save(tmp_path / "set.npy", images.astype(np.float32))
        data = str(tmp_path / "set.npy")
    run_dir, export = tmp_path / "run", tmp_path / "model.h5"
    args = [a if a != "16" else str(n_latents) for a in TINY]
    assert main(["train", "--data", data, "--out", str(run_dir), *args]) == 0
    err = capsys.readouterr().err
    assert f"of {shape[0]}x{shape[1]}" in err
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert {"val_r2", "val_zeros", "val_mse_per_pixel"} <= set(metrics[-1])
    assert json.loads((run_dir / "input.json").read_text())["shape"] == list(shape)
    config = json.loads((run_dir / "config.json").read_text())
    assert config["model"]["n_inputs"] == shape[0] * shape[1] and config["train"]["phases"]
    assert main(["export", str(run_dir), "-o", str(export)]) == 0
    assert main(["inspect", str(export)]) == 0
    assert f"input images {shape[0]}x{shape[1]}" in capsys.readouterr().out
    assert main(["run", str(export), "--data", data, "-n", "3", "--steps", "4", "--backend", "reference", "--json",
                 "--out", str(tmp_path / "out")]) == 0
    assert '"images": 3' in capsys.readouterr().out
    assert main(["eval", str(run_dir), "--t-test", "3", "--probe-train", "0", "--json"]) == 0
    assert '(validation)' in capsys.readouterr().out


def test_run_data_prepares_new_pngs_as_the_training_images_were(tmp_path):
    images = _bars(10, 20, 24, seed=6)
    _write_pngs(tmp_path / "set", images)
    train_set = load_user_set(str(tmp_path / "set"), val_fraction=0.0)
    again = load_file_inputs(str(tmp_path / "set"), 480, train_set.preparation)
    np.testing.assert_array_equal(again.x.astype(np.float32), train_set.train)


def test_run_split_of_a_named_set_is_get_dataset():
    from ipvae.data import get_dataset
    from ipvae.train.config import TrainConfig

    named = run_split(TrainConfig(data="bars", train_limit=50, seed=2), "train")
    expected, _ = get_dataset("bars", "train", seed=2, limit=50)
    assert torch.equal(named, expected.reshape(50, -1).float())


def test_patches_from_the_command_line_travel_to_run_data(tmp_path, capsys):
    """--patches: the run saves the training patches' std, the export carries it, and `ipvae run --data` on a new
    photograph cuts it into whitened tiles divided by that same std."""
    rng = np.random.default_rng(7)
    folder = tmp_path / "photos"
    folder.mkdir()
    for index in range(6):
        smooth = np.cumsum(np.cumsum(rng.standard_normal((48, 48)), axis=0), axis=1)  # 1/f-like texture
        Image.fromarray((255 * (smooth - smooth.min()) / np.ptp(smooth)).astype(np.uint8)).save(folder / f"{index}.png")
    run_dir, export = tmp_path / "run", tmp_path / "patches.h5"
    assert main(["train", "--data", str(folder), "--patches", "8", "--train-limit", "200", "--out", str(run_dir),
                 *TINY]) == 0
    saved = json.loads((run_dir / "input.json").read_text())
    assert saved["mode"] == "patches" and saved["shape"] == [8, 8] and saved["patch_std"] > 0
    assert main(["export", str(run_dir), "-o", str(export)]) == 0
    capsys.readouterr()
    assert main(["run", str(export), "--data", str(folder / "0.png"), "--steps", "3", "--backend", "reference",
                 "--json", "--out", str(tmp_path / "out")]) == 0
    captured = capsys.readouterr()
    tiles = ((48 - 2 * BORDER_MARGIN) // 8) ** 2
    assert json.loads(captured.out)["images"] == tiles and "whitened" in captured.err
    assert f"{saved['patch_std']:.4g}" in captured.err


def test_figures_draw_inputs_in_their_own_shape():
    from ipvae.lava.accounting.figures import _as_image

    vector = np.arange(480.0)
    assert _as_image(vector, (20, 24)).shape == (20, 24)
    np.testing.assert_array_equal(_as_image(vector, (20, 24))[1], np.arange(24.0, 48.0))  # row-major, as trained
    assert _as_image(np.arange(256.0)).shape == (16, 16)  # no shape stored: square if it is one


@pytest.mark.parametrize("stored, fragment", [
    ('{"shape": [8, 9], "mode": "plain", "patch_std": null}', "does not make the 64 inputs"),
    ('{"shape": [8, 8], "mode": "sepia", "patch_std": null}', "unknown preparation"),
    ("not json", "not an input preparation"),
])
def test_an_export_with_a_bad_input_preparation_is_refused_in_one_line(tmp_path, stored, fragment):
    from ipvae.errors import ExportFormatError
    from ipvae.export.hdf5 import ExportMetadata, read_model, write_model
    from ipvae.export.quantize import quantize, spec_for
    from ipvae.export.synthetic import SyntheticConfig, random_float_params

    params = random_float_params(SyntheticConfig(n_inputs=64, n_latents=8, seed=2))
    model = quantize(params, spec_for(params, seed=1), 1.0 / 127, n_steps=4)
    metadata = ExportMetadata(source="synthetic", source_checkpoint_sha256="0" * 64, calibration="fixed",
                              calibration_images=0, input_max=1.0, float_step_size=0.5)
    write_model(tmp_path / "old.h5", model, metadata)
    assert read_model(tmp_path / "old.h5").metadata.input_preparation == ""  # files without it still load
    good = '{"shape": [4, 16], "mode": "plain", "patch_std": null}'
    write_model(tmp_path / "good.h5", model, ExportMetadata(**{**metadata.__dict__, "input_preparation": good}))
    assert read_model(tmp_path / "good.h5").metadata.input_preparation == good
    write_model(tmp_path / "bad.h5", model, ExportMetadata(**{**metadata.__dict__, "input_preparation": stored}))
    with pytest.raises(ExportFormatError, match=fragment) as raised:
        read_model(tmp_path / "bad.h5")
    assert "\n" not in str(raised.value)
