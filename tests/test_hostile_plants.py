"""A pickle and a TorchScript archive planted as every file the toolkit reads: nothing runs, one line, non-zero.

Both payloads create a marker file when loaded the usual way (the first two tests prove it, so the rest can
fail); planted as a train state (the current and the legacy name), weights, config.json, an export, a
--config file and --data inputs (.npy, .npz, .png), every command refuses them in one line and the marker
never appears.
"""

from __future__ import annotations

import json
import pickle
import shutil
import warnings
from pathlib import Path

import pytest
import torch

from hostile_inputs import TINY_RUN_CONFIG, assert_one_line_refusal, pickle_payload, run_cli, torchscript_payload
from ipvae.train.checkpoint import CONFIG_FILE, LEGACY_TRAIN_STATE_FILE, TRAIN_STATE_FILE, WEIGHTS_FILE

PAYLOADS = ("pickle", "torchscript")


@pytest.fixture(scope="module")
def artefacts(tmp_path_factory):
    """A tiny trained run, its export, and both payloads (bytes), each creating its own marker when loaded."""
    root = tmp_path_factory.mktemp("hostile")
    config_path = root / "config.json"
    config_path.write_text(json.dumps(TINY_RUN_CONFIG))
    run_dir = root / "run"
    from ipvae.cli import main

    assert main(["train", "--out", str(run_dir), "--config", str(config_path), "--max-steps", "2"]) == 0
    assert main(["export", str(run_dir), "-o", str(root / "model.h5"), "--calibration", "20"]) == 0
    markers = {name: root / f"ran_{name}" for name in PAYLOADS}
    payloads = {"pickle": pickle_payload(markers["pickle"]),
                "torchscript": torchscript_payload(markers["torchscript"], root)}
    return {"root": root, "run": run_dir, "export": root / "model.h5", "markers": markers, "payloads": payloads}


def test_the_pickle_payload_runs_code_when_unpickled(artefacts):
    marker = artefacts["markers"]["pickle"]
    pickle.loads(artefacts["payloads"]["pickle"])
    assert marker.exists()
    marker.unlink()


def test_the_torchscript_payload_runs_code_under_torch_load_weights_only(artefacts, tmp_path):
    """The defect of torch < 2.6 the toolkit must never meet: weights_only=True still runs this archive."""
    marker = artefacts["markers"]["torchscript"]
    path = tmp_path / "state.pt"
    path.write_bytes(artefacts["payloads"]["torchscript"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.load(path, weights_only=True)
    assert marker.exists()
    marker.unlink()


def _planted_run(artefacts, tmp_path: Path, file_name: str, payload: str, remove: str | None = None) -> Path:
    run_dir = tmp_path / "run"
    shutil.copytree(artefacts["run"], run_dir)
    if remove:
        (run_dir / remove).unlink()
    (run_dir / file_name).write_bytes(artefacts["payloads"][payload])
    return run_dir


RUN_DIR_PLANTS = [
    (TRAIN_STATE_FILE, None, ["train", "--out", "{run}", "--resume"]),
    (LEGACY_TRAIN_STATE_FILE, TRAIN_STATE_FILE, ["train", "--out", "{run}", "--resume"]),
    (WEIGHTS_FILE, None, ["eval", "{run}", "--t-test", "4", "--limit", "5", "--probe-train", "0"]),
    (WEIGHTS_FILE, None, ["export", "{run}", "-o", "{tmp}/out.h5", "--calibration", "5"]),
    (CONFIG_FILE, None, ["eval", "{run}", "--t-test", "4", "--limit", "5", "--probe-train", "0"]),
    (CONFIG_FILE, None, ["train", "--out", "{run}", "--resume"]),
    (CONFIG_FILE, None, ["export", "{run}", "-o", "{tmp}/out.h5"]),
]


@pytest.mark.parametrize("payload", PAYLOADS)
@pytest.mark.parametrize("file_name, removed, argv", RUN_DIR_PLANTS, ids=lambda v: v if isinstance(v, str) else None)
def test_planted_in_a_run_directory(artefacts, tmp_path, capsys, payload, file_name, removed, argv):
    run_dir = _planted_run(artefacts, tmp_path, file_name, payload, remove=removed)
    code, err = run_cli([part.format(run=run_dir, tmp=tmp_path) for part in argv], capsys)
    assert_one_line_refusal(code, err)
    assert not artefacts["markers"][payload].exists()


@pytest.mark.parametrize("payload", PAYLOADS)
@pytest.mark.parametrize("argv", [
    ["inspect", "{file}"],
    ["run", "{file}", "--backend", "reference", "-n", "2", "--data", "bars", "--out", "{tmp}/o", "--no-figures"],
    ["parity", "{file}", "-n", "1", "--steps", "2", "--data", "bars"],
], ids=lambda argv: argv[0])
def test_planted_as_the_export(artefacts, tmp_path, capsys, payload, argv):
    planted = tmp_path / "model.h5"
    planted.write_bytes(artefacts["payloads"][payload])
    code, err = run_cli([part.format(file=planted, tmp=tmp_path) for part in argv], capsys)
    assert_one_line_refusal(code, err)
    assert not artefacts["markers"][payload].exists()


@pytest.mark.parametrize("payload", PAYLOADS)
@pytest.mark.parametrize("suffix", [".npy", ".npz", ".png"])
@pytest.mark.parametrize("command", ["run", "eval"])
def test_planted_as_data_inputs(artefacts, tmp_path, capsys, payload, suffix, command):
    planted = tmp_path / f"inputs{suffix}"
    planted.write_bytes(artefacts["payloads"][payload])
    if command == "run":
        argv = ["run", str(artefacts["export"]), "--backend", "reference", "--data", str(planted), "--out",
                str(tmp_path / "o"), "--no-figures"]
    else:
        argv = ["eval", str(artefacts["run"]), "--t-test", "4", "--data", str(planted)]
    code, err = run_cli(argv, capsys)
    assert_one_line_refusal(code, err)
    assert not artefacts["markers"][payload].exists()


@pytest.mark.parametrize("payload", PAYLOADS)
def test_planted_as_a_train_config_file(artefacts, tmp_path, capsys, payload):
    planted = tmp_path / "config.json"
    planted.write_bytes(artefacts["payloads"][payload])
    code, err = run_cli(["train", "--out", str(tmp_path / "new"), "--config", str(planted)], capsys)
    assert_one_line_refusal(code, err)
    assert not artefacts["markers"][payload].exists()
    assert not (tmp_path / "new" / TRAIN_STATE_FILE).exists()
