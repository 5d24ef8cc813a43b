"""Issue 17's cases, each reproduced and each ending in one line: crafted train states and configs, absurd
sizes from flags and files, an HDF5 memory bomb, -o over an existing file, two writers, a full disk, stale
temporaries, hostile file names, and a check of an export against a hash the user trusts."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tracemalloc
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

import ipvae.fileio
import ipvae.limits
from hostile_inputs import TINY_RUN_CONFIG, assert_one_line_refusal, run_cli
from ipvae.errors import ExportFormatError
from ipvae.export.hdf5 import CONTENT_HASH, LEAK_SHIFT, content_digest, read_model
from ipvae.fileio import LOCK_FILE, run_dir_lock
from ipvae.train.checkpoint import CONFIG_FILE, TRAIN_STATE_FILE, WEIGHTS_FILE, load_train_state

REPO_ROOT = Path(__file__).resolve().parents[1]
PRETENDED_MEMORY = 8 * 2**30  # the memory checks see this much, whatever the machine has
BOMB_PEAK_LIMIT = 64 * 2**20  # bytes a refused memory bomb may allocate (tracemalloc peak)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A trained tiny run (2 steps of 10 per epoch, a train state) and its export."""
    root = tmp_path_factory.mktemp("tiny")
    config_path = root / "config.json"
    config_path.write_text(json.dumps(TINY_RUN_CONFIG))
    from ipvae.cli import main

    assert main(["train", "--out", str(root / "run"), "--config", str(config_path), "--max-steps", "2"]) == 0
    assert main(["export", str(root / "run"), "-o", str(root / "model.h5"), "--calibration", "20"]) == 0
    return {"root": root, "run": root / "run", "export": root / "model.h5", "config": config_path}


@pytest.fixture
def pretend_memory(monkeypatch):
    monkeypatch.setattr(ipvae.limits, "available_memory", lambda: PRETENDED_MEMORY)


def _read_state(path: Path) -> tuple[dict, dict]:
    with safe_open(str(path), framework="pt") as handle:
        return {key: handle.get_tensor(key) for key in handle.keys()}, json.loads(handle.metadata()["state"])


def _set(mapping: dict, dotted: str, value) -> None:
    *parents, last = dotted.split(".")
    for key in parents:
        mapping = mapping[int(key)] if isinstance(mapping, list) else mapping[key]
    mapping[last] = value


def _weights_as(dtype):
    def mutate(tensors, header):
        for key in [key for key in tensors if key.startswith("model/")]:
            tensors[key] = tensors[key].to(dtype)
    return mutate


TRAIN_STATE_CASES = {
    "lr is a string": lambda t, h: _set(h, "optimizer_param_groups.0.lr", "abc"),
    "scheduler.optimizer": lambda t, h: _set(h, "scheduler.optimizer", 5),
    "exp_avg of the wrong shape": lambda t, h: t.__setitem__("optimizer/0/exp_avg", torch.zeros(3, 3)),
    "epoch_lines is a string": lambda t, h: _set(h, "progress.epoch_lines", "abc"),
    "step 10**30": lambda t, h: _set(h, "step", 10**30),
    "step beyond the run": lambda t, h: _set(h, "step", 10**6),
    "scheduler counter disagrees": lambda t, h: _set(h, "scheduler.last_epoch", 1),
    "int32 weights": _weights_as(torch.int32),
    "float16 weights": _weights_as(torch.float16),
    "int64 weights": _weights_as(torch.int64),
    "bool weights": _weights_as(torch.bool),
    "generator state of the wrong size": lambda t, h: t.__setitem__("sampling_generator", torch.zeros(3, dtype=torch.uint8)),
    "an extra tensor": lambda t, h: t.__setitem__("optimizer/99/exp_avg", torch.zeros(1)),
    "param group lists an unknown parameter": lambda t, h: _set(h, "optimizer_param_groups.0.params", [0, 1, 99]),
    "JSON nested 100000 deep": "[" * 100_000 + "]" * 100_000,
}


@pytest.mark.parametrize("case", list(TRAIN_STATE_CASES))
def test_a_crafted_train_state_is_refused_in_one_line(tiny, tmp_path, capsys, case):
    run_dir = tmp_path / "run"
    shutil.copytree(tiny["run"], run_dir)
    tensors, header = _read_state(run_dir / TRAIN_STATE_FILE)
    mutation = TRAIN_STATE_CASES[case]
    raw_header = mutation if isinstance(mutation, str) else None
    if raw_header is None:
        mutation(tensors, header)
    save_file(tensors, str(run_dir / TRAIN_STATE_FILE), metadata={"state": raw_header or json.dumps(header)})
    before = (run_dir / WEIGHTS_FILE).read_bytes()
    code, err = run_cli(["train", "--out", str(run_dir), "--resume"], capsys)
    assert_one_line_refusal(code, err)
    assert (run_dir / WEIGHTS_FILE).read_bytes() == before  # nothing trained, nothing written


def test_an_untouched_train_state_resumes(tiny, tmp_path, capsys):
    """The validation's own control: the same copy, unmutated, resumes to the end of the run."""
    run_dir = tmp_path / "run"
    shutil.copytree(tiny["run"], run_dir)
    code, _ = run_cli(["train", "--out", str(run_dir), "--resume", "--max-steps", "4"], capsys)
    assert code == 0 and load_train_state(run_dir).step == 4


CONFIG_CASES = {
    "n_latents 10**12": ("model.n_latents", 10**12),
    "n_inputs 10**9": ("model.n_inputs", 10**9),
    "max_spike_count 10**9": ("model.max_spike_count", 10**9),
    "t_train 10**9": ("train.t_train", 10**9),
    "batch_size 10**12": ("train.batch_size", 10**12),
    "epochs a string": ("train.epochs", "many"),
    "data 10k characters": ("train.data", "\x1b[31m" + "a" * 10_000),
}


@pytest.mark.parametrize("command", ["eval", "resume", "export"])
@pytest.mark.parametrize("case", list(CONFIG_CASES))
def test_a_crafted_config_json_is_refused_in_one_line(tiny, tmp_path, capsys, case, command):
    run_dir = tmp_path / "run"
    shutil.copytree(tiny["run"], run_dir)
    config = json.loads((run_dir / CONFIG_FILE).read_text())
    field, value = CONFIG_CASES[case]
    _set(config, field, value)
    (run_dir / CONFIG_FILE).write_text(json.dumps(config))
    argv = {"eval": ["eval", str(run_dir), "--t-test", "4", "--limit", "5", "--probe-train", "0"],
            "resume": ["train", "--out", str(run_dir), "--resume"],
            "export": ["export", str(run_dir), "-o", str(tmp_path / "m.h5")]}[command]
    assert_one_line_refusal(*run_cli(argv, capsys))


def test_a_deeply_nested_config_json_is_refused_in_one_line(tiny, tmp_path, capsys):
    run_dir = tmp_path / "run"
    shutil.copytree(tiny["run"], run_dir)
    (run_dir / CONFIG_FILE).write_text('{"model": ' + "[" * 100_000 + "]" * 100_000 + "}")
    line = assert_one_line_refusal(*run_cli(["eval", str(run_dir)], capsys))
    assert "deep" in line


SIZE_CASES = [
    ["run", "{h5}", "--backend", "reference", "-n", "1", "--steps", "1000000000", "--data", "bars", "--out", "{tmp}/o"],
    ["run", "{h5}", "--backend", "reference", "-n", "1000000000000", "--steps", "4", "--data", "bars", "--out", "{tmp}/o"],
    ["run", "{h5}", "--backend", "reference", "--start", "1000000000000", "--data", "bars", "--out", "{tmp}/o"],
    ["parity", "{h5}", "-n", "1", "--steps", "1000000000", "--data", "bars"],
    ["eval", "{run}", "--t-test", "1000000000", "--limit", "1", "--probe-train", "0"],
    ["eval", "{run}", "--t-test", "4", "--limit", "1000000000000", "--probe-train", "0"],
    ["eval", "{run}", "--t-test", "4", "--curves", "1000000000", "--limit", "1", "--probe-train", "0"],
    ["eval", "{run}", "--t-test", "4", "--limit", "2", "--probe-train", "1000000000000"],
    ["export", "{run}", "-o", "{tmp}/m.h5", "--calibration", "1000000000000"],
    ["train", "--out", "{tmp}/t", "--data", "bars", "--n-latents", "1000000000"],
    ["train", "--out", "{tmp}/t", "--data", "bars", "--t-train", "1000000000", "--n-latents", "4"],
    ["train", "--out", "{tmp}/t", "--data", "bars", "--t-train", "100000", "--batch-size", "100000", "--n-latents", "4"],
    ["train", "--out", "{tmp}/t", "--data", "bars", "--batch-size", "1000000000000"],
    ["train", "--out", "{tmp}/t", "--data", "bars", "--train-limit", "1000000000"],
]


@pytest.mark.parametrize("argv", SIZE_CASES, ids=lambda argv: " ".join(argv[:1] + argv[2:6]))
def test_absurd_sizes_are_refused_before_any_allocation(tiny, tmp_path, capsys, pretend_memory, argv):
    tracemalloc.start()
    try:
        code, err = run_cli([part.format(h5=tiny["export"], run=tiny["run"], tmp=tmp_path) for part in argv], capsys)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    line = assert_one_line_refusal(code, err)
    assert "needs at least" in line or "must be in" in line, line
    assert peak < BOMB_PEAK_LIMIT, peak
    assert not (tmp_path / "t" / TRAIN_STATE_FILE).exists()


def test_the_shipped_model_sized_requests_are_not_refused():
    """The estimates are lower bounds: the shipped model's usual commands fit in 2 GiB (the checks pass)."""
    budget = 2 * 2**30
    k, m = 512, 784
    ipvae.limits.check_memory(ipvae.limits.training_bytes(60_000, m, k, 100, 16), "train", budget)
    ipvae.limits.check_memory(ipvae.limits.evaluation_bytes(10_000, 1000, k, m, 500), "eval", budget)
    ipvae.limits.check_memory(ipvae.limits.inference_record_bytes(32, 64, k, m, record_u=True, backends=2, lava=True),
                              "parity", budget)


def _bomb(source: Path, target: Path, edits: dict[str, tuple[tuple, str]], shapes: dict[str, list] | None = None) -> Path:
    """A copy of an export whose datasets ``edits`` are replaced by chunked fill-value datasets of the given
    (shape, dtype): a few kB on disk, any size once read; the content hash recomputed as an attacker would."""
    shutil.copyfile(source, target)
    with h5py.File(target, "r+") as file:
        for name, values in (shapes or {}).items():
            del file[name]
            file.create_dataset(name, data=np.array(values, dtype="<i8"))
        for name, (shape, dtype) in edits.items():
            del file[name]
            chunked = {"chunks": tuple(min(s, 1024) for s in shape), "compression": "gzip"} if shape else {}
            file.create_dataset(name, shape=shape, dtype=dtype, **chunked)  # never written: fill values
        datasets = {}
        file.visititems(lambda name, node: datasets.__setitem__(name, node) if isinstance(node, h5py.Dataset) else None)
        small = {name: node[()] for name, node in datasets.items() if node.nbytes < 2**20}
        del file[CONTENT_HASH]
        file.create_dataset(CONTENT_HASH, data=np.array(content_digest(small).encode(), dtype=np.bytes_))
    return target


@pytest.mark.parametrize("edits, shapes", [
    ({"layer/0/input_bits": ((2**31,), "<i8")}, None),  # the 16 GiB bomb
    ({"layer/1/weight": ((2**16, 2**24), "<i2")}, {"layer/0/shape": [2**24], "layer/1/shape": [2**16]}),
    ({"metadata/source": ((), h5py.string_dtype("ascii", 2**30))}, None),
], ids=["int64-2^31", "weight-2TiB", "string-1GiB"])
def test_an_hdf5_memory_bomb_is_refused_before_it_is_read(tiny, tmp_path, capsys, pretend_memory, edits, shapes):
    bomb = _bomb(tiny["export"], tmp_path / "bomb.h5", edits, shapes)
    assert bomb.stat().st_size < 4 * 2**20
    tracemalloc.start()
    try:
        code, err = run_cli(["inspect", str(bomb)], capsys)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert_one_line_refusal(code, err)
    assert peak < BOMB_PEAK_LIMIT, peak


def test_export_does_not_replace_an_existing_file_without_force(tiny, tmp_path, capsys):
    victim = tmp_path / "notes.txt"
    victim.write_text("precious")
    line = assert_one_line_refusal(*run_cli(["export", str(tiny["run"]), "-o", str(victim)], capsys))
    assert "--force" in line and victim.read_text() == "precious"
    assert run_cli(["export", str(tiny["run"]), "-o", str(victim), "--force", "--calibration", "20"], capsys)[0] == 0
    read_model(victim)


def test_one_writer_per_run_directory_and_a_killed_holder_leaves_no_lock(tiny, tmp_path, capsys):
    out = tmp_path / "run"
    with run_dir_lock(out):  # another ipvae train holds the directory
        line = assert_one_line_refusal(*run_cli(["train", "--out", str(out), "--config", str(tiny["config"]),
                                                 "--max-steps", "1"], capsys))
        assert "another ipvae process" in line
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from ipvae.fileio import run_dir_lock\n"
                               f"with run_dir_lock({str(out)!r}):\n    print('held', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    assert_one_line_refusal(*run_cli(["train", "--out", str(out), "--config", str(tiny["config"]), "--max-steps", "1"], capsys))
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert (out / LOCK_FILE).exists()  # the file stays; the kernel released the lock with the process
    assert run_cli(["train", "--out", str(out), "--config", str(tiny["config"]), "--max-steps", "1"], capsys)[0] == 0


def test_resume_removes_stale_temporaries_and_keeps_other_files(tiny, tmp_path, capsys):
    run_dir = tmp_path / "run"
    shutil.copytree(tiny["run"], run_dir)
    stale = [run_dir / ".train_state.safetensors.k1ll3d.tmp", run_dir / ".model.safetensors.x9y8z7.tmp"]
    for path in stale:
        path.write_bytes(b"half written")
    kept = run_dir / ".notes.tmp"  # not an atomic_path temporary (.<name>.<random>.tmp)
    kept.write_text("mine")
    assert run_cli(["train", "--out", str(run_dir), "--resume", "--max-steps", "3"], capsys)[0] == 0
    assert not any(path.exists() for path in stale) and kept.read_text() == "mine"


def test_a_failing_disk_is_one_line_and_leaves_nothing_half_written(tiny, tmp_path, capsys, monkeypatch):
    import errno

    def full_disk(descriptor):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ipvae.fileio.os, "fsync", full_disk)
    out = tmp_path / "run"
    line = assert_one_line_refusal(*run_cli(["train", "--out", str(out), "--config", str(tiny["config"]),
                                             "--max-steps", "2"], capsys))
    assert "disk is full" in line
    assert not (out / TRAIN_STATE_FILE).exists() and not list(out.glob(".*.tmp"))
    line = assert_one_line_refusal(*run_cli(["export", str(tiny["run"]), "-o", str(tmp_path / "m.h5")], capsys))
    assert "disk is full" in line and not (tmp_path / "m.h5").exists() and not list(tmp_path.glob(".*.tmp"))


def _can_mount_a_small_disk() -> bool:
    if shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode == 0


@pytest.mark.slow
@pytest.mark.skipif(not _can_mount_a_small_disk(), reason="needs unshare -rm to mount a small tmpfs")
def test_a_really_full_disk_through_the_console_script(tiny, tmp_path):
    """A 8 kB tmpfs: config.json fits, the train state does not; export does not fit either."""
    disk = tmp_path / "disk"
    disk.mkdir()
    script = (f"mount -t tmpfs -o size=8k tmpfs {disk} && "
              f"{sys.executable} -m ipvae.cli train --out {disk}/run --config {tiny['config']} --max-steps 2; echo rc=$?; "
              f"{sys.executable} -m ipvae.cli export {tiny['run']} -o {disk}/m.h5; echo rc=$?; ls -A {disk} {disk}/run")
    result = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, cwd=REPO_ROOT,
                            env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=120)
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 2 and all("disk is full" in line and len(line) <= 300 for line in errors), result.stderr
    assert "rc=0" not in result.stdout
    listing = result.stdout.split()
    assert CONFIG_FILE in listing and TRAIN_STATE_FILE not in listing and "m.h5" not in listing
    assert not any(name.endswith(".tmp") for name in listing), result.stdout


@pytest.mark.parametrize("name", ["a" * 10_000 + ".h5", "x\x1b[31mred\nsecond\x07.h5", "\u202egnp.h5"])
def test_hostile_file_names_are_shortened_and_escaped(tmp_path, capsys, name):
    line = assert_one_line_refusal(*run_cli(["inspect", str(tmp_path / name)], capsys))
    assert "\x1b" not in line and "\u202e" not in line


def test_an_unknown_flag_with_control_characters_is_escaped(capsys):
    line = assert_one_line_refusal(*run_cli(["inspect", "m.h5", "--bogus\x1b[2J" + "z" * 5000], capsys))
    assert "\\x1b" in line


def _resigned_without_leak(source: Path, target: Path) -> Path:
    """What the issue did: delete neuron/leak_shift and store a new content hash (a valid no-leak model)."""
    shutil.copyfile(source, target)
    with h5py.File(target, "r+") as file:
        if LEAK_SHIFT in file:
            del file[LEAK_SHIFT]
        file[LEAK_SHIFT] = np.int32(3)  # a leak the source did not have: the dynamics change
        datasets = {}
        file.visititems(lambda name, node: datasets.__setitem__(name, node[()]) if isinstance(node, h5py.Dataset) else None)
        del file[CONTENT_HASH]
        file.create_dataset(CONTENT_HASH, data=np.array(content_digest(datasets).encode(), dtype=np.bytes_))
    return target


def test_the_stored_hash_is_integrity_only_and_a_trusted_hash_catches_an_edit(tiny, tmp_path, capsys):
    trusted = read_model(tiny["export"]).metadata.content_sha256
    edited = _resigned_without_leak(tiny["export"], tmp_path / "edited.h5")
    read_model(edited)  # the stored hash was recomputed: the file reads as valid (what the hash cannot catch)
    assert run_cli(["inspect", str(tiny["export"]), "--expect-sha256", trusted], capsys)[0] == 0
    line = assert_one_line_refusal(*run_cli(["inspect", str(edited), "--expect-sha256", trusted], capsys))
    assert "not the file you trust" in line
    assert_one_line_refusal(*run_cli(["run", str(edited), "--backend", "reference", "-n", "1", "--data", "bars",
                                      "--out", str(tmp_path / "o"), "--expect-sha256", trusted], capsys))
    with pytest.raises(ExportFormatError):
        read_model(edited, expected_sha256=trusted)
    assert_one_line_refusal(*run_cli(["inspect", str(tiny["export"]), "--expect-sha256", "xyz"], capsys))
