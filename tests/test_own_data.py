"""The natural-patch set's contrast rule (ipvae.data.natural.MIN_PATCH_CONTRAST) and benchmarks/own_data.py."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from ipvae.data import natural_patches
from ipvae.data.natural import MIN_PATCH_CONTRAST, sample_patches, train_patch_std
from ipvae.errors import IpvaeError

ROOT = Path(__file__).resolve().parents[1]
SIDE = 64  # planted images: a blank one and a white-noise one of this size
PATCH = 8


def _planted_images() -> list[np.ndarray]:
    """A blank image (every patch has std 0) and unit white noise (a patch's std is near 1)."""
    noise = np.random.default_rng(7).standard_normal((SIDE, SIDE)).astype(np.float32)  # [S, S]
    return [np.zeros((SIDE, SIDE), np.float32), noise]


def test_the_named_set_keeps_only_patches_with_contrast():
    patches = natural_patches("train", n_patches=2000, seed=3).numpy()  # [n, 256], divided by the global std
    contrast = patches.std(axis=1) * train_patch_std()  # [n] in units of the whitened image's std
    assert contrast.min() >= MIN_PATCH_CONTRAST * (1 - 1e-5)
    validation = natural_patches("validation", n_patches=500, seed=3).numpy()
    assert (validation.std(axis=1) * train_patch_std()).min() >= MIN_PATCH_CONTRAST * (1 - 1e-5)


def test_blank_areas_are_drawn_again():
    n = 2000
    kept = sample_patches(_planted_images(), n, PATCH, np.random.default_rng(0), min_contrast=MIN_PATCH_CONTRAST)
    assert kept.shape == (n, PATCH * PATCH)
    assert kept.std(axis=1).min() >= MIN_PATCH_CONTRAST  # no patch of the blank image survives
    # without the rule, the two equal-area images are drawn alike: Binomial(n, 1/2) blank patches, +-5 sigma
    plain = sample_patches(_planted_images(), n, PATCH, np.random.default_rng(0))
    blank_share = float((plain.std(axis=1) == 0).mean())
    assert abs(blank_share - 0.5) < 5 * np.sqrt(0.25 / n)


def test_a_set_without_contrast_is_refused_in_one_line():
    blank = [np.zeros((SIDE, SIDE), np.float32)] * 2
    with pytest.raises(IpvaeError, match="too few patches") as error:
        sample_patches(blank, 10, PATCH, np.random.default_rng(0), "two blank images", min_contrast=0.1)
    assert "\n" not in str(error.value)


@pytest.mark.slow
def test_own_data_benchmark_quick(tmp_path):
    """The table's machinery end to end at tiny sizes: three sets trained through the CLI, JSON and table written."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import own_data
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    out = tmp_path / "out"
    assert own_data.main(["--quick", "--out", str(out), "--run-root", str(tmp_path / "runs")]) == 0
    for name in ("mnist", "natural_patches", "fashion_array"):
        result = json.loads((out / f"{name}.json").read_text())
        assert list(result["eval"]["at"]) == [str(t) for t in own_data.CHECKPOINTS if t <= own_data.QUICK["steps"]]
        point = result["eval"]["at"]["16"]
        assert 0.0 <= point["zeros"] <= 1.0 and np.isfinite(point["r2"])
        assert result["training"]["command"].startswith(f"ipvae train --data ")
    assert np.load(tmp_path / "runs" / "fashion_mnist_200.npy").shape == (own_data.QUICK["array_images"], 28, 28)
    assert (out / "table.md").read_text().count("\n") == 5  # header, rule, three rows
