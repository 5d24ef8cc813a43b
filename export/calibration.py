"""Calibration probes for the quantizer: input payloads and the float model's own spike counts."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ipvae.errors import IpvaeError
from ipvae.export.integer_model import FloatParams
from ipvae.export.quantize import quantize_input
from ipvae.export.reference import run_float_reference

DEFAULT_SPIKE_IMAGES = 200  # images whose float trajectories supply the lateral probes
DATASET_SPLIT_SEPARATOR = ":"  # --calibration-data NAME:SPLIT (a data set of ipvae.data; the split defaults to train)
DEFAULT_DATASET_SPLIT = "train"


@dataclass(frozen=True, eq=False)
class CalibrationImages:
    """Images [N, M] float32 to calibrate on, and where they came from (stored as the export's provenance)."""

    x: np.ndarray
    description: str


def load_calibration_data(source: str, n_inputs: int, count: int) -> CalibrationImages:
    """The first ``count`` images of a data set name ("fashion_mnist", "mnist:test", ipvae.data) or of the
    user's files (an image, folder, glob, .npy / .npz, read by ipvae.images); frame sequences count each
    frame as an image. Refuses in one line an unknown name, a wrong pixel count or non-finite values."""
    from ipvae.images import is_file_source, load_file_inputs

    if is_file_source(source):
        loaded = load_file_inputs(source, n_inputs)
        x = np.asarray(loaded.x, dtype=np.float64).reshape(-1, loaded.x.shape[-1])[:count]  # [N, M]
        description = f"{source}[:{len(x)}]"
    else:
        from ipvae.data import get_dataset

        name, _, split = source.partition(DATASET_SPLIT_SEPARATOR)
        split = split or DEFAULT_DATASET_SPLIT
        tensor, _labels = get_dataset(name, split, limit=count)
        x = np.asarray(tensor.numpy() if hasattr(tensor, "numpy") else tensor, dtype=np.float64)  # [N, M]
        description = f"{name}:{split}[:{len(x)}]"
    if x.ndim != 2 or x.shape[1] != n_inputs:
        raise IpvaeError(f"--calibration-data {source}: images have {x.shape[-1]} pixels, the model {n_inputs}")
    if len(x) == 0 or not np.all(np.isfinite(x)):
        raise IpvaeError(f"--calibration-data {source}: no images, or NaN/Inf values")
    return CalibrationImages(x=x.astype(np.float32), description=description)


@dataclass(frozen=True, eq=False)
class CalibrationProbes:
    """ff [N, M]: input payloads x_int (float64); rec [N * (T+1), K]: spike counts z_t, t = 0..T."""

    ff: np.ndarray
    rec: np.ndarray


def calibration_probes(
    params: FloatParams,
    images: np.ndarray,
    input_scale: float,
    input_bits: int,
    n_steps: int,
    *,
    seed: int,
    spike_images: int = DEFAULT_SPIKE_IMAGES,
) -> CalibrationProbes:
    """Probes from calibration images [N, M]: their payloads, and z of the float-u reference on the first few."""
    payloads = quantize_input(images, input_scale, input_bits).astype(np.float64)  # [N, M]
    trajectory = run_float_reference(params, images[:spike_images], n_steps, seed=seed, clamp=params.float_clamp)
    spikes = trajectory.z.reshape(-1, params.n_latents).astype(np.float64)  # [n (T+1), K]
    return CalibrationProbes(ff=payloads, rec=spikes)


RECONSTRUCTION_SEARCH_STEPS = 3  # per matrix: its calibrated exponent and up to this many finer ones (more clipping)
RECONSTRUCTION_IMAGES = 200  # calibration images the integer model runs for each exponent pair
RECONSTRUCTION_MIN_STEPS = 32  # the search scores steps T/2..T of a window of at least this many steps


@dataclass(frozen=True)
class ExponentChoice:
    """The chosen (ff, rec) exponents and every pair's calibration error (mean D-free squared error)."""

    model: object  # IntegerModel
    errors: dict[tuple[int, int], float]


def reconstruction_error(model, payloads: np.ndarray, images: np.ndarray, n_steps: int) -> float:
    """Mean squared error per pixel of the decode Phi z_t against the images over steps T/2..T (integer reference)."""
    from ipvae.export.reference import run_reference

    result = run_reference(model, payloads, n_steps, with_recon=False)
    late = result.z[n_steps // 2 :].astype(np.float64)  # [T/2+1, N, K]
    recon = late @ model.decoder_phi.T.astype(np.float64)  # [T/2+1, N, M]
    return float(np.mean(np.square(recon - images[None])))


def choose_exponents_by_reconstruction(model, params: FloatParams, images: np.ndarray, n_steps: int) -> ExponentChoice:
    """Search each synapse matrix's exponent end to end: the integer model's reconstruction of calibration images.

    The per-matrix rule (quantize_matrix) scores each matrix's own output error. A matrix with a few large
    entries (the self-inhibition diagonal of L, the drive of rarely-lit pixels in A) then keeps an exponent that
    rounds most small weights to zero, though clipping the few large ones costs the dynamics less. This tries
    e, e - 1, ..., e - RECONSTRUCTION_SEARCH_STEPS for ff and rec (one power of two finer each, same bits) and
    keeps the pair with the least error; ties keep the coarser (calibrated) exponents. Common random numbers:
    every pair runs with the same generator key, so the comparison is not noise-driven.
    """
    import dataclasses

    from ipvae.export.quantize import requantize_at, synapse_targets

    images = np.asarray(images[:RECONSTRUCTION_IMAGES], dtype=np.float64)  # [N, M]
    payloads = quantize_input(images, model.input_scale, model.spec.input_bits)  # [N, M]
    window = max(int(n_steps), RECONSTRUCTION_MIN_STEPS)
    targets = dict(zip(("ff", "rec"), synapse_targets(params, model.spec, model.input_scale)))

    def requantized(name: str, finer: int):
        matrix = getattr(model, name)
        return matrix if finer == 0 else requantize_at(targets[name], matrix.bits, matrix.exponent - finer)

    errors, best = {}, None
    for ff_finer in range(RECONSTRUCTION_SEARCH_STEPS + 1):
        for rec_finer in range(RECONSTRUCTION_SEARCH_STEPS + 1):
            candidate = dataclasses.replace(model, ff=requantized("ff", ff_finer), rec=requantized("rec", rec_finer))
            error = reconstruction_error(candidate, payloads, images, window)
            errors[(candidate.ff.exponent, candidate.rec.exponent)] = error
            if best is None or error < best[0]:
                best = (error, candidate)
    return ExponentChoice(model=best[1], errors=errors)
