"""A readable summary of an exported file (`ipvae inspect`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ipvae.export.hdf5 import ExportedModel
from ipvae.export.quantize import accumulator_bounds
from ipvae.export.spec import LAVA_MIXED_WEIGHT_WIDTH, NO_LEAK_SHIFT, QuantizedMatrix
from ipvae.errors import shown

BYTES_PER_MIB = 2**20
PATH_LIMIT = 200  # characters of the file name shown (escaped: control characters never reach the terminal)
LOIHI2_WEIGHT_EXP_RANGE = (-8, 7)  # hardware range of Loihi 2's synaptic weight exponent


def _matrix_line(name: str, matrix: QuantizedMatrix, lava: bool) -> str:
    mantissa = matrix.mantissa.astype(np.int64)
    zero_fraction = float(np.mean(mantissa == 0)) if mantissa.size else 0.0
    line = (
        f"  {name:<11} {list(matrix.shape)} mantissas {matrix.bits}-bit, {matrix.exponent_text()}; "
        f"zeros {zero_fraction:.1%}, max|m| {int(np.abs(mantissa).max(initial=0))}, "
        f"mean|m| {float(np.abs(mantissa).mean()) if mantissa.size else 0.0:.1f}"
    )
    if lava and matrix.per_row:
        line += "; the exponents apply in each neuron (drive register), the Dense sums mantissas"
    elif lava:
        shift = LAVA_MIXED_WEIGHT_WIDTH - matrix.bits
        lava_exp = matrix.exponent - shift
        low, high = LOIHI2_WEIGHT_EXP_RANGE
        note = "" if low <= lava_exp <= high else " (outside Loihi 2's range; fine on the CPU simulator)"
        line += f"; Lava Dense weights=m<<{shift}, weight_exp={lava_exp:+d}{note}"
    return line


def _self_inhibition_line(model) -> list[str]:
    held = model.self_inhibition
    if held is None:
        return []
    mantissa = held.mantissa.astype(np.int64)
    return [f"  self_weight [{mantissa.size}] mantissas {held.bits}-bit, exp {held.exponent:+d}; the lateral diagonal "
            f"held apart in each neuron (from its own last count), max|m| {int(np.abs(mantissa).max(initial=0))}"]


def _leak_text(leak_shift: int) -> str:
    if leak_shift == NO_LEAK_SHIFT:
        return "no leak"
    return f"leak 2**-{leak_shift} = {2.0**-leak_shift:g} of (u - u_prior) per step (>> {leak_shift}, rounded)"


def _input_images(preparation_json: str, n_inputs: int) -> str:
    """The input size and preparation stored with the export ("" in files written before it was stored)."""
    import json

    from ipvae.images import InputPreparation

    if not preparation_json:
        return f"{n_inputs} pixels (no image shape stored; square images assumed)"
    preparation = InputPreparation.from_dict(json.loads(preparation_json))
    return f"{preparation.shape[0]}x{preparation.shape[1]} ({preparation.mode}: {preparation.words()})"


def summary_lines(path: Path, exported: ExportedModel) -> list[str]:
    model, meta = exported.model, exported.metadata
    spec = model.spec
    size_mib = path.stat().st_size / BYTES_PER_MIB
    lava = spec.lava_compatible
    bounds = accumulator_bounds(model)
    return [
        f"{shown(path, PATH_LIMIT)}: ipvae integer export, format version {exported.format_version}, {size_mib:.2f} MiB",
        f"layer 0  input  shape [{model.n_inputs}]  graded spikes, {spec.input_bits}-bit signed payload "
        f"(|x_int| <= {spec.input_max}), input_scale {model.input_scale:.6g} per LSB",
        f"         input images {_input_images(meta.input_preparation, model.n_inputs)}",
        f"layer 1  dense  shape [{model.n_latents}]  neuron POISSON; "
        + ("Lava bit-accurate Dense compatible" if lava else f"REFERENCE-ONLY ({spec.weight_bits}-bit weights exceed Lava's 8-bit Dense)"),
        _matrix_line("weight", model.ff, lava),
        _matrix_line("weight_rec", model.rec, lava),
        *_self_inhibition_line(model),
        f"  neuron      u: {spec.u_bits}-bit state, {spec.u_frac_bits} fractional bits, saturates to "
        f"[{spec.u_min_int}, {spec.u_max_int}] = [{spec.u_min:g}, {spec.u_max:g}]",
        f"              u_prior [{int(model.u_prior.min())}, {int(model.u_prior.max())}], "
        f"bias [{int(model.bias.min())}, {int(model.bias.max())}] u-LSBs/step; {_leak_text(model.leak_shift)}",
        f"              spikes: counts 0..{spec.max_spike_count} ({spec.spike_message_bits}-bit payload); sampler "
        f"{spec.sampler_frac_bits} fractional bits, table {model.cdf.shape[0]} x {model.cdf.shape[1]} uint32; "
        f"rng splitmix64-chain-v1, seed {spec.seed}; default T = {model.n_steps}",
        f"              worst case |a_ff| {bounds['ff_out']}, |a_rec| {bounds['rec_out']}, "
        f"neuron sum {bounds['neuron_sum']} (int32 limit {2**31 - 1})",
        f"decoder  phi {list(model.decoder_phi.shape)} float32; quantized {model.decoder.bits}-bit, "
        f"exp {model.decoder.exponent:+d}",
        f"metadata toolkit {shown(meta.toolkit_version)}, created {shown(meta.created_utc)}",
        f"         source {shown(meta.source)} (sha256 {shown(meta.source_checkpoint_sha256[:16])}...)",
        f"         calibration {shown(meta.calibration)} ({meta.calibration_images} images, max|x| {meta.input_max:.6g}); "
        f"float lr {meta.float_step_size:.6g}; exponents: {shown(meta.exponent_rule)}",
        f"         content sha256 {shown(meta.content_sha256)}",
    ]
