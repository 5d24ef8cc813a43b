"""`ipvae run` and `ipvae parity` end to end (in-process), and their one-line errors for bad input."""

from __future__ import annotations

import json
import multiprocessing

import numpy as np
import pytest

from ipvae.cli import main
from sim_tests.conftest import MNIST_PIXELS, integer_model, write_export

pytestmark = pytest.mark.lava

REQUIRED_KEYS = (
    "images", "steps", "backend", "spikes_per_inference", "events_per_inference", "synops_per_inference",
    "neuron_updates_per_inference", "energy_estimate_nj", "dense_macs_per_inference", "mse_per_pixel", "r2",
    "zeros", "images_per_second",
)


def run_cli(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def no_lava_workers_left() -> bool:
    return multiprocessing.active_children() == []


@pytest.fixture
def images_file(tmp_path):
    def make(array):
        path = tmp_path / "images.npy"
        np.save(path, array)
        return str(path)

    return make


def test_run_lava_json_table_and_figures(capsys, mnist_sized_export, tmp_path):
    out = tmp_path / "run"
    code, stdout, _ = run_cli(capsys, "run", str(mnist_sized_export), "--backend", "lava", "--data", "mnist",
                              "-n", "3", "--steps", "6", "--json", "--out", str(out))
    assert code == 0
    table = json.loads(stdout)  # one JSON object and nothing else on stdout
    for key in REQUIRED_KEYS:
        assert key in table
    assert (table["images"], table["steps"], table["backend"]) == (3, 6, "lava")
    assert table["neuron_updates_per_inference"] == 7 * 48  # (T + 1) timesteps x K neurons
    for name in ("reconstructions.png", "spike_raster.png", "per_step.png", "run.json"):
        assert (out / name).stat().st_size > 0
    assert no_lava_workers_left()


def test_run_backends_agree(capsys, mnist_sized_export, tmp_path):
    tables = {}
    for backend in ("lava", "reference"):
        code, stdout, _ = run_cli(capsys, "run", str(mnist_sized_export), "--backend", backend, "-n", "2",
                                  "--steps", "5", "--json", "--no-figures", "--out", str(tmp_path / backend))
        assert code == 0
        tables[backend] = json.loads(stdout)
    for key in ("spikes_per_inference", "synops_per_inference", "energy_estimate_nj", "mse_per_pixel", "r2"):
        assert tables["lava"][key] == tables["reference"][key]  # bit-exact backends: identical counts


def test_run_prints_a_table(capsys, mnist_sized_export, tmp_path):
    code, stdout, _ = run_cli(capsys, "run", str(mnist_sized_export), "-n", "2", "--steps", "4", "--rotate", "10",
                              "--no-figures", "--out", str(tmp_path))
    assert code == 0
    assert "energy_estimate_nj" in stdout and "estimate" in stdout.splitlines()[-1]


def test_parity_passes_and_names_the_scope(capsys, mnist_sized_export):
    code, stdout, _ = run_cli(capsys, "parity", str(mnist_sized_export), "-n", "3", "--steps", "8", "--seed", "77")
    assert code == 0
    assert stdout.startswith("PARITY OK") and "3 images x 9 steps" in stdout


def test_parity_with_event_options_and_run_readout_schedules(capsys, mnist_sized_export, tmp_path):
    options = ("--threshold", "3", "--stop-window", "2", "--stop-eps", "0.5", "--batch", "2")
    code, stdout, _ = run_cli(capsys, "parity", str(mnist_sized_export), "-n", "3", "--steps", "8", *options)
    assert code == 0 and stdout.startswith("PARITY OK")
    tables = {}
    for readout in ("end", "every", "average"):
        code, stdout, _ = run_cli(capsys, "run", str(mnist_sized_export), "-n", "3", "--steps", "8", "--json", "--no-figures",
                                  "--readout", readout, "--readout-every", "2", "--out", str(tmp_path / readout), *options)
        assert code == 0
        tables[readout] = json.loads(stdout)
    end, every = tables["end"], tables["every"]
    assert end["readout"] == "end" and end["input_threshold"] == 3 and end["stop_eps"] == 0.5
    assert end["synops_lateral_per_inference"] == every["synops_lateral_per_inference"]  # same spikes
    assert every["synops_readout_per_inference"] >= end["synops_readout_per_inference"]
    assert end["synops_readout_per_inference"] < end["resend_synops_readout_per_inference"]
    assert end["synops_feedforward_per_inference"] < end["resend_synops_feedforward_per_inference"]
    assert end["readout_r2"] == every["readout_r2"]  # the last decode is the same one


def test_parity_reports_the_first_difference(capsys, mnist_sized_export, monkeypatch):
    """Corrupt the reference's bias by one LSB for neuron 5: parity must fail at step 1, neuron 5."""
    import ipvae.export.reference as reference_module

    original = reference_module.run_reference

    def off_by_one(model, x_int, n_steps=None, **keywords):
        import dataclasses

        bias = model.bias.copy()
        bias[5] += 1
        return original(dataclasses.replace(model, bias=bias), x_int, n_steps, **keywords)

    monkeypatch.setattr(reference_module, "run_reference", off_by_one)
    code, stdout, _ = run_cli(capsys, "parity", str(mnist_sized_export), "-n", "2", "--steps", "4")
    assert code == 1
    assert "PARITY FAILED" in stdout and "step t=1, image 0, neuron 5" in stdout


@pytest.mark.parametrize(
    "argv_tail, message",
    [
        (["--steps", "0"], "--steps must be a positive integer"),
        (["--backend", "gpu"], "unknown backend 'gpu'"),
        (["-n", "0"], "positive number of images"),
        (["--threshold", "-1"], "input_threshold must be a non-negative integer"),
        (["--stop-eps", "nan"], "stopping tolerance must be a non-negative number"),
        (["--batch", "0"], "batch (images side by side) must be a positive integer"),
        (["--readout", "every", "--readout-every", "0"], "readout every must be a positive integer"),
    ],
)
def test_bad_arguments_give_one_line(capsys, mnist_sized_export, argv_tail, message):
    code, stdout, stderr = run_cli(capsys, "run", str(mnist_sized_export), *argv_tail)
    assert code != 0 and stdout == ""
    assert len(stderr.strip().splitlines()) == 1 and message in stderr
    assert no_lava_workers_left()


def test_not_an_export_gives_one_line(capsys, tmp_path):
    bogus = tmp_path / "model.h5"
    bogus.write_text("not hdf5")
    for command in ("run", "parity"):
        code, stdout, stderr = run_cli(capsys, command, str(bogus), "-n", "1")
        assert code != 0 and stdout == ""
        assert len(stderr.strip().splitlines()) == 1 and "model.h5" in stderr


@pytest.mark.parametrize(
    "make_images, message",
    [
        (lambda: np.zeros((2, 100)), "images have 100 pixels, the model expects 784"),
        (lambda: np.where(np.arange(MNIST_PIXELS) == 3, np.nan, 0.5)[None].repeat(2, 0), "NaN"),
    ],
)
def test_bad_images_give_one_line(capsys, mnist_sized_export, images_file, make_images, message):
    path = images_file(make_images())
    for command in ("run", "parity"):
        code, stdout, stderr = run_cli(capsys, command, str(mnist_sized_export), "--data", path, "-n", "2")
        assert code != 0 and stdout == ""
        assert len(stderr.strip().splitlines()) == 1 and message in stderr
    assert no_lava_workers_left()


def test_reference_only_export_is_refused_by_the_lava_backend(capsys, tmp_path, images_file):
    path = tmp_path / "wide.h5"
    model = integer_model("sparse", seed=0, n_steps=4, weight_bits=12)
    write_export(path, model)
    data = images_file(np.full((1, model.n_inputs), 0.5))
    code, _, stderr = run_cli(capsys, "run", str(path), "--data", data, "-n", "1")
    assert code != 0
    assert "12-bit weight mantissas do not fit Lava's 8-bit Dense" in stderr
