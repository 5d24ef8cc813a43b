"""Run directories: ``model.safetensors`` + ``config.json`` (+ ``train_state.pt`` while training).

Every file is written atomically (``ipvae.fileio``), so an interrupted save keeps the previous good
checkpoint. Loading validates what it reads and raises ``CheckpointError`` with one clear sentence
(missing file, corrupt file, tensors that do not match the config, NaN/Inf weights).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ipvae.errors import CheckpointError
from ipvae.fileio import atomic_path, write_json
from train.config import RunConfig
from train.registry import Model, build_model

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
TRAIN_STATE_FILE = "train_state.pt"


@dataclass(frozen=True)
class LoadedRun:
    config: RunConfig
    model: Model
    run_dir: Path


def save_run(run_dir: str | Path, config: RunConfig, model: Model) -> None:
    run_dir = Path(run_dir)
    tensors = {name: tensor.detach().contiguous().cpu() for name, tensor in model.state_dict().items()}
    with atomic_path(run_dir / WEIGHTS_FILE) as temporary:
        save_file(tensors, str(temporary), metadata={"kind": config.model.kind, "family": config.model.family})
    write_json(run_dir / CONFIG_FILE, config.to_dict())


def save_train_state(run_dir: str | Path, state: dict[str, Any]) -> None:
    with atomic_path(Path(run_dir) / TRAIN_STATE_FILE) as temporary:
        torch.save(state, temporary)


def load_config(run_dir: str | Path) -> RunConfig:
    path = Path(run_dir) / CONFIG_FILE
    if not Path(run_dir).is_dir():
        raise CheckpointError(f"run directory {run_dir} does not exist")
    if not path.is_file():
        raise CheckpointError(f"{path} is missing (is {run_dir} a run directory?)")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{path} is not valid JSON ({error})") from None
    return RunConfig.from_dict(data)


def load_run(run_dir: str | Path) -> LoadedRun:
    run_dir = Path(run_dir)
    config = load_config(run_dir)
    weights_path = run_dir / WEIGHTS_FILE
    if not weights_path.is_file():
        raise CheckpointError(f"{weights_path} is missing")
    try:
        tensors = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"{weights_path} is corrupt or not a safetensors file ({error})") from None
    model = build_model(config.model)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{weights_path} does not match config.json (missing {missing or 'none'}, unexpected {unexpected or 'none'})"
        )
    for name, tensor in tensors.items():
        if tensor.shape != expected[name].shape:
            raise CheckpointError(
                f"{weights_path}: tensor '{name}' has shape {tuple(tensor.shape)}, "
                f"config.json implies {tuple(expected[name].shape)}"
            )
        if not torch.isfinite(tensor).all():
            raise CheckpointError(f"{weights_path}: tensor '{name}' contains NaN or Inf")
    model.load_state_dict(tensors)
    model.eval()
    return LoadedRun(config=config, model=model, run_dir=run_dir)


def load_train_state(run_dir: str | Path) -> dict[str, Any]:
    path = Path(run_dir) / TRAIN_STATE_FILE
    if not path.is_file():
        raise CheckpointError(f"{path} is missing: nothing to resume")
    try:
        return torch.load(path, map_location="cpu")
    except Exception as error:  # torch.load raises many types for a damaged file
        raise CheckpointError(f"{path} is corrupt ({type(error).__name__})") from None
