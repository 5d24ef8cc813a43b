"""HDF5 export: round trip, atomic writes, and a validating reader that fails with one line naming the field."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ipvae.export.hdf5 import CONTENT_HASH, ExportMetadata, content_digest, layout, read_model, write_model
from ipvae.export.quantize import LAYOUT_PER_NEURON, LAYOUT_SHARED, LAYOUTS, quantize, quantize_input, spec_for
from ipvae.export.reference import run_reference
from ipvae.export.synthetic import SyntheticConfig, random_float_params, random_images
from ipvae.errors import ExportFormatError

FUZZ_SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def make_model(weight_bits: int = 8, layout: str = LAYOUT_PER_NEURON):
    params = random_float_params(SyntheticConfig(n_inputs=12, n_latents=6, seed=1))
    spec = spec_for(params, weight_bits=weight_bits, seed=12345)
    return quantize(params, spec, input_scale=1.0 / 127, n_steps=5, layout=layout)


METADATA = ExportMetadata(
    source="runs/example", source_checkpoint_sha256="ab" * 32, calibration="mnist:train[:10]",
    calibration_images=10, input_max=1.0, float_step_size=0.5,
)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    path = tmp_path_factory.mktemp("export") / "model.h5"
    model = make_model()
    stored = write_model(path, model, METADATA)
    return path, model, stored


def assert_same_array(a: np.ndarray, b: np.ndarray):
    assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("weight_bits", [4, 8, 16])
def test_round_trip_gives_identical_arrays(tmp_path, weight_bits, layout):
    model = make_model(weight_bits, layout)
    stored = write_model(tmp_path / "m.h5", model, METADATA)
    loaded = read_model(tmp_path / "m.h5")
    again = loaded.model
    assert again.spec == model.spec
    assert again.input_scale == model.input_scale and again.n_steps == model.n_steps
    for name in ("ff", "rec", "decoder"):
        assert_same_array(getattr(again, name).mantissa, getattr(model, name).mantissa)
        assert np.array_equal(getattr(again, name).row_exponents, getattr(model, name).row_exponents)
    if layout == LAYOUT_PER_NEURON:
        assert model.ff.per_row and again.ff.per_row  # the synthetic rows need different exponents
        assert_same_array(again.self_inhibition.mantissa, model.self_inhibition.mantissa)
        assert again.self_inhibition.exponent == model.self_inhibition.exponent
    else:
        assert again.self_inhibition is None and model.self_inhibition is None
    for name in ("bias", "u_prior", "cdf", "decoder_phi"):
        assert_same_array(getattr(again, name), getattr(model, name))
    assert loaded.metadata == stored
    assert stored.source == METADATA.source and len(stored.content_sha256) == 64 and stored.created_utc
    x_int = quantize_input(random_images(4, model.n_inputs, seed=0), model.input_scale, model.spec.input_bits)
    assert np.array_equal(run_reference(again, x_int).z, run_reference(model, x_int).z)


def test_file_follows_the_netx_layout(exported):
    path, model, _ = exported
    with h5py.File(path, "r") as file:
        assert file["layer/0/type"][()] == b"input" and file["layer/1/type"][()] == b"dense"
        assert list(file["layer/0/shape"][()]) == [model.n_inputs]
        assert file["layer/1/weight"].shape == (model.n_latents, model.n_inputs)
        assert file["layer/1/weight_rec"].shape == (model.n_latents, model.n_latents)
        assert file["layer/1/neuron/type"][()] == b"POISSON"


def test_interrupted_write_leaves_no_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    target = tmp_path / "model.h5"
    model = make_model()
    calls = {"n": 0}
    original = h5py.Group.create_dataset

    def failing(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 10:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(h5py.Group, "create_dataset", failing)
    with pytest.raises(KeyboardInterrupt):
        write_model(target, model, METADATA)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(h5py.Group, "create_dataset", original)
    write_model(target, model, METADATA)
    before = target.read_bytes()
    calls["n"] = 0
    monkeypatch.setattr(h5py.Group, "create_dataset", failing)
    with pytest.raises(KeyboardInterrupt):
        write_model(target, make_model(weight_bits=6), METADATA)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.h5"] and target.read_bytes() == before


def rewrite(path: Path, name: str, value=None, delete_only: bool = False):
    with h5py.File(path, "r+") as file:
        del file[name]
        if not delete_only:
            file.create_dataset(name, data=value)


def mutated_copy(source: Path, tmp_path: Path) -> Path:
    target = tmp_path / "mutated.h5"
    shutil.copyfile(source, target)
    return target


CASES = {
    "missing group": ("layer/1/neuron", None, "layer/1/neuron/"),
    "wrong shape": ("layer/1/weight", np.zeros((3, 3), np.int16), "layer/1/weight: shape"),
    "wrong dtype": ("layer/1/weight_rec", np.zeros((6, 6), np.float32), "layer/1/weight_rec: dtype"),
    "NaN decoder": ("decoder/phi", np.full((12, 6), np.nan, np.float32), "decoder/phi: contains NaN"),
    "NaN scale": ("layer/0/input_scale", np.array(np.nan), "layer/0/input_scale: contains NaN"),
    "mantissa outside 8 bits": ("layer/1/weight", np.full((6, 12), 300, np.int16), "layer/1/weight: mantissa"),
    "unknown version": ("format_version", np.array(3, np.int64), "format_version: unsupported version 3"),
    "per-neuron exponent out of range": ("layer/1/weight_exp", np.full(6, 40, np.int64), "layer/1/weight_exp: an exponent outside"),
    "scalar exponent in version 2": ("layer/1/weight_exp", np.array(-3, np.int64), "layer/1/weight_exp: shape ()"),
    "self-inhibition and a diagonal": ("layer/1/weight_rec", np.eye(6, dtype=np.int16), "layer/1/weight_rec: has a non-zero diagonal"),
    "self weight of the wrong size": ("layer/1/neuron/self_weight", np.zeros(5, np.int16), "layer/1/neuron/self_weight: shape (5,)"),
    "half the self-inhibition": ("layer/1/neuron/self_weight", None, "layer/1/neuron/self_weight: missing"),
    "unknown neuron": ("layer/1/neuron/type", np.array(b"LIF"), "layer/1/neuron/type: unknown neuron type"),
    "bad spec field": ("layer/1/neuron/u_frac_bits", np.array(30, np.int64), "layer/1/neuron/u_frac_bits"),
    "non-monotone table": ("layer/1/neuron/cdf", np.zeros((385, 15), np.uint32) + np.arange(15, 0, -1, dtype=np.uint32), "layer/1/neuron/cdf"),
    "prior out of range": ("layer/1/neuron/u_prior", np.full(6, 2**30, np.int32), "layer/1/neuron/u_prior"),
    "hand-edited seed": ("layer/1/neuron/seed", np.array(7, np.uint64), CONTENT_HASH),
    "string where number": ("layer/1/weight_exp", np.array(b"3"), "layer/1/weight_exp: dtype"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_files_give_one_line_naming_the_field(exported, tmp_path, case):
    name, value, expected = CASES[case]
    path = mutated_copy(exported[0], tmp_path)
    rewrite(path, name, value, delete_only=value is None)
    with pytest.raises(ExportFormatError) as info:
        read_model(path)
    message = str(info.value)
    assert expected in message and "\n" not in message


def test_truncated_and_foreign_files(exported, tmp_path):
    data = exported[0].read_bytes()
    for length in (0, 7, len(data) // 3, len(data) - 100):
        path = tmp_path / f"cut{length}.h5"
        path.write_bytes(data[:length])
        with pytest.raises(ExportFormatError, match=str(path)):
            read_model(path)
    text = tmp_path / "notes.h5"
    text.write_text("not hdf5\n")
    with pytest.raises(ExportFormatError, match="not a readable HDF5 file"):
        read_model(text)
    with pytest.raises(ExportFormatError, match="no such file"):
        read_model(tmp_path / "absent.h5")
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as file:
        file["layer/0/type"] = np.array(b"input")
    with pytest.raises(ExportFormatError, match="format: missing"):
        read_model(other)


DATASET_PATHS = sorted([*layout(make_model(), METADATA), CONTENT_HASH])
MUTATIONS = ("delete", "as_float", "as_int8", "extra_axis", "nan", "poke", "string", "group")


def mutate(path: Path, name: str, kind: str, draw: int) -> bool:
    """Apply one mutation; returns False when it cannot change this dataset."""
    with h5py.File(path, "r+") as file:
        original = np.asarray(file[name][()])
        if kind == "delete":
            del file[name]
            return True
        if kind == "group":
            del file[name]
            file.create_group(name)
            return True
        if kind == "nan":
            if original.dtype.kind != "f":
                return False
            new = np.full(original.shape, np.nan, original.dtype)
        elif kind == "poke":
            if original.dtype.kind not in "iu" or original.size == 0:
                return False
            new = original.copy()
            info = np.iinfo(original.dtype)
            new.flat[draw % original.size] = np.clip(draw - 2**31, info.min, info.max)
            if np.array_equal(new, original):
                return False
        elif kind == "as_float":
            new = original.astype(np.float64) if original.dtype.kind != "S" else np.array(1.5)
        elif kind == "as_int8":
            new = np.array(3, np.int8) if original.dtype.kind == "S" else original.astype(np.int8)
            if new.dtype == original.dtype:
                return False
        elif kind == "extra_axis":
            new = original[None, ...] if original.dtype.kind != "S" else np.array([original])
        else:  # string
            if original.dtype.kind == "S":
                new = np.array(original.tobytes() + b"x")
            else:
                new = np.array(b"17")
        if new.dtype == original.dtype and new.shape == original.shape and np.array_equal(new, original):
            return False  # this mutation is a no-op here
        del file[name]
        file.create_dataset(name, data=new)
    return True


@FUZZ_SETTINGS
@given(name=st.sampled_from(DATASET_PATHS), kind=st.sampled_from(MUTATIONS), draw=st.integers(0, 2**32))
def test_fuzz_mutated_datasets_are_rejected_with_the_field_named(exported, tmp_path, name, kind, draw):
    path = mutated_copy(exported[0], tmp_path)
    if not mutate(path, name, kind, draw):
        return
    with pytest.raises(ExportFormatError) as info:
        read_model(path)
    message = str(info.value)
    assert "\n" not in message
    assert name in message or CONTENT_HASH in message or name.rsplit("/", 1)[0] in message


@FUZZ_SETTINGS
@given(
    cut=st.floats(0.0, 1.0),
    flips=st.lists(st.tuples(st.floats(0.0, 1.0), st.integers(0, 255)), min_size=1, max_size=8),
)
def test_fuzz_damaged_bytes_never_escape_as_other_errors(exported, tmp_path, cut, flips):
    data = bytearray(exported[0].read_bytes())
    for where, value in flips:
        data[int(where * (len(data) - 1))] = value
    data = data[: max(1, int(len(data) * (0.5 + cut / 2)))] if cut < 0.5 else data
    path = tmp_path / "damaged.h5"
    path.write_bytes(bytes(data))
    try:
        loaded = read_model(path)
    except ExportFormatError as error:
        assert "\n" not in str(error)
        return
    original = read_model(exported[0])  # a file that still validates must hold the exported numbers
    assert np.array_equal(loaded.model.ff.mantissa, original.model.ff.mantissa)
    assert loaded.metadata.content_sha256 == original.metadata.content_sha256


def _as_version_1(path: Path) -> None:
    """Rewrite a shared-layout export as format version 1 wrote it: a scalar weight_exp, a fresh content hash."""
    with h5py.File(path, "r+") as file:
        exponent = int(file["layer/1/weight_exp"][0])
        for name, value in (("format_version", np.array(1, np.int64)), ("layer/1/weight_exp", np.array(exponent, np.int64))):
            del file[name]
            file.create_dataset(name, data=value)
        datasets = {}
        file.visititems(lambda name, node: datasets.__setitem__(name, node[()]) if isinstance(node, h5py.Dataset) else None)
        del file[CONTENT_HASH]
        file.create_dataset(CONTENT_HASH, data=np.array(content_digest(datasets).encode()))


def test_version_1_files_still_read_and_run_the_same(tmp_path):
    """A file of format version 1 (one exponent per matrix, the diagonal inside weight_rec) reads as the
    shared layout it holds and runs exactly as the model it was written from."""
    model = make_model(8, LAYOUT_SHARED)
    path = tmp_path / "v1.h5"
    write_model(path, model, METADATA)
    _as_version_1(path)
    loaded = read_model(path)
    assert loaded.format_version == 1
    assert loaded.model.ff.exponent == model.ff.exponent and loaded.model.self_inhibition is None
    x_int = quantize_input(random_images(4, model.n_inputs, seed=3), model.input_scale, model.spec.input_bits)
    assert np.array_equal(run_reference(loaded.model, x_int).z, run_reference(model, x_int).z)


def test_a_version_1_file_cannot_hold_a_self_inhibition(tmp_path):
    path = tmp_path / "v1.h5"
    write_model(path, make_model(8, LAYOUT_SHARED), METADATA)
    _as_version_1(path)
    with h5py.File(path, "r+") as file:
        file.create_dataset("layer/1/neuron/self_weight", data=np.zeros(6, np.int16))
        file.create_dataset("layer/1/neuron/self_weight_exp", data=np.array(0, np.int64))
    with pytest.raises(ExportFormatError, match="self_weight: not part of format version 1"):
        read_model(path)
