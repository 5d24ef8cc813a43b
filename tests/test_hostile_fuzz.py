"""Fuzzers in the suite: a Hypothesis-driven HDF5 mutator and a CLI bad-input battery.

Default suite: a few hundred cases in well under a minute (HDF5_EXAMPLES mutants; every single-fault
command line of the battery). ``-m slow``: thousands (HDF5_SLOW_EXAMPLES mutants; random multi-fault lines).
Oracles: the reader returns a model or raises ExportFormatError, nothing else, allocating less than a bound
and in bounded time; every bad command line ends in one printable line of at most 300 characters and a
non-zero exit.
"""

from __future__ import annotations

import json
import pickle
import shutil
import time
import tracemalloc
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hostile_inputs import TINY_RUN_CONFIG, assert_one_line_refusal, run_cli
from ipvae.errors import ExportFormatError
from ipvae.export.hdf5 import CONTENT_HASH, content_digest, read_model

HDF5_EXAMPLES, HDF5_SLOW_EXAMPLES = 150, 3000
CLI_SLOW_EXAMPLES = 2000
PEAK_LIMIT = 64 * 2**20  # bytes a mutant may make the reader allocate (the tiny export itself is ~60 kB)
SECONDS_LIMIT = 5.0  # per mutant (a read of the valid file takes ~0.02 s)
HUGE_DIMENSION = 2**31


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    config_path = root / "config.json"
    config_path.write_text(json.dumps(TINY_RUN_CONFIG))
    from ipvae.cli import main

    assert main(["train", "--out", str(root / "run"), "--config", str(config_path), "--max-steps", "1"]) == 0
    assert main(["export", str(root / "run"), "-o", str(root / "model.h5"), "--calibration", "20"]) == 0
    with h5py.File(root / "model.h5", "r") as file:
        names = []
        file.visititems(lambda name, node: names.append(name) if isinstance(node, h5py.Dataset) else None)
    return {"root": root, "run": root / "run", "export": root / "model.h5", "config": config_path, "names": sorted(names)}


# ------------------------------------------------------------------------------------------ HDF5 mutator

MUTATIONS = ("delete", "group", "dtype", "shape", "huge_shape", "value", "nan", "string", "bytes")
DTYPES = ("<i1", "<i2", "<i4", "<i8", "<u4", "<u8", "<f2", "<f4", "<f8", "|b1", "S8")


def _mutate(file: h5py.File, name: str, kind: str, draw: int) -> None:
    node = file[name]
    if not isinstance(node, h5py.Dataset):  # an earlier edit made it a group
        return
    value = node[()] if node.nbytes < 2**20 else np.zeros(1, dtype=node.dtype)  # an earlier edit made it huge
    rng = np.random.default_rng(draw)
    del file[name]
    if kind == "delete":
        return
    if kind == "group":
        file.create_group(name)
    elif kind == "dtype":
        new_dtype = np.dtype(DTYPES[draw % len(DTYPES)])
        try:
            converted = np.asarray(value).astype(new_dtype)
        except (ValueError, TypeError, OverflowError):  # a string to a number: zeros of that type
            converted = np.zeros(np.shape(value), dtype=new_dtype)
        file.create_dataset(name, data=converted)
    elif kind == "shape":
        flat = np.atleast_1d(np.asarray(value)).reshape(-1)
        shape = tuple(int(s) for s in rng.integers(0, 5, size=draw % 3 + 1))
        file.create_dataset(name, data=np.resize(flat, shape).astype(flat.dtype))
    elif kind == "huge_shape":  # a few bytes on disk, 2**31 elements or more once read
        dtype = np.asarray(value).dtype if np.asarray(value).dtype.kind != "S" else np.dtype("<i8")
        shape = (HUGE_DIMENSION,) if draw % 2 else (2**16, 2**16)
        file.create_dataset(name, shape=shape, dtype=dtype, chunks=(1,) * len(shape), compression="gzip")
    elif kind == "value":
        array = np.asarray(value)
        if array.dtype.kind in "iu":
            info = np.iinfo(array.dtype)
            extreme = (info.min, info.max, 0, -1 if info.min < 0 else 1)[draw % 4]
            file.create_dataset(name, data=np.full(array.shape, extreme, dtype=array.dtype))
        else:
            file.create_dataset(name, data=array)
    elif kind == "nan":
        array = np.asarray(value)
        replaced = np.full(array.shape, (np.nan, np.inf, -np.inf, 1e308)[draw % 4]) if array.dtype.kind == "f" else array
        file.create_dataset(name, data=replaced.astype(array.dtype) if array.dtype.kind == "f" else replaced)
    elif kind == "string":
        text = ("\x1b[31m" + "A" * (draw % 9000), "", "\udcff".encode("utf-8", "surrogatepass").decode("latin1"))[draw % 3]
        file.create_dataset(name, data=np.bytes_(text.encode("utf-8", "surrogatepass")))
    elif kind == "bytes":
        file.create_dataset(name, data=np.frombuffer(rng.bytes(8 * (draw % 64 + 1)), dtype=np.uint8))


def _resign(file: h5py.File) -> None:
    datasets = {}
    file.visititems(lambda name, node: datasets.__setitem__(name, node[()])
                    if isinstance(node, h5py.Dataset) and node.nbytes < 2**20 else None)
    if CONTENT_HASH in file:
        del file[CONTENT_HASH]
    file.create_dataset(CONTENT_HASH, data=np.bytes_(content_digest(datasets).encode()))


def _read_mutant(source: Path, target: Path, edits: list[tuple[str, str, int]], resign: bool) -> None:
    shutil.copyfile(source, target)
    with h5py.File(target, "r+") as file:
        for name, kind, draw in edits:
            if name in file:
                _mutate(file, name, kind, draw)
        if resign:
            _resign(file)
    tracemalloc.start()
    started = time.perf_counter()
    try:
        read_model(target)
    except ExportFormatError as error:
        assert "\n" not in str(error) and len(str(error)) < 1000, str(error)[:300]
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert peak < PEAK_LIMIT, (edits, peak)
    assert time.perf_counter() - started < SECONDS_LIMIT, edits


def _edits(names):
    return st.lists(st.tuples(st.sampled_from(names), st.sampled_from(MUTATIONS), st.integers(0, 2**16)),
                    min_size=1, max_size=3)


def _mutator_test(examples: int):
    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck))
    @given(data=st.data(), resign=st.booleans())
    def check(tiny, tmp_path, data, resign):
        edits = data.draw(_edits(tiny["names"]))
        _read_mutant(tiny["export"], tmp_path / "mutant.h5", edits, resign)
    return check


test_hdf5_mutants_are_read_or_refused_in_one_line = _mutator_test(HDF5_EXAMPLES)
test_hdf5_mutants_many = pytest.mark.slow(_mutator_test(HDF5_SLOW_EXAMPLES))


def test_the_mutator_reaches_the_deep_checks(tiny, tmp_path):
    """Control: a re-signed mutation of the weights is caught by the weight checks, not by the hash."""
    target = tmp_path / "m.h5"
    with pytest.raises(ExportFormatError, match="layer/1/weight: shape"):
        _read_mutant_raising(tiny["export"], target, [("layer/1/weight", "shape", 1)])
    with pytest.raises(ExportFormatError, match="layer/1/weight: shape"):
        _read_mutant_raising(tiny["export"], target, [("layer/1/weight", "huge_shape", 1)])


def _read_mutant_raising(source: Path, target: Path, edits) -> None:
    shutil.copyfile(source, target)
    with h5py.File(target, "r+") as file:
        for name, kind, draw in edits:
            _mutate(file, name, kind, draw)
        _resign(file)
    read_model(target)


# ------------------------------------------------------------------------------------------- CLI battery

BIG, HUGE_TEXT = "1000000000000", "9" * 5000
GARBAGE = ("abc", "1e3", "", "0x10", "\x1b[31m5", HUGE_TEXT, "-1")
POSITIVE_FAULTS = GARBAGE + ("0", BIG)
NON_NEGATIVE_FAULTS = GARBAGE + (BIG,)
# command -> (valid argv with {placeholders}, {flag: its faults})
COMMANDS = {
    "train": (["train", "--out", "{tmp}/t", "--data", "bars", "--train-limit", "40", "--batch-size", "20",
               "--t-train", "2", "--n-latents", "4", "--epochs", "1", "--max-spike-count", "3"],
              {flag: POSITIVE_FAULTS for flag in ("--train-limit", "--batch-size", "--t-train", "--n-latents",
                                                  "--epochs", "--max-spike-count")}),
    "eval": (["eval", "{run}", "--t-test", "4", "--limit", "5", "--probe-train", "0", "--curves", "4"],
             {"--t-test": POSITIVE_FAULTS, "--limit": POSITIVE_FAULTS, "--curves": POSITIVE_FAULTS,
              "--probe-train": NON_NEGATIVE_FAULTS}),
    "export": (["export", "{run}", "-o", "{tmp}/m.h5", "--calibration", "20", "--n-steps", "4"],
               {"--calibration": NON_NEGATIVE_FAULTS, "--n-steps": POSITIVE_FAULTS}),
    "inspect": (["inspect", "{h5}"], {}),
    "run": (["run", "{h5}", "--backend", "reference", "-n", "2", "--steps", "3", "--data", "bars", "--out", "{tmp}/o",
             "--no-figures"],
            {"-n": POSITIVE_FAULTS, "--steps": POSITIVE_FAULTS, "--start": NON_NEGATIVE_FAULTS}),
    "parity": (["parity", "{h5}", "-n", "1", "--steps", "2", "--data", "bars"],
               {"-n": POSITIVE_FAULTS, "--steps": POSITIVE_FAULTS, "--start": NON_NEGATIVE_FAULTS}),
    "demo": (["demo", "{run}", "--out", "{tmp}/d"], {"--lava-steps": GARBAGE + ("0",), "--eval-images": GARBAGE + ("0",)}),
}
POSITIONAL = {"eval": "{run}", "export": "{run}", "inspect": "{h5}", "run": "{h5}", "parity": "{h5}", "demo": "{run}"}
PATH_FAULTS = ("missing", "folder", "long name", "control name", "text file", "empty file", "random bytes", "pickle",
               "dev null")
UNKNOWN_FLAGS = ("--bogus", "--\x1b[2J", "-" + "x" * 5000)


def _single_faults() -> list[tuple[str, str, str]]:
    cases = []
    for command, (_, flags) in COMMANDS.items():
        cases += [(command, flag, value) for flag, values in flags.items() for value in values]
        if command in POSITIONAL:
            cases += [(command, "PATH", fault) for fault in PATH_FAULTS]
        cases += [(command, "UNKNOWN", flag) for flag in UNKNOWN_FLAGS]
    return cases


def _hostile_path(fault: str, tmp_path: Path) -> str:
    if fault == "missing":
        return str(tmp_path / "no_such_thing")
    if fault == "folder":
        return str(tmp_path)
    if fault == "long name":
        return str(tmp_path / ("n" * 10_000))
    if fault == "control name":
        return str(tmp_path / "a\x1b[31m\nb\x07")
    if fault == "dev null":
        return "/dev/null"
    path = tmp_path / f"file_{fault.replace(' ', '_')}"
    payloads = {"text file": b"hello\n", "empty file": b"", "random bytes": np.random.default_rng(1).bytes(4096),
                "pickle": pickle.dumps({"model": [1, 2, 3]})}
    path.write_bytes(payloads[fault])
    return str(path)


def _argv(command: str, faults: list[tuple[str, str]], tiny, tmp_path: Path) -> list[str]:
    base, _ = COMMANDS[command]
    argv = [part.format(tmp=tmp_path, run=tiny["run"], h5=tiny["export"]) for part in base]
    for flag, value in faults:
        if flag == "PATH":
            argv[1] = _hostile_path(value, tmp_path)
        elif flag == "UNKNOWN":
            argv.append(value)
        elif flag in argv:
            argv[argv.index(flag) + 1] = value
        else:
            argv += [flag, value]
    return argv


@pytest.mark.parametrize("command, flag, value", _single_faults(),
                         ids=lambda v: v if len(v) < 20 and v.isprintable() else f"<{len(v)} chars>")
def test_cli_single_faults_are_refused_in_one_line(tiny, tmp_path, capsys, command, flag, value):
    code, err = run_cli(_argv(command, [(flag, value)], tiny, tmp_path), capsys)
    assert_one_line_refusal(code, err)
    assert not (tmp_path / "t" / "train_state.safetensors").exists() and not (tmp_path / "m.h5").exists()


@pytest.mark.slow
@settings(max_examples=CLI_SLOW_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_cli_random_multi_faults_are_refused_in_one_line(tiny, tmp_path, capsys, data):
    faults = _single_faults()
    command = data.draw(st.sampled_from(sorted(COMMANDS)))
    own = [(flag, value) for name, flag, value in faults if name == command]
    chosen = data.draw(st.lists(st.sampled_from(own), min_size=1, max_size=3))
    code, err = run_cli(_argv(command, chosen, tiny, tmp_path), capsys)
    assert_one_line_refusal(code, err)
