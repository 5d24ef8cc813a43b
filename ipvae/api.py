"""The everyday steps as plain functions, re-exported as ``ipvae.load_run``, ``ipvae.export_model`` and so on.

    import ipvae

    run = ipvae.load_run("pretrained/mnist_k512")             # 1. a trained run (config + PyTorch model)
    model = ipvae.export_model("pretrained/mnist_k512", "model.h5")  # 2. quantize, write the HDF5 file, read it back
                                                               #    (or a plain-PyTorch model: an nn.Module / dict)
    x = ipvae.load_inputs("mnist", model, n_images=4)          #    or your own PNGs: "my_digits/"
    result = ipvae.run(model, x, steps=16, backend="lava")     # 3. spiking inference (or "reference")
    result.z, result.reconstruction, result.table              # counts, Phi z_T, spikes/energy/quality

Each function raises an :class:`ipvae.errors.IpvaeError` subclass with a one-line message on bad input.
The command line (``ipvae train|eval|export|run|parity``) is built on the same functions' modules.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True, eq=False)
class SpikingRun:
    """The result of :func:`run`.

    z: spike counts [T+1, N, K] for t = 0..T (int).  reconstruction: Phi z_T [N, M] (float64).
    table: the summary ``ipvae run`` prints (spikes, synaptic operations, energy estimate, r2, ...).
    curves: per-step arrays (spikes, events, energy_nj, mse_per_pixel, r2, zeros), length T+1.
    """

    z: np.ndarray
    reconstruction: np.ndarray
    table: dict
    curves: dict


def load_run(run_dir: str | Path):
    """A trained run directory: ``.config`` (RunConfig) and ``.model`` (the PyTorch IterativeVAE, eval mode)."""
    from ipvae.train.checkpoint import load_run as load

    return load(run_dir)


def export_model(source, path: str | Path, *, weight_bits: int = 8, calibration_images: int = 1000,
                 input_max: float | None = None, seed: int = 0, n_steps: int | None = None, data: str = "mnist",
                 run_dir: str | Path | None = None):
    """Quantize a model to integers, write the HDF5 export ``path`` (atomically) and return the validated
    integer model read back from it (ipvae.export.integer_model.IntegerModel).

    source: a trained run directory; or a model trained elsewhere in plain PyTorch, as an ``nn.Module`` or a
    dict of tensors with the contract of ``ipvae.train.importers.plain``: phi [M, K], u_prior [K], bias [K]
    (or log_bias), step_size (or log_step_size), sigma [M] or scalar (or log_sigma), and optionally u_min,
    u_max, max_spike_count, leak. Such a model is first written as a run directory (``run_dir``, or a
    temporary one) with ``data`` naming its calibration images and ``n_steps`` (default 16) its T.
    input_max: fixed input range max|x| instead of choosing it on ``calibration_images`` images of the data.
    """
    from ipvae.export.pipeline import ExportSettings, export_run
    from ipvae.fileio import check_output_file

    check_output_file(path)
    settings = ExportSettings(weight_bits=weight_bits, seed=seed, calibration_images=calibration_images,
                              input_max=input_max, n_steps=n_steps)
    if isinstance(source, (str, Path)):
        export_run(source, path, settings)
        return load_export(path)
    import tempfile

    from ipvae.train.importers.plain import write_run

    steps = 16 if n_steps is None else n_steps
    if run_dir is not None:
        export_run(write_run(source, run_dir, data=data, n_steps=steps), path, settings)
        return load_export(path)
    with tempfile.TemporaryDirectory(prefix="ipvae-model-") as temporary:
        export_run(write_run(source, temporary, data=data, n_steps=steps), path, settings)
    return load_export(path)


def load_export(path: str | Path, *, seed: int | None = None):
    """The validated integer model of an export file; ``seed`` replaces the file's spike-generator key."""
    from ipvae.lava.pipeline import read_export

    return read_export(path, seed=seed)


def load_inputs(data: str, model, *, n_images: int | None = None, start: int = 0, steps: int | None = None,
                rotate_degrees: float | None = None) -> np.ndarray:
    """Inputs for ``model`` (an integer model, or anything with ``n_inputs``) as float64 [N, M] or [N, F, M].

    data: a data set name ("mnist": its test split), or your own images: a PNG/JPEG file, a folder or a glob,
    prepared like MNIST (ipvae.images); or a .npy/.npz array of images or frame sequences.
    """
    from ipvae.lava.pipeline import load_inputs_described

    n_steps = steps or getattr(model, "n_steps", 1)
    return load_inputs_described(data, n_images, model.n_inputs, start=start, rotate_degrees=rotate_degrees,
                                 n_steps=n_steps).x


def run(model, x: np.ndarray, *, steps: int | None = None, backend: str = "reference", seed: int | None = None,
        image_offset: int = 0) -> SpikingRun:
    """Spiking inference of an integer model on inputs x ([N, M] or [N, F, M]) for ``steps`` steps (default:
    the export's), on the Lava CPU simulator (``backend="lava"``, fixed_pt) or the bit-identical integer
    reference (``"reference"``, faster). ``seed`` replaces the spike-generator key."""
    from ipvae.lava.pipeline import check_backend, check_input_range, check_steps, run_backend, summarize, with_seed

    check_backend(backend)
    model = with_seed(model, seed)
    n_steps = check_steps(model.n_steps if steps is None else steps)
    x = check_input_range(np.asarray(x, dtype=np.float64), model)
    result = run_backend(model, x, n_steps, backend, image_offset=image_offset, progress=False, record_u=False)
    table, curves = summarize(model, x, result)
    reconstruction = result.z[-1].astype(np.float64) @ model.decoder_phi.T.astype(np.float64)  # [N, M]
    return SpikingRun(z=result.z, reconstruction=reconstruction, table=table, curves=curves)
