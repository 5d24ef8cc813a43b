"""The leak of ModelConfig.leak on the integer side: quantization to a shift, the HDF5 field, the integer dynamics.

Oracles: the spec's update u <- sat(u + a_ff + a_rec + bias - ((u - u_prior + 2**(n-1)) >> n)) written out in
Python ints (docs/fixed_point.md 6.1), the pre-leak file layout rebuilt by hand, and the float torch model with
the same leak (in the high-precision limit, with the conventions of tests/test_export_reference.py).
"""

from __future__ import annotations

import dataclasses
import math

import h5py
import numpy as np
import pytest

from ipvae.errors import ExportFormatError
from ipvae.export.hdf5 import CONTENT_HASH, LEAK_SHIFT, ExportMetadata, content_digest, read_model, write_model
from ipvae.export.integer_model import FloatParams, IntegerModel
from ipvae.export.quantize import (
    accumulator_bounds,
    leak_shift_for,
    quantize,
    quantize_input,
    quantize_matrix,
    spec_for,
)
from ipvae.export.reference import run_reference
from ipvae.export.sampler import build_cdf_table
from ipvae.export.spec import MAX_LEAK_SHIFT, QuantizedMatrix, SpecError, leak_term
from ipvae.export.synthetic import SyntheticConfig, random_float_params, random_images

SHIPPED_LEAK_SHIFT = 8  # the shipped model's leak: 2**-8

METADATA = ExportMetadata(
    source="runs/leaky", source_checkpoint_sha256="cd" * 32, calibration="fixed --input-max",
    calibration_images=0, input_max=1.0, float_step_size=0.5,
)


# ------------------------------------------------------------------------------------------ quantization


@pytest.mark.parametrize(
    "leak, shift", [(0.0, 0), (2.0**-8, 8), (2.0**-7, 7), (0.5, 1), (2.0**-MAX_LEAK_SHIFT, MAX_LEAK_SHIFT)]
)
def test_a_power_of_two_leak_becomes_its_shift(leak, shift):
    assert leak_shift_for(leak) == shift


@pytest.mark.parametrize(
    "leak", [0.003, 3 * 2.0**-9, 0.75, 1.0, -(2.0**-8), 2.0 ** -(MAX_LEAK_SHIFT + 1), math.nan, math.inf]
)
def test_any_other_leak_is_refused_in_one_line(leak):
    with pytest.raises(SpecError) as info:
        leak_shift_for(leak)
    assert "leak" in str(info.value) and "2**-n" in str(info.value) and "\n" not in str(info.value)


def test_quantize_stores_the_shift_and_refuses_an_unexportable_leak():
    params = random_float_params(SyntheticConfig(n_inputs=12, n_latents=6, seed=1))
    spec = spec_for(params, seed=3)
    assert quantize(params, spec, 1.0 / 127, n_steps=5).leak_shift == 0
    leaky = quantize(dataclasses.replace(params, leak=2.0**-SHIPPED_LEAK_SHIFT), spec, 1.0 / 127, n_steps=5)
    assert leaky.leak_shift == SHIPPED_LEAK_SHIFT
    with pytest.raises(SpecError, match="leak = 0.003"):
        quantize(dataclasses.replace(params, leak=0.003), spec, 1.0 / 127, n_steps=5)


def test_float_params_read_the_leak_and_default_to_none():
    torch = pytest.importorskip("torch")
    from ipvae.train.inference.common import InferenceParams

    tensors = dict(phi=torch.zeros(4, 2), precision=torch.ones(4), bias=torch.ones(2), step_size=torch.tensor(0.5),
                   u_prior=torch.zeros(2), u_min=-8.0, u_max=4.0, max_spike_count=15)
    assert FloatParams.from_inference_params(InferenceParams(**tensors, leak=2.0**-7)).leak == 2.0**-7

    class BeforeTheLeak:  # an object with the attributes InferenceParams had before ModelConfig.leak
        pass

    old = BeforeTheLeak()
    for name, value in tensors.items():
        setattr(old, name, value)
    assert FloatParams.from_inference_params(old).leak == 0.0


def test_integer_model_refuses_a_shift_outside_the_spec():
    model = small_model()
    for shift in (-1, MAX_LEAK_SHIFT + 1):
        with pytest.raises(SpecError, match="leak_shift"):
            dataclasses.replace(model, leak_shift=shift)


def test_the_neuron_sum_bound_includes_the_largest_leak_term():
    """|leak term| <= (u_max - u_min + 2**(n-1)) >> n: the offset u - u_prior spans at most the saturation range."""
    model = small_model()
    spec = model.spec
    span = spec.u_max_int - spec.u_min_int
    without = accumulator_bounds(model)["neuron_sum"]
    for shift in (1, 3, SHIPPED_LEAK_SHIFT):
        largest = max(abs(leak_term(offset, shift)) for offset in (-span, span))
        assert accumulator_bounds(dataclasses.replace(model, leak_shift=shift))["neuron_sum"] == without + largest


def test_leak_term_rounds_half_up_in_python_ints():
    """(d + 2**(n-1)) >> n: the nearest integer to d / 2**n, halves towards +infinity, for both signs."""
    for shift in (1, 2, 3, SHIPPED_LEAK_SHIFT):
        scale = 2**shift
        for offset in range(-3 * scale - 2, 3 * scale + 3):
            assert leak_term(offset, shift) == math.floor(offset / scale + 0.5)
    assert leak_term(12345, 0) == 0 and leak_term(-7, 0) == 0
    offsets = np.array([-129, -128, -127, 127, 128, 129], dtype=np.int64)
    assert leak_term(offsets, 8).tolist() == [-1, 0, 0, 0, 1, 1]  # -0.5 rounds up to 0, +0.5 up to 1


# --------------------------------------------------------------------------------------------------- HDF5


def small_model(leak_shift: int = 0):
    params = random_float_params(SyntheticConfig(n_inputs=12, n_latents=6, seed=1))
    params = dataclasses.replace(params, leak=2.0**-leak_shift if leak_shift else 0.0)
    return quantize(params, spec_for(params, seed=12345), input_scale=1.0 / 127, n_steps=5)


@pytest.mark.parametrize("leak_shift", [0, 1, SHIPPED_LEAK_SHIFT, MAX_LEAK_SHIFT])
def test_round_trip_keeps_the_leak_shift(tmp_path, leak_shift):
    model = small_model(leak_shift)
    write_model(tmp_path / "m.h5", model, METADATA)
    with h5py.File(tmp_path / "m.h5", "r") as file:
        stored = file[LEAK_SHIFT]
        assert stored.dtype == np.dtype("<i4") and stored.shape == () and int(stored[()]) == leak_shift
    loaded = read_model(tmp_path / "m.h5").model
    assert loaded.leak_shift == leak_shift
    x_int = quantize_input(random_images(3, model.n_inputs, seed=0), model.input_scale, model.spec.input_bits)
    assert np.array_equal(run_reference(loaded, x_int).u, run_reference(model, x_int).u)


def write_as_before_the_leak(path, model) -> None:
    """What the writer produced before the leak existed: no leak_shift dataset, content hash over the rest."""
    write_model(path, model, METADATA)
    with h5py.File(path, "r+") as file:
        del file[LEAK_SHIFT]
        del file[CONTENT_HASH]
        datasets = {}

        def collect(name, node):
            if isinstance(node, h5py.Dataset):
                datasets[name] = np.asarray(node[()])

        file.visititems(collect)
        file.create_dataset(CONTENT_HASH, data=np.array(content_digest(datasets).encode("utf-8"), dtype=np.bytes_))


def test_a_file_from_before_the_leak_loads_without_one(tmp_path):
    path = tmp_path / "old.h5"
    write_as_before_the_leak(path, small_model(0))
    with h5py.File(path, "r") as file:
        assert LEAK_SHIFT not in file
    loaded = read_model(path)
    assert loaded.model.leak_shift == 0
    assert np.array_equal(loaded.model.bias, small_model(0).bias)


def test_deleting_the_leak_of_a_leaky_file_is_caught(tmp_path):
    """Without the dataset a file reads as leak-free, so removing it from a leaky export must not pass unnoticed."""
    path = tmp_path / "m.h5"
    write_model(path, small_model(SHIPPED_LEAK_SHIFT), METADATA)
    with h5py.File(path, "r+") as file:
        del file[LEAK_SHIFT]
    with pytest.raises(ExportFormatError, match=CONTENT_HASH):
        read_model(path)


@pytest.mark.parametrize("value, expected", [
    (np.array(-1, np.int32), "-1 is outside 0..30"),
    (np.array(99, np.int32), "99 is outside 0..30"),
    (np.array(8, np.int64), "dtype int64, expected int32"),
    (np.array([8], np.int32), "shape (1,), expected ()"),
    (np.array(b"8"), "dtype |S1, expected int32"),
])
def test_a_bad_leak_shift_is_reported_as_corrupt_in_one_line(tmp_path, value, expected):
    path = tmp_path / "m.h5"
    write_model(path, small_model(SHIPPED_LEAK_SHIFT), METADATA)
    with h5py.File(path, "r+") as file:
        del file[LEAK_SHIFT]
        file.create_dataset(LEAK_SHIFT, data=value)
    with pytest.raises(ExportFormatError) as info:
        read_model(path)
    message = str(info.value)
    assert f"{LEAK_SHIFT}: {expected}" in message and "\n" not in message


def test_a_group_in_place_of_the_leak_shift_is_refused(tmp_path):
    path = tmp_path / "m.h5"
    write_model(path, small_model(0), METADATA)
    with h5py.File(path, "r+") as file:
        del file[LEAK_SHIFT]
        file.create_group(LEAK_SHIFT)
    with pytest.raises(ExportFormatError, match=f"{LEAK_SHIFT}: is a group"):
        read_model(path)


# ---------------------------------------------------------------------------------- integer dynamics

U_MIN, U_MAX = -8.0, 4.0
# enough for 2**-8 to settle: the distance to the fixed point shrinks by (1 - 2**-8) per step, to e**-11.7 of it
CLOSED_FORM_STEPS = 3000


def bias_only_model(bias: list[int], u_prior: list[int], leak_shift: int, n_steps: int) -> IntegerModel:
    """A model whose only drive is its bias: zero ff and rec weights, so u does not depend on the input or spikes."""
    params = random_float_params(SyntheticConfig(n_inputs=4, n_latents=len(bias)))
    spec = spec_for(params, u_min=U_MIN, u_max=U_MAX, seed=7)
    n_latents = len(bias)

    def zeros(rows: int, cols: int) -> QuantizedMatrix:
        return QuantizedMatrix(mantissa=np.zeros((rows, cols), np.int16), exponent=0, bits=spec.weight_bits)

    return IntegerModel(
        spec=spec, input_scale=1.0 / 127, ff=zeros(n_latents, params.n_inputs), rec=zeros(n_latents, n_latents),
        bias=np.array(bias, np.int32), u_prior=np.array(u_prior, np.int32), cdf=build_cdf_table(spec),
        decoder_phi=params.phi.astype(np.float32), decoder=quantize_matrix(params.phi, spec.decoder_bits),
        n_steps=n_steps, leak_shift=leak_shift,
    )


def spec_trajectory(u_prior: int, bias: int, shift: int, n_steps: int, low: int, high: int) -> list[int]:
    """u_0 = u_prior, u_t = min(max(u + bias - ((u - u_prior + 2**(n-1)) >> n), low), high), in Python ints."""
    u, trajectory = u_prior, [u_prior]
    for _ in range(n_steps):
        leak = (u - u_prior + (1 << (shift - 1))) >> shift if shift else 0
        u = min(max(u + bias - leak, low), high)
        trajectory.append(u)
    return trajectory


# bias in u-LSBs per step and u_prior in u-LSBs (F = 12): positive and negative drives, odd values (rounding of
# both signs), a zero drive, and one neuron whose fixed point bias * 2**n lies beyond u_max (it saturates).
BIASES = [37, -50, 1, -1, 0, 101, -3]
PRIORS = [-4096, 0, -8192, 2048, 1234, 8192, -20000]


@pytest.mark.parametrize("leak_shift", [0, 1, 3, SHIPPED_LEAK_SHIFT])
def test_reference_follows_the_closed_form_of_a_bias_driven_neuron(leak_shift):
    n_steps = CLOSED_FORM_STEPS if leak_shift == SHIPPED_LEAK_SHIFT else 400
    model = bias_only_model(BIASES, PRIORS, leak_shift, n_steps)
    spec = model.spec
    x_int = np.zeros((2, model.n_inputs), dtype=np.int32)  # no input
    result = run_reference(model, x_int, n_steps, with_recon=False)
    assert result.z.max() > 0  # spikes were drawn (and, with zero lateral weights, changed nothing)
    for k, (bias, prior) in enumerate(zip(BIASES, PRIORS)):
        expected = spec_trajectory(prior, bias, leak_shift, n_steps, spec.u_min_int, spec.u_max_int)
        for image in range(x_int.shape[0]):
            assert result.u[:, image, k].tolist() == expected, f"neuron {k}, image {image}"


@pytest.mark.parametrize("leak_shift", [1, 3, SHIPPED_LEAK_SHIFT])
def test_the_offset_settles_where_the_leak_cancels_the_bias(leak_shift):
    """Fixed point of d <- d + bias - ((d + 2**(n-1)) >> n): the leak term equals the bias, i.e.
    bias 2**n - 2**(n-1) <= d < bias 2**n + 2**(n-1); the saturating neuron stops at u_max instead."""
    model = bias_only_model(BIASES, PRIORS, leak_shift, CLOSED_FORM_STEPS)
    spec = model.spec
    final = run_reference(model, np.zeros((1, model.n_inputs), np.int32), with_recon=False).u[-1, 0]  # [K]
    scale, half = 2**leak_shift, 2 ** (leak_shift - 1)
    for k, (bias, prior) in enumerate(zip(BIASES, PRIORS)):
        offset = int(final[k]) - prior
        if prior + bias * scale + half <= spec.u_max_int:
            assert bias * scale - half <= offset < bias * scale + half, f"neuron {k}"
        else:
            assert final[k] == spec.u_max_int, f"neuron {k}"


def test_the_worked_example_of_the_spec():
    """docs/fixed_point.md 6.1: n = 8, bias_int = 1, zero weights: d = 0, 1, ..., 128, then 128 for ever."""
    n_steps = 200
    model = bias_only_model([1], [0], SHIPPED_LEAK_SHIFT, n_steps)
    offsets = run_reference(model, np.zeros((1, model.n_inputs), np.int32), with_recon=False).u[:, 0, 0]  # [T+1]
    assert offsets.tolist() == list(range(129)) + [128] * (n_steps - 128)


def test_without_a_leak_a_bias_driven_neuron_walks_to_its_bound():
    """n = 0 keeps the pre-leak dynamics: u_t = sat(u_prior + t bias)."""
    n_steps = 400
    model = bias_only_model(BIASES, PRIORS, 0, n_steps)
    spec = model.spec
    u = run_reference(model, np.zeros((1, model.n_inputs), np.int32), with_recon=False).u[:, 0]  # [T+1, K]
    steps = np.arange(n_steps + 1)[:, None]  # [T+1, 1]
    expected = np.clip(np.array(PRIORS)[None, :] + steps * np.array(BIASES)[None, :], spec.u_min_int, spec.u_max_int)
    assert np.array_equal(u, expected)


def test_stopped_images_do_not_leak():
    """The leak acts where the potential integrates: a stopped image keeps u (docs/fixed_point.md 11.2)."""
    from ipvae.export.events import EventOptions

    model = small_model(1)
    x_int = quantize_input(random_images(6, model.n_inputs, seed=3), model.input_scale, model.spec.input_bits)
    options = EventOptions(stop_window=2, stop_tolerance=256)  # relative change <= 1: every image stops at t = 4
    result = run_reference(model, x_int, 5, options=options, with_recon=False)
    assert (result.last_step == 4).all()
    offsets = result.u[4].astype(np.int64) - model.u_prior  # [B, K]
    assert np.abs(offsets).max() > 1  # a running neuron with such an offset would leak (n = 1)
    assert np.array_equal(result.u[5], result.u[4])


# Against the float torch model in the high-precision limit, and the float reference's step against torch's:
# tests/test_export_reference.py (beside the same checks without a leak).


# -------------------------------------------------------------------------------------------- the CLI


def save_leaky_run(run_dir, leak: float):
    torch = pytest.importorskip("torch")
    checkpoint = pytest.importorskip("ipvae.train.checkpoint")
    from ipvae.train.config import ModelConfig, RunConfig, TrainConfig
    from ipvae.train.model import IterativeVAE

    config = RunConfig(model=ModelConfig(n_inputs=16, n_latents=8, u_max=U_MAX, hard_upper_clamp=True, leak=leak),
                       train=TrainConfig(t_train=4))
    checkpoint.save_run(run_dir, config, IterativeVAE(config.model, generator=torch.Generator().manual_seed(0)))


def test_export_cli_writes_the_leak_and_inspect_shows_it(tmp_path, capsys):
    from ipvae.cli import main

    save_leaky_run(tmp_path / "run", 2.0**-SHIPPED_LEAK_SHIFT)
    output = tmp_path / "m.h5"
    assert main(["export", str(tmp_path / "run"), "-o", str(output), "--input-max", "1.0"]) == 0
    assert read_model(output).model.leak_shift == SHIPPED_LEAK_SHIFT
    capsys.readouterr()
    assert main(["inspect", str(output)]) == 0
    assert f"leak 2**-{SHIPPED_LEAK_SHIFT}" in capsys.readouterr().out


def test_export_cli_refuses_a_leak_that_is_no_power_of_two_in_one_line(tmp_path, capsys):
    from ipvae.cli import main

    save_leaky_run(tmp_path / "run", 0.003)
    output = tmp_path / "m.h5"
    code = main(["export", str(tmp_path / "run"), "-o", str(output), "--input-max", "1.0"])
    error = capsys.readouterr().err.strip()
    assert code != 0 and "leak = 0.003" in error and "\n" not in error and "Traceback" not in error
    assert not output.exists()
