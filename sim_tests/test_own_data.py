"""The user's own images end to end on Lava: a folder of 32 x 32 PNGs and an [N, 20, 24] array each train,
export, inspect (showing their input size), run on the Lava fixed_pt graph, pass parity and get a plan, one
command each; a 16 x 16 set with K = 1024 through the same commands on the integer reference."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from ipvae.cli import main

pytestmark = pytest.mark.lava


def _bars(n: int, height: int, width: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    images = np.zeros((n, height, width))
    for image, row, col in zip(images, rng.integers(0, height, n), rng.integers(0, width, n)):
        image[row] = 1.0
        image[:, col] = 0.5
    return images


def _source(tmp_path, shape, as_png: bool) -> str:
    images = _bars(100, *shape, seed=sum(shape))
    if not as_png:
        np.save(tmp_path / "set.npy", images.astype(np.float32))
        return str(tmp_path / "set.npy")
    folder = tmp_path / "set"
    folder.mkdir()
    for index, image in enumerate(images):
        Image.fromarray((image * 255).astype(np.uint8)).save(folder / f"{index:03d}.png")
    return str(folder)


@pytest.mark.parametrize("shape, as_png, n_latents, backend", [
    ((32, 32), True, 64, "lava"),
    ((20, 24), False, 64, "lava"),
    ((16, 16), True, 1024, "reference"),
])
def test_own_images_train_export_inspect_run_parity_and_plan(tmp_path, capsys, shape, as_png, n_latents, backend):
    data = _source(tmp_path, shape, as_png)
    run_dir, export = str(tmp_path / "run"), str(tmp_path / "model.h5")
    assert main(["train", "--data", data, "--out", run_dir, "--epochs", "1", "--batch-size", "30", "--t-train", "3",
                 "--n-latents", str(n_latents), "--no-progress"]) == 0
    assert f"of {shape[0]}x{shape[1]}" in capsys.readouterr().err
    assert main(["export", run_dir, "-o", export, "--n-steps", "6"]) == 0
    assert main(["inspect", export]) == 0
    assert f"input images {shape[0]}x{shape[1]}" in capsys.readouterr().out
    assert main(["run", export, "--data", data, "-n", "4", "--backend", backend, "--json", "--out",
                 str(tmp_path / "out")]) == 0
    table = json.loads(capsys.readouterr().out)
    assert table["images"] == 4 and table["steps"] == 6
    figure = Image.open(tmp_path / "out" / "reconstructions.png")  # the grid draws each image in its own shape
    assert figure.size[0] > 0
    if backend == "lava":
        assert main(["parity", export, "--data", data, "-n", "2", "--steps", "4"]) == 0
        capsys.readouterr()
    assert main(["plan", export, "--images", "3", "--data", data, "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan  # a report for any M and K
