"""Deployment fidelity of the shipped model (pretrained/mnist_k512) on images it never saw and over long windows.

Oracle: the float-u reference (run_float_reference: the float model's update in float64 with the integer
sampler's uniforms, a second implementation of the dynamics), paired with the integer reference on the
same images and draws. R^2 at step t is the mean over steps t-7..t and over images (the sampling noise of
one step's counts is larger than the effects measured). Sets: rotated MNIST test digits (uniform angles
0..180, seed 0), letters (the Hershey test fonts), Fashion-MNIST (skipped without its package).

What holds (benchmarks/fidelity_novel.py --attribution, docs/fixed_point.md section 10): the integer spec
itself (F = 12 potential with its leak dead zone and bias rounding, G = 5 sampler bins, 8-bit inputs)
reproduces the float model on every set; the 8-bit weight mantissas are within the 0.01 target on every set
with the default layout (per-neuron feed-forward exponents, the self-inhibition apart), where one exponent per
matrix (the shared layout, format version 1) loses up to 0.05 on Fashion-MNIST: the fast test checks both, so
that it can tell a layout that meets the target from one that does not.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ipvae.errors import DatasetUnavailable
from ipvae.export.fidelity import r2_per_image
from ipvae.export.quantize import LAYOUT_SHARED, quantize, quantize_input, spec_for
from ipvae.export.reference import run_float_reference, run_reference
from ipvae.export.spec import symmetric_max

pytest.importorskip("torch")
RUN = Path(__file__).resolve().parent.parent / "pretrained" / "mnist_k512"
HIGH_PRECISION = dict(weight_bits=16, input_bits=16, u_frac_bits=20, sampler_frac_bits=10)
STEP_WINDOW = 8
HIGH_PRECISION_TOLERANCE = 0.003  # measured |dR^2| <= 0.0003 on 100 images per set at t <= 1000
R2_TARGET = 0.01  # the 8-bit export within 0.01 of the float model's R^2
MAX_ANGLE = 180.0
SETS = ("rotated", "letters", "fashion_mnist")


@pytest.fixture(scope="module")
def source():
    if not (RUN / "config.json").is_file():
        pytest.skip("pretrained/mnist_k512 is not in this checkout")
    from ipvae.export.source import load_source

    return load_source(RUN)


def images(name: str, n_images: int) -> np.ndarray:
    import torch

    from ipvae.data import get_dataset, rotated_mnist
    from ipvae.data.glyphs import hershey_glyphs

    try:
        if name == "rotated":
            angles = torch.from_numpy(np.random.default_rng(0).uniform(0.0, MAX_ANGLE, n_images))
            x = rotated_mnist(angles, "test", n_images)[0]
        elif name == "letters":
            glyphs = hershey_glyphs("test")[0].numpy()
            x = glyphs[np.sort(np.random.default_rng(0).permutation(len(glyphs))[:n_images])]
        else:
            x = get_dataset(name, "test", limit=n_images)[0]
    except DatasetUnavailable as error:
        pytest.skip(f"{name}: {error}")
    return np.asarray(x, dtype=np.float64)


def r2_at(x: np.ndarray, z: np.ndarray, phi: np.ndarray, steps) -> dict[int, float]:
    """{t: mean R^2 of Phi z over steps t-7..t and images} from counts z [T+1, N, K]."""
    per_step = np.stack([r2_per_image(x, z[t].astype(np.float64) @ phi.T) for t in range(len(z))])  # [T+1, N]
    return {t: float(per_step[max(t - STEP_WINDOW + 1, 0):t + 1].mean()) for t in steps}


def float_and_integer(params, model, x: np.ndarray, steps) -> tuple[dict, dict]:
    n_steps = max(steps)
    float_z = run_float_reference(params, x, n_steps, seed=model.spec.seed).z
    integer_z = run_reference(model, quantize_input(x, model.input_scale, model.spec.input_bits), n_steps,
                              with_recon=False).z
    return r2_at(x, float_z, params.phi, steps), r2_at(x, integer_z, model.decoder_phi.astype(np.float64), steps)


@pytest.mark.parametrize("name", SETS)
def test_the_integer_spec_reproduces_the_float_model_on_novel_images(source, name):
    """16-bit weights and inputs, F = 20, G = 10: every non-weight factor of the spec at high precision, the
    leak and the hard clamp as exported; the integer model then equals the float model on novel images."""
    params = source.params
    spec = spec_for(params, seed=0, **HIGH_PRECISION)
    model = quantize(params, spec, 1.0 / symmetric_max(spec.input_bits), 16)
    x = images(name, 16)
    float_r2, integer_r2 = float_and_integer(params, model, x, (8, 16))
    for t in (8, 16):
        assert abs(float_r2[t] - integer_r2[t]) < HIGH_PRECISION_TOLERANCE, (name, t, float_r2[t], integer_r2[t])


@pytest.fixture(scope="module")
def shipped_export(source):
    from ipvae.export.pipeline import ExportSettings, build_integer_model

    return build_integer_model(source, ExportSettings())[0]


FAST_IMAGES = 24
FAST_STEPS = (16, 64)
# Measured on 100 images (benchmarks/fidelity_novel.py): the default layout loses at most 0.0014 at t <= 64 on
# every set; the shared layout 0.023 on Fashion-MNIST and 0.004-0.008 on the others (stage 5, shipped before:
# 0.0035, and 0.040 against 0.006-0.009). Fashion-MNIST is the set where the two layouts are told apart: on these
# 24 images the shared layout loses 0.018 at t = 64, the default 0.0007, either side of the 0.01 target.


@pytest.mark.parametrize("name", SETS)
def test_the_8bit_export_is_within_target_on_novel_images(source, shipped_export, name):
    x = images(name, FAST_IMAGES)
    float_r2, integer_r2 = float_and_integer(source.params, shipped_export, x, FAST_STEPS)
    for t in FAST_STEPS:
        assert float_r2[t] - integer_r2[t] < R2_TARGET, (name, t, float_r2[t], integer_r2[t])


def test_one_exponent_per_matrix_misses_the_target_on_fashion_mnist(source):
    """The control: the same check on the shared layout fails where the per-neuron layout passes."""
    from ipvae.export.pipeline import ExportSettings, build_integer_model

    x = images("fashion_mnist", FAST_IMAGES)
    shared = build_integer_model(source, ExportSettings(layout=LAYOUT_SHARED))[0]
    float_r2, integer_r2 = float_and_integer(source.params, shared, x, FAST_STEPS)
    assert float_r2[64] - integer_r2[64] > R2_TARGET


@pytest.mark.slow
def test_the_8bit_export_is_within_target_on_mnist_up_to_1000_steps(source, shipped_export):
    from ipvae.data import get_dataset

    x = get_dataset("mnist", "test", limit=100)[0].numpy().astype(np.float64)
    float_r2, integer_r2 = float_and_integer(source.params, shipped_export, x, (64, 256, 1000))
    for t in float_r2:
        assert float_r2[t] - integer_r2[t] < R2_TARGET, (t, float_r2[t], integer_r2[t])


@pytest.mark.slow
def test_the_8bit_export_is_within_target_on_every_novel_set_up_to_1000_steps(source, shipped_export):
    worst = 0.0
    for name in SETS:
        try:
            x = images(name, 40)
        except pytest.skip.Exception:
            continue  # a set without its package is left out
        float_r2, integer_r2 = float_and_integer(source.params, shipped_export, x, (64, 256, 1000))
        worst = max([worst] + [float_r2[t] - integer_r2[t] for t in float_r2])
    assert worst < R2_TARGET, worst


@pytest.mark.slow
def test_the_attribution_benchmark_runs_and_its_high_precision_row_matches_the_float_model(source, tmp_path):
    import json
    import subprocess
    import sys

    root = RUN.parent.parent
    command = [sys.executable, "benchmarks/fidelity_novel.py", str(RUN), "--n-images", "8", "--steps", "8", "16",
               "--sets", "letters", "--attribution", "--out", str(tmp_path)]
    subprocess.run(command, cwd=root, check=True, capture_output=True, text=True)
    rows = json.loads((tmp_path / "fidelity_novel.json").read_text())["sets"]["letters"]
    assert len(rows) == 9  # float-u, the two export layouts, the high-precision limit, 5 single factors
    high_precision = next(values for label, values in rows.items() if label.startswith("high precision"))
    for t in ("8", "16"):
        assert abs(rows["float-u"][t] - high_precision[t]) < HIGH_PRECISION_TOLERANCE
