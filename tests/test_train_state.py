"""The train state: no pickle, one atomic unit, bit-identical resume after a crash at any write."""

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import ipvae.fileio
import ipvae.train.trainer as trainer_module
from ipvae.errors import CheckpointError, TrainingDiverged
from ipvae.train.checkpoint import LEGACY_TRAIN_STATE_FILE, TRAIN_STATE_FILE, WEIGHTS_FILE, load_train_state
from ipvae.train.trainer import METRICS_FILE, train

from test_training import planted_bars, tiny_config  # noqa: F401 - the fixture is used by name

REPO_ROOT = Path(__file__).resolve().parents[1]


class _Payload:
    """A pickle that, when loaded with torch.load(weights_only=False), creates a marker file."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run_dir / WEIGHTS_FILE))


def _same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[name], b[name]) for name in a)


def test_resume_never_unpickles_a_received_train_state(planted_bars, tmp_path):
    run_dir = tmp_path / "received"
    train(tiny_config(epochs=1), run_dir, show_progress=False, max_steps=3)
    (run_dir / TRAIN_STATE_FILE).unlink()
    marker = tmp_path / "payload_ran"
    with open(run_dir / LEGACY_TRAIN_STATE_FILE, "wb") as handle:
        pickle.dump({"step": 3, "optimizer": _Payload(marker)}, handle)
    with pytest.raises(CheckpointError, match=LEGACY_TRAIN_STATE_FILE):
        train(tiny_config(epochs=1), run_dir, resume=True, show_progress=False)
    assert not marker.exists()


def test_train_state_is_plain_safetensors_with_a_json_header(planted_bars, tmp_path):
    train(tiny_config(epochs=1), tmp_path, show_progress=False, max_steps=3)
    raw = (tmp_path / TRAIN_STATE_FILE).read_bytes()
    header_length = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + header_length])  # the safetensors layout: u64 length + JSON header
    state = json.loads(header["__metadata__"]["state"])
    assert state["step"] == 3 and state["format"] == "ipvae-train-state"


@pytest.mark.parametrize("drop", ["optimizer_param_groups", "scheduler", "step"])
def test_train_state_missing_a_field_is_one_checkpoint_error(planted_bars, tmp_path, drop):
    from safetensors import safe_open
    from safetensors.torch import save_file

    train(tiny_config(epochs=1), tmp_path, show_progress=False, max_steps=3)
    path = tmp_path / TRAIN_STATE_FILE
    with safe_open(str(path), framework="pt") as handle:
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}
        header = json.loads(handle.metadata()["state"])
    del header[drop]
    save_file(tensors, str(path), metadata={"state": json.dumps(header)})
    with pytest.raises(CheckpointError, match="incomplete or damaged"):
        train(tiny_config(epochs=1), tmp_path, resume=True, show_progress=False)


def test_a_legacy_train_state_is_refused_unread_through_the_cli(tmp_path):
    """A train_state.pt (the format before the one-file state) is refused by name, never handed to torch.load."""
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(KILL_CONFIG))
    run_dir = tmp_path / "run"
    assert _ipvae_train(run_dir, config_path, "--max-steps", "2").wait() == 0
    (run_dir / TRAIN_STATE_FILE).unlink()
    torch.save({"step": 2}, run_dir / LEGACY_TRAIN_STATE_FILE)
    resumed = _ipvae_train(run_dir, config_path, "--resume")
    _, errors = resumed.communicate()
    assert resumed.returncode == CheckpointError.exit_code
    lines = errors.strip().splitlines()
    assert len(lines) == 1 and LEGACY_TRAIN_STATE_FILE in lines[0] and "not read" in lines[0], errors


@pytest.mark.parametrize("crash_at_rename", [1, 2, 3, 4, 6, 7])
def test_a_crash_at_any_checkpoint_write_resumes_bit_identically(planted_bars, tmp_path, monkeypatch, crash_at_rename):
    """Interrupt the run at the n-th atomic rename (mid-checkpoint), resume: same weights as no interruption."""
    config = tiny_config(epochs=1, checkpoint_every_steps=2)
    train(config, tmp_path / "whole", show_progress=False)
    reference = _weights(tmp_path / "whole")

    real_replace = os.replace
    calls = {"n": 0}

    def replace_then_crash(source, target):
        calls["n"] += 1
        if calls["n"] == crash_at_rename:
            raise KeyboardInterrupt  # as if killed just before this rename
        return real_replace(source, target)

    monkeypatch.setattr(ipvae.fileio.os, "replace", replace_then_crash)
    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "crashed", show_progress=False)
    monkeypatch.setattr(ipvae.fileio.os, "replace", real_replace)
    if not (tmp_path / "crashed" / TRAIN_STATE_FILE).exists():
        train(config, tmp_path / "crashed", show_progress=False)  # crashed before any checkpoint: start again
    else:
        train(config, tmp_path / "crashed", resume=True, show_progress=False)
    assert _same_weights(_weights(tmp_path / "crashed"), reference)


def _metric_lines(run_dir: Path) -> list[dict]:
    lines = [json.loads(line) for line in (run_dir / METRICS_FILE).read_text().splitlines()]
    return [{key: value for key, value in line.items() if key != "seconds"} for line in lines]


def test_a_slice_ending_mid_epoch_writes_no_partial_metrics_line(planted_bars, tmp_path):
    config = tiny_config()  # 2 epochs of 20 steps
    train(config, tmp_path / "whole", show_progress=False)
    train(config, tmp_path / "sliced", show_progress=False, max_steps=9)
    assert _metric_lines(tmp_path / "sliced") == []
    train(config, tmp_path / "sliced", show_progress=False, resume=True, max_steps=29)
    assert _metric_lines(tmp_path / "sliced") == _metric_lines(tmp_path / "whole")[:1]
    train(config, tmp_path / "sliced", show_progress=False, resume=True)
    assert _metric_lines(tmp_path / "sliced") == _metric_lines(tmp_path / "whole")
    assert len(_metric_lines(tmp_path / "whole")) == config.train.epochs


def test_an_exploding_learning_rate_is_reported_as_divergence(planted_bars, tmp_path):
    with pytest.raises(TrainingDiverged):
        train(tiny_config(learning_rate=1e30), tmp_path, show_progress=False)


KILL_CONFIG = {"model": {"n_latents": 8}, "train": {"data": "bars", "train_limit": 400, "epochs": 2, "batch_size": 20,
                                                     "t_train": 4, "seed": 5, "checkpoint_every_steps": 1}}


def _ipvae_train(out: Path, config_path: Path, *extra: str) -> subprocess.Popen:
    argv = [sys.executable, "-m", "ipvae.cli", "train", "--out", str(out), *extra]
    if "--resume" not in extra:
        argv += ["--config", str(config_path)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(argv, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_kill_9_at_random_moments_then_resume_equals_the_uninterrupted_run(tmp_path):
    """SIGKILL the real CLI mid-training (checkpoint every step), resume until done: identical weights."""
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(KILL_CONFIG))
    whole = tmp_path / "whole"
    assert _ipvae_train(whole, config_path).wait() == 0
    generator = torch.Generator().manual_seed(11)
    for attempt in range(4):
        run_dir = tmp_path / f"killed{attempt}"
        process = _ipvae_train(run_dir, config_path)
        while not (run_dir / TRAIN_STATE_FILE).exists() and process.poll() is None:
            time.sleep(0.01)
        time.sleep(float(torch.rand((), generator=generator)) * 1.5)
        process.send_signal(signal.SIGKILL)
        process.wait()
        resumed = _ipvae_train(run_dir, config_path, "--resume")
        _, errors = resumed.communicate()
        assert resumed.returncode == 0, errors
        assert _same_weights(_weights(run_dir), _weights(whole)), f"attempt {attempt}"
        assert _metric_lines(run_dir) == _metric_lines(whole)
