"""A user's own inputs (ipvae.images): MNIST-style preparation against MNIST itself, files, folders, globs, arrays."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from ipvae.export.hdf5 import ExportMetadata, write_model
from ipvae.export.quantize import quantize, spec_for
from ipvae.export.synthetic import SyntheticConfig, random_float_params
from ipvae.cli import main
from ipvae.errors import IpvaeError
from ipvae.images import (
    MNIST_BOX,
    MNIST_CENTRE,
    MNIST_SIDE,
    is_file_source,
    load_file_inputs,
    prepare_digit,
)
from ipvae.data import get_dataset

N_DIGITS = 30
CENTRING_SLACK = 1  # MNIST placed its digits by whole pixels: a centre of mass within +-0.5 px of 14 either way


def mnist_digits(n: int = N_DIGITS) -> np.ndarray:
    x, _ = get_dataset("mnist", "test", limit=n)
    return x.reshape(-1, MNIST_SIDE, MNIST_SIDE).numpy().astype(np.float64)  # [N, 28, 28]


def as_photo(digit: np.ndarray, zoom: int, top: int, left: int, paper: float = 0.9, ink: float = 0.1) -> np.ndarray:
    """The digit enlarged by an integer zoom, dark ink on light paper, somewhere on a larger sheet."""
    big = np.kron(digit, np.ones((zoom, zoom)))  # [28 zoom, 28 zoom]
    sheet = np.zeros((big.shape[0] + 70, big.shape[1] + 110))
    sheet[top : top + big.shape[0], left : left + big.shape[1]] = big
    return paper - (paper - ink) * sheet


def _normalized(images: np.ndarray) -> np.ndarray:
    flat = images.reshape(len(images), -1)
    flat = flat - flat.mean(axis=1, keepdims=True)
    return flat / np.linalg.norm(flat, axis=1, keepdims=True)


def shift_tolerant_correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[N_a, N_b] best Pearson correlation over whole-pixel shifts of a by -1..1 in each axis."""
    shifts = range(-CENTRING_SLACK, CENTRING_SLACK + 1)
    return np.max([_normalized(np.roll(a, (dr, dc), axis=(1, 2))) @ _normalized(b).T for dr in shifts for dc in shifts],
                  axis=0)


def test_photographed_mnist_digits_come_back_as_the_mnist_digits():
    """Oracle: MNIST itself. A digit enlarged, inverted onto grey paper and moved must be prepared back into it."""
    digits = mnist_digits()
    rng = np.random.default_rng(0)
    prepared = np.stack([
        prepare_digit(as_photo(d, int(rng.integers(2, 6)), int(rng.integers(0, 70)), int(rng.integers(0, 110))))[0]
        for d in digits
    ])
    similarity = shift_tolerant_correlation(prepared, digits)  # [N, N]
    others = similarity[~np.eye(N_DIGITS, dtype=bool)]
    print("own", np.diag(similarity).min(), "others median", np.median(others))
    # different digits correlate ~0.3 (median); the same digit, up to MNIST's own whole-pixel centring, ~1
    assert np.diag(similarity).min() > 0.95
    assert np.all(similarity.argmax(axis=1) == np.arange(N_DIGITS))


def test_preparation_geometry_box_aspect_centre_range():
    bar = np.ones((300, 200))  # light paper
    bar[50:90, 20:180] = 0.0  # a dark bar 40 x 160: aspect 1:4
    prepared, inverted = prepare_digit(bar)
    assert inverted
    assert prepared.min() >= 0.0 and prepared.max() == pytest.approx(1.0)
    rows = np.flatnonzero((prepared > 0.5).any(axis=1))
    cols = np.flatnonzero((prepared > 0.5).any(axis=0))
    assert cols[-1] - cols[0] + 1 == MNIST_BOX  # the long side fills the box
    assert rows[-1] - rows[0] + 1 == pytest.approx(MNIST_BOX / 4, abs=1)  # aspect kept
    mass = prepared.sum()
    centre = (np.arange(MNIST_SIDE) @ prepared.sum(axis=1) / mass, np.arange(MNIST_SIDE) @ prepared.sum(axis=0) / mass)
    assert np.allclose(centre, MNIST_CENTRE, atol=0.5 + 1e-9)


def test_light_and_dark_backgrounds_give_the_same_input():
    digit = mnist_digits(1)[0]
    photo = as_photo(digit, zoom=3, top=10, left=20, paper=1.0, ink=0.0)
    dark_on_light, inverted = prepare_digit(photo)
    light_on_dark, not_inverted = prepare_digit(1.0 - photo)
    assert inverted and not not_inverted
    assert np.allclose(dark_on_light, light_on_dark, atol=1e-6)


def test_blank_image_is_one_clear_error():
    with pytest.raises(IpvaeError, match="blank"):
        prepare_digit(np.full((40, 40), 0.8), "page.png")


def write_png(path, gray: np.ndarray, mode: str = "L") -> None:
    Image.fromarray(np.round(gray * 255).astype(np.uint8)).convert(mode).save(path)


def test_file_folder_and_glob_sources(tmp_path):
    digits = mnist_digits(3)
    for index, digit in enumerate(digits):
        write_png(tmp_path / f"d{index}.png", as_photo(digit, 2, 5, 5), mode="RGB" if index == 1 else "L")
    (tmp_path / "notes.txt").write_text("not an image")
    folder = load_file_inputs(str(tmp_path), 784)
    assert folder.x.shape == (3, 784) and "MNIST-style" in folder.description and "3 of 3 inverted" in folder.description
    assert [name.rsplit("/", 1)[-1] for name in folder.names] == ["d0.png", "d1.png", "d2.png"]
    single = load_file_inputs(str(tmp_path / "d1.png"), 784)
    assert np.array_equal(single.x[0], folder.x[1])
    matched = load_file_inputs(str(tmp_path / "d[02].png"), 784)
    assert np.array_equal(matched.x, folder.x[[0, 2]])
    assert is_file_source(str(tmp_path)) and is_file_source("x.png") and not is_file_source("mnist")


def test_a_model_that_is_not_28x28_is_told_plainly(tmp_path):
    write_png(tmp_path / "scene.png", np.random.default_rng(1).random((50, 70)))
    loaded = load_file_inputs(str(tmp_path / "scene.png"), 256)
    assert loaded.x.shape == (1, 256) and "not MNIST's 28x28" in loaded.description
    assert loaded.x.min() == 0.0 and loaded.x.max() == 1.0
    with pytest.raises(IpvaeError, match="not a square"):
        load_file_inputs(str(tmp_path / "scene.png"), 250)


@pytest.mark.parametrize("shape,expected,label", [
    ((4, 784), (4, 784), "[N, M]"), ((4, 28, 28), (4, 784), "[N, H, W]"),
    ((2, 6, 784), (2, 6, 784), "[N, F, M]"), ((2, 6, 28, 28), (2, 6, 784), "[N, F, H, W]"),
])
def test_arrays_of_images_and_frame_sequences(tmp_path, shape, expected, label):
    array = np.random.default_rng(2).random(shape)
    np.savez(tmp_path / "inputs.npz", frames=array, labels=np.arange(shape[0]))
    np.save(tmp_path / "inputs.npy", array)
    for name in ("inputs.npz", "inputs.npy"):
        loaded = load_file_inputs(str(tmp_path / name), 784)
        assert loaded.x.shape == expected and label in loaded.description
        assert np.array_equal(loaded.x.reshape(shape), array)


@pytest.mark.parametrize("content,fragment", [
    (b"not an image", "not a readable image"), (None, "no image files"), (b"\x93NUMPY garbage", "not a readable"),
])
def test_bad_file_sources_are_one_line(tmp_path, content, fragment):
    target = tmp_path / ("bad.npy" if content and content.startswith(b"\x93") else "bad.png")
    if content is None:
        target = tmp_path / "empty_folder"
        target.mkdir()
    else:
        target.write_bytes(content)
    with pytest.raises(IpvaeError, match=fragment):
        load_file_inputs(str(target), 784)


def test_ipvae_run_on_a_folder_of_pngs(tmp_path, capsys):
    """`ipvae run model.h5 --data some_folder/` runs on a folder of PNG files."""
    params = random_float_params(SyntheticConfig(n_inputs=784, n_latents=12, seed=4))
    model = quantize(params, spec_for(params, seed=1), 1.0 / 127, n_steps=4)
    write_model(tmp_path / "model.h5", model, ExportMetadata(
        source="synthetic", source_checkpoint_sha256="0" * 64, calibration="fixed", calibration_images=0,
        input_max=1.0, float_step_size=0.5))
    folder = tmp_path / "digits"
    folder.mkdir()
    for index, digit in enumerate(mnist_digits(2)):
        write_png(folder / f"{index}.png", as_photo(digit, 3, 2, 9))
    code = main(["run", str(tmp_path / "model.h5"), "--backend", "reference", "--data", f"{folder}/", "--json",
                 "--no-figures", "--out", str(tmp_path / "out")])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "input: 2 image(s)" in captured.err and "MNIST-style" in captured.err
    assert '"images": 2' in captured.out


def test_ipvae_eval_on_a_glob_of_pngs(tmp_path, capsys):
    import torch

    from ipvae.train.checkpoint import save_run
    from ipvae.train.config import ModelConfig, RunConfig, TrainConfig
    from ipvae.train.model import IterativeVAE

    config = RunConfig(model=ModelConfig(n_inputs=784, n_latents=8), train=TrainConfig())
    save_run(tmp_path / "run", config, IterativeVAE(config.model, generator=torch.Generator().manual_seed(0)))
    for index, digit in enumerate(mnist_digits(3)):
        write_png(tmp_path / f"{index}.png", as_photo(digit, 2, 4, 4))
    code = main(["eval", str(tmp_path / "run"), "--data", str(tmp_path / "*.png"), "--t-test", "3", "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert '"images": 3' in captured.out and "MNIST-style" in captured.err
