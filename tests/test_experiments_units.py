"""Unit tests of the experiment harness's measures, data sets, verdict rule and resumable model table."""

import json
import math

import numpy as np
import pytest
import torch
from scipy import stats

from ipvae.paper import claims
from ipvae.paper.budget import TINY
from ipvae.paper.context import Context
from ipvae.paper.experiments.features import TOP_PIXEL_FRACTION, atom_locality, chance_locality, participation_ratio
from ipvae.data.glyphs import BOX, CHARACTERS, DUPLICATE_TOLERANCE, SIDE, hershey_glyphs, render_glyph
from ipvae.data.labelled import load_user_images
from ipvae.paper.measure import rate_distortion_distance, summary
from ipvae.paper.zoo import MODELS, ensure_trained, run_config, run_directory, training_seconds
from ipvae.errors import IpvaeError


def test_rate_distortion_distance_closed_form():
    assert rate_distortion_distance(1.0, 1.0) == 0.0
    assert rate_distortion_distance(0.0, 0.0) == pytest.approx(math.sqrt(2.0))
    assert rate_distortion_distance(0.7, 0.6) == pytest.approx(0.5)  # a 3-4-5 triangle scaled by 0.1


def test_participation_ratio_counts_equal_contributions():
    contributions = torch.tensor([[2.0, 2.0, 2.0, 0.0], [5.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    assert participation_ratio(contributions).tolist() == pytest.approx([3.0, 1.0, 4.0])


def test_atom_locality_extremes_and_gaussian_chance_against_closed_form():
    n_pixels = SIDE * SIDE
    n_top = math.ceil(TOP_PIXEL_FRACTION * n_pixels)
    one_hot = torch.zeros(n_pixels, 1, dtype=torch.float64)
    one_hot[3, 0] = 2.0
    constant = torch.ones(n_pixels, 1, dtype=torch.float64)
    assert float(atom_locality(one_hot)[0]) == pytest.approx(1.0)
    assert float(atom_locality(constant)[0]) == pytest.approx(n_top / n_pixels)
    # E[x^2; |x| > q] / E[x^2] for x ~ N(0, 1) with P(|x| > q) = n_top / M: 2 (q phi(q) + 1 - Phi(q))
    q = stats.norm.isf(n_top / n_pixels / 2)
    expected = 2 * (q * stats.norm.pdf(q) + stats.norm.sf(q))
    assert chance_locality(n_pixels) == pytest.approx(expected, abs=0.01)


def test_summary_mean_and_sample_std():
    assert summary([1.0, 2.0, 3.0]) == {"mean": 2.0, "std": 1.0, "n": 3}
    assert summary([4.0]) == {"mean": 4.0, "std": 0.0, "n": 1}


@pytest.mark.parametrize("mine, other, expected", [
    (0.9, 0.8, claims.SUPPORTED), (0.8, 0.9, claims.CONTRADICTED), (0.85, 0.84, claims.UNSETTLED)])
def test_beats_rule_uses_the_sum_of_the_spreads(mine, other, expected):
    spread = 0.02  # margin 0.04: differences of 0.1 settle, 0.01 does not
    assert claims._beats({"mean": mine, "std": spread}, {"mean": other, "std": spread}, True) == expected
    flipped = {claims.SUPPORTED: claims.CONTRADICTED, claims.CONTRADICTED: claims.SUPPORTED}.get(expected, expected)
    assert claims._beats({"mean": mine, "std": spread}, {"mean": other, "std": spread}, False) == flipped


def test_render_glyph_fits_the_central_box_and_keeps_orientation():
    # a "T": top bar and a stem going down (the font's y grows downwards)
    image = render_glyph([((0.0, 0.0), (10.0, 0.0)), ((5.0, 0.0), (5.0, 10.0))])
    rows, cols = np.nonzero(image > 0)
    margin = (SIDE - BOX) // 2
    assert rows.min() >= margin - 1 and rows.max() <= SIDE - margin and cols.min() >= margin - 1 and cols.max() <= SIDE - margin
    assert image.max() == pytest.approx(1.0)
    top_row, bottom_row = image[rows.min() + 1], image[rows.max() - 1]
    assert (top_row > 0).sum() > 3 * (bottom_row > 0).sum()  # the bar is on top


def test_hershey_glyphs_split_by_font_without_shared_glyphs():
    x_train, y_train = hershey_glyphs("train")
    x_test, y_test = hershey_glyphs("test")
    assert x_train.shape[1] == SIDE * SIDE and 0.0 <= float(x_train.min()) and float(x_train.max()) <= 1.0
    assert set(y_test.tolist()) <= set(y_train.tolist()) and len(set(y_train.tolist())) == len(CHARACTERS)
    everything = torch.cat([x_train, x_test])  # [N, M]
    distances = torch.cdist(everything, everything, p=float("inf"))  # [N, N] max-abs pixel difference
    distances.fill_diagonal_(1.0)
    assert float(distances.min()) >= DUPLICATE_TOLERANCE  # no glyph twice, none shared by train and test
    with pytest.raises(IpvaeError):
        hershey_glyphs("validation")


def test_user_images_from_npy_and_png_folder(tmp_path):
    from skimage.io import imsave

    images = np.zeros((4, SIDE, SIDE), dtype=np.uint8)
    images[:, 10, 10] = 255
    np.save(tmp_path / "mine.npy", images)
    np.save(tmp_path / "mine_labels.npy", np.array(["a", "b", "a", "b"]))
    x, y = load_user_images(tmp_path / "mine.npy")
    assert x.shape == (4, SIDE * SIDE) and float(x.max()) == 1.0 and y.tolist() == [0, 1, 0, 1]
    for label in ("cat", "dog"):
        (tmp_path / "pngs" / label).mkdir(parents=True)
        imsave(tmp_path / "pngs" / label / "0.png", images[0], check_contrast=False)
    x, y = load_user_images(tmp_path / "pngs")
    assert x.shape == (2, SIDE * SIDE) and y.tolist() == [0, 1]
    np.save(tmp_path / "bad.npy", np.zeros((3, 5)))
    with pytest.raises(IpvaeError, match="784"):  # 5 pixels are not a 28x28 image
        load_user_images(tmp_path / "bad.npy")
    with pytest.raises(IpvaeError):
        load_user_images(tmp_path / "missing.txt")


def test_training_seconds_sums_invocations(tmp_path):
    lines = [{"seconds": 10.0}, {"seconds": 20.0}, {"seconds": 5.0}, {"seconds": 12.5}]  # resumed after epoch 2
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert training_seconds(tmp_path) == 32.5


def test_context_cached_reuses_a_part(tmp_path):
    ctx = Context(results_dir=tmp_path, budget=TINY, models=MODELS, device="test")
    assert ctx.cached("x", "part", lambda: {"value": 1}) == {"value": 1}

    def fail():
        raise AssertionError("a stored part must not be recomputed")

    assert ctx.cached("x", "part", fail) == {"value": 1}


def test_interrupted_training_resumes_to_the_uninterrupted_weights(tmp_path):
    from ipvae.train.trainer import train

    entry = MODELS[0]
    config = run_config(entry, TINY, 0, "mnist")
    train(config, tmp_path / "straight", show_progress=False)
    interrupted = run_directory(tmp_path, entry, 0, "mnist")
    train(config, interrupted, show_progress=False, max_steps=1)  # stopped after one of its steps
    messages = []
    resumed = ensure_trained(tmp_path, entry, TINY, 0, log=messages.append)
    assert len(messages) == 1 and messages[0].startswith("resuming"), messages  # not trained again from step 0
    from ipvae.train.checkpoint import load_run

    straight = load_run(tmp_path / "straight").model
    for name, tensor in straight.state_dict().items():
        assert torch.equal(tensor, resumed.model.state_dict()[name]), name
    stamp = (interrupted / "model.safetensors").stat().st_mtime_ns
    again = ensure_trained(tmp_path, entry, TINY, 0, log=lambda message: None)  # complete: reused, not retrained
    assert (interrupted / "model.safetensors").stat().st_mtime_ns == stamp and again.train_seconds == resumed.train_seconds


def test_a_run_of_another_configuration_is_refused(tmp_path):
    import dataclasses

    entry = MODELS[0]
    ensure_trained(tmp_path, entry, TINY, 0, log=lambda message: None)
    with pytest.raises(IpvaeError, match="another configuration"):
        ensure_trained(tmp_path, entry, dataclasses.replace(TINY, epochs=2), 0, log=lambda message: None)


@pytest.mark.parametrize("minutes, verdict", [(5.0, "met"), (12.5, "**missed**")])
def test_wall_clock_spans_the_manifest_to_the_last_result_and_judges_the_quick_target(tmp_path, minutes, verdict):
    import os
    from datetime import datetime, timezone

    from ipvae.paper.report import _wall_clock_lines
    from ipvae.paper.runner import MANIFEST

    started = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)
    (tmp_path / MANIFEST).write_text(json.dumps({"budget": "quick", "started_utc": started.isoformat()}))
    for name, offset in (("mnist", 60.0), ("rotation", minutes * 60)):  # the later file ends the span
        (tmp_path / name).mkdir()
        path = tmp_path / name / f"{name}.json"
        path.write_text("{}")
        os.utime(path, (started.timestamp() + offset, started.timestamp() + offset))
    results = {"mnist": {"budget": {"name": "quick"}}, "rotation": {"budget": {"name": "quick"}}}
    (line, _) = _wall_clock_lines(tmp_path, results)
    assert f"**{minutes:.1f} minutes**" in line and line.endswith(f"under 10 minutes: {verdict}.")


def test_the_wall_clock_reads_the_recorded_times_not_the_file_times(tmp_path):
    """Oracle: started at t0, results recorded at t0 + 60 s and t0 + 300 s -> 300 s, whatever the files' mtimes
    (a git checkout resets them); a result without a recorded time falls back on its mtime."""
    import json
    import os
    from datetime import datetime, timedelta, timezone

    from ipvae.paper.runner import MANIFEST, WRITTEN_UTC, wall_span_seconds

    t0 = datetime(2026, 12, 3, 13, 0, tzinfo=timezone.utc)
    (tmp_path / MANIFEST).write_text(json.dumps({"budget": "long", "started_utc": t0.isoformat()}))
    files = []
    for name, offset in (("a", 60), ("b", 300)):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps({WRITTEN_UTC: (t0 + timedelta(seconds=offset)).isoformat()}))
        files.append(path)
    assert wall_span_seconds(tmp_path, files) == 300.0
    legacy = tmp_path / "c.json"
    legacy.write_text("{}")
    os.utime(legacy, (t0.timestamp() + 900, t0.timestamp() + 900))
    assert wall_span_seconds(tmp_path, files + [legacy]) == 900.0
