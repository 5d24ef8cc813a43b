"""Where an export comes from: a trained run directory and a calibration batch."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ipvae.export.integer_model import FloatParams
from ipvae.errors import CheckpointError, DatasetUnavailable, IpvaeError

CHECKPOINT_FILES = ("config.json", "model.safetensors")
HASH_CHUNK_BYTES = 1 << 20


@dataclass(frozen=True, eq=False)
class SourceRun:
    """A loaded float run: its parameters, default step count, data set name and checkpoint hash."""

    run_dir: Path
    params: FloatParams
    n_steps: int
    data: str
    data_dir: str | None
    data_seed: int
    checkpoint_sha256: str
    model: object  # ipvae.train.model.IterativeVAE, for float evaluations
    train: object = None  # its ipvae.train.config.TrainConfig: reads a run on the user's own images (ipvae.data.run_split)


def checkpoint_sha256(run_dir: Path) -> str:
    """sha256 over config.json then model.safetensors (the files that define the float model)."""
    digest = hashlib.sha256()
    for name in CHECKPOINT_FILES:
        path = run_dir / name
        if not path.is_file():
            raise CheckpointError(f"{path} is missing")
        digest.update(name.encode("utf-8") + b"\0")
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(HASH_CHUNK_BYTES), b""):
                digest.update(chunk)
    return digest.hexdigest()


def load_source(run_dir: str | Path) -> SourceRun:
    """Load a run directory written by ipvae.train.checkpoint.save_run (Poisson family only)."""
    from ipvae.train.checkpoint import load_run  # the training package is heavy; import on use

    run_dir = Path(run_dir)
    loaded = load_run(run_dir)
    if loaded.config.model.kind != "iterative":
        raise CheckpointError(f"{run_dir} holds a {loaded.config.model.kind!r} baseline; only the iterative 'poisson' model exports to integers")
    if loaded.config.model.family != "poisson":
        raise CheckpointError(f"{run_dir} holds a {loaded.config.model.family!r} model; only 'poisson' exports to integers")
    params = FloatParams.from_inference_params(loaded.model.inference_params())
    return SourceRun(
        run_dir=run_dir,
        params=params,
        n_steps=int(loaded.config.train.t_train),
        data=str(loaded.config.train.data),
        data_dir=loaded.config.train.data_dir,
        data_seed=int(loaded.config.train.seed),
        checkpoint_sha256=checkpoint_sha256(run_dir),
        model=loaded.model,
        train=loaded.config.train,
    )


def load_images(data: str, split: str, count: int, *, data_dir: str | None = None, seed: int = 0,
                train=None) -> np.ndarray:
    """The first `count` samples [N, M] float32 of a split of a data set (ipvae.data.get_dataset), or of the
    user's own images a run trained on (``train``: its TrainConfig; all of them when there are fewer)."""
    try:
        from ipvae.data import get_dataset, run_split
        from ipvae.images import is_file_source
    except ImportError:
        raise DatasetUnavailable("ipvae.data is not available; pass --input-max instead of calibrating") from None
    if train is not None and is_file_source(data):
        return run_split(train, split, limit=count).numpy().astype(np.float32)
    images, _labels = get_dataset(data, split, data_dir=data_dir, seed=seed, limit=count)
    images = images.numpy() if hasattr(images, "numpy") else np.asarray(images)
    if len(images) < count:
        raise IpvaeError(f"asked for {count} {split} samples, the {data} {split} split has {len(images)}")
    return np.asarray(images[:count], dtype=np.float32)
