"""Float iP-VAE -> integer model (docs/fixed_point.md, section 3).

Scales: u in u-LSBs (2**F per unit); input payload x_int = rint(x / s_x) with s_x from a calibration
batch. Two layouts of the synapse exponents:

- ``per-neuron`` (the default; format version 2): each neuron's feed-forward row gets the smallest power-of-two
  exponent that fits its largest magnitude in a symmetric signed mantissa of ``weight_bits`` (the exponent
  applies in the neuron, to its drive register); the lateral matrix's diagonal (self-inhibition) is held
  apart with its own such exponent, and the off-diagonal entries get theirs. Nothing is clipped.
- ``shared`` (format version 1's layout): one exponent per matrix, chosen on calibration images (the
  output-error rule, then the reconstruction search of ipvae.export.calibration).
"""

from __future__ import annotations

import math

import numpy as np

from ipvae.export.integer_model import FloatParams, IntegerModel
from ipvae.export.neurons.registry import neuron_model
from ipvae.export.spec import (
    INT32_MAX,
    LAVA_MIXED_WEIGHT_WIDTH,
    MAX_LEAK_SHIFT,
    NO_LEAK_SHIFT,
    FixedPointSpec,
    MAX_EXPONENT,
    QuantizedMatrix,
    SelfInhibition,
    SpecError,
    leak_term,
    symmetric_max,
)


def spec_for(params: FloatParams, **overrides) -> FixedPointSpec:
    """The default spec for a float model: its u bounds and spike cap, plus any overrides."""
    fields = {"u_min": params.u_min, "u_max": params.u_max, "max_spike_count": params.max_spike_count}
    fields.update(overrides)
    return FixedPointSpec.create(**fields)


MAX_CLIP_STEPS = 6  # calibrated exponents: try e_max, e_max - 1, ..., e_max - MAX_CLIP_STEPS
EXPONENT_RULE_MAX_ABS = "max-abs"
EXPONENT_RULE_CALIBRATED = "calibrated-output-mse"
# the calibrated exponents, then the (ff, rec) pair reconstructing calibration images best (export/calibration.py)
EXPONENT_RULE_RECONSTRUCTION = "calibrated-output-mse+reconstruction-search"
EXPONENT_RULE_PER_NEURON = "per-neuron-max-abs"  # per-neuron ff exponents, self-inhibition apart, all max-abs
LAYOUT_PER_NEURON = "per-neuron"
LAYOUT_SHARED = "shared"
LAYOUTS = (LAYOUT_PER_NEURON, LAYOUT_SHARED)


def max_abs_exponent(peak, bits: int):
    """The smallest exponent e with peak / 2**e <= 2**(bits-1) - 1 (0 where peak is 0), clamped to
    +-MAX_EXPONENT; ``peak`` a float or an array of them (one exponent each, int64)."""
    peak = np.asarray(peak, dtype=np.float64)
    safe = np.where(peak > 0.0, peak, 1.0)
    exponent = np.where(peak > 0.0, np.ceil(np.log2(safe / symmetric_max(bits))), 0.0)
    exponent = np.clip(exponent, -MAX_EXPONENT, MAX_EXPONENT).astype(np.int64)
    return int(exponent) if exponent.ndim == 0 else exponent


def quantize_rows(target: np.ndarray, bits: int) -> QuantizedMatrix:
    """One max-abs exponent per row [rows] and b-bit mantissas: no weight is clipped, and a row of small
    weights keeps its resolution whatever the other rows hold."""
    if not np.all(np.isfinite(target)):
        raise SpecError("cannot quantize a matrix with NaN or Inf entries")
    exponents = max_abs_exponent(np.abs(target).max(axis=1, initial=0.0), bits)  # [rows]
    limit = symmetric_max(bits)
    mantissa = np.clip(np.rint(target / np.exp2(exponents.astype(np.float64))[:, None]), -limit, limit)
    return QuantizedMatrix(mantissa=mantissa.astype(np.int16), exponent=exponents, bits=bits)


def quantize_self_inhibition(diagonal: np.ndarray, bits: int) -> SelfInhibition:
    """The lateral diagonal [K] as b-bit mantissas at its own max-abs exponent."""
    if not np.all(np.isfinite(diagonal)):
        raise SpecError("cannot quantize a self-inhibition with NaN or Inf entries")
    exponent = max_abs_exponent(np.abs(diagonal).max(initial=0.0), bits)
    limit = symmetric_max(bits)
    mantissa = np.clip(np.rint(diagonal / 2.0**exponent), -limit, limit).astype(np.int16)
    return SelfInhibition(mantissa=mantissa, exponent=exponent, bits=bits)


def quantize_matrix(target: np.ndarray, bits: int, probes: np.ndarray | None = None) -> QuantizedMatrix:
    """Symmetric mantissas of `bits` bits and one power-of-two exponent.

    mantissa = clip(rint(target / 2**e), -(2**(bits-1)-1), 2**(bits-1)-1), int16, with
    - probes None ("max-abs"): e = e_max, the smallest exponent with max|target| / 2**e <= 2**(bits-1)-1;
    - probes [N, cols] ("calibrated-output-mse"): the e in e_max - MAX_CLIP_STEPS .. e_max minimising the
      output error sum_n ||(dequantized - target) probes[n]||^2 on the calibration vectors (ties: the
      larger e). Smaller e clips the few largest weights but resolves the many small ones.
    """
    if not np.all(np.isfinite(target)):
        raise SpecError("cannot quantize a matrix with NaN or Inf entries")
    peak = float(np.max(np.abs(target))) if target.size else 0.0
    if peak == 0.0:
        return QuantizedMatrix(mantissa=np.zeros(target.shape, dtype=np.int16), exponent=0, bits=bits)
    largest = max_abs_exponent(peak, bits)
    candidates = [largest] if probes is None else [largest - step for step in range(MAX_CLIP_STEPS + 1)]
    best, best_error = None, math.inf
    for exponent in candidates:
        quantized = requantize_at(target, bits, exponent)
        if probes is None:
            return quantized
        error = float(np.sum((probes @ (quantized.dequantize() - target).T) ** 2))  # [N, rows] summed
        if error < best_error:
            best, best_error = quantized, error
    return best


def synapse_targets(params: FloatParams, spec: FixedPointSpec, input_scale: float) -> tuple[np.ndarray, np.ndarray]:
    """The real values the mantissas approximate: ff = A s_x 2**F [K, M] and rec = -L 2**F [K, K]."""
    u_scale = float(spec.u_scale)
    return params.feedforward() * input_scale * u_scale, -params.lateral() * u_scale


def leak_shift_for(leak: float) -> int:
    """The integer spec's leak shift n of a float leak: 0 -> 0 (no leak); 2**-n exactly, n in 1..30 -> n.

    The integer neuron applies the leak as one arithmetic shift (docs/fixed_point.md, section 6.1), so any
    other value (0.003, 0.75, 2**-31) is refused: retrain with leak = 2**-n or 0.
    """
    leak = float(leak)
    if leak == 0.0:
        return NO_LEAK_SHIFT
    if math.isfinite(leak) and 0.0 < leak < 1.0:
        mantissa, exponent = math.frexp(leak)  # leak = mantissa * 2**exponent, mantissa in [0.5, 1)
        shift = 1 - exponent  # leak = 2**-shift exactly when mantissa == 0.5
        if mantissa == 0.5 and 1 <= shift <= MAX_LEAK_SHIFT:
            return shift
    raise SpecError(
        f"leak = {leak!r} cannot be exported: the integer neuron needs leak = 0 or 2**-n with n in "
        f"1..{MAX_LEAK_SHIFT} (one arithmetic shift per step); retrain with such a leak"
    )


def requantize_at(target: np.ndarray, bits: int, exponent: int) -> QuantizedMatrix:
    """mantissa = clip(rint(target / 2**exponent)) at a given exponent (symmetric, ``bits`` bits)."""
    limit = symmetric_max(bits)
    mantissa = np.clip(np.rint(target / 2.0**exponent), -limit, limit).astype(np.int16)
    return QuantizedMatrix(mantissa=mantissa, exponent=int(exponent), bits=bits)


def calibrate_input_scale(x_calibration: np.ndarray, input_bits: int) -> float:
    """s_x = max|x| / (2**(input_bits-1) - 1) over a calibration batch [N, M]."""
    x = np.asarray(x_calibration, dtype=np.float64)
    if x.size == 0 or not np.all(np.isfinite(x)):
        raise SpecError("the calibration batch is empty or contains NaN/Inf")
    peak = float(np.max(np.abs(x)))
    if peak == 0.0:
        raise SpecError("the calibration batch is all zeros: cannot choose an input scale")
    return peak / symmetric_max(input_bits)


def quantize_input(x: np.ndarray, input_scale: float, input_bits: int) -> np.ndarray:
    """Graded input payloads x_int = clip(rint(x / s_x), -(2**(b-1)-1), 2**(b-1)-1), float64 math, int32 out."""
    limit = symmetric_max(input_bits)
    scaled = np.asarray(x, dtype=np.float64) / np.float64(input_scale)
    return np.clip(np.rint(scaled), -limit, limit).astype(np.int32)


def quantize(
    params: FloatParams,
    spec: FixedPointSpec,
    input_scale: float,
    n_steps: int,
    *,
    layout: str = LAYOUT_PER_NEURON,
    ff_probes: np.ndarray | None = None,
    rec_probes: np.ndarray | None = None,
) -> IntegerModel:
    """The integer model of `params` under `spec` (targets: ff = A s_x 2**F, rec = -L 2**F, bias = -lr b 2**F,
    leak = 2**-leak_shift exactly, see leak_shift_for), in the given layout (module docstring).

    Shared layout only: ff_probes [N, M] (calibration input payloads) and rec_probes [N', K] (the float
    model's spike counts on calibration images) select calibrated exponents (see quantize_matrix); without
    them: max-abs.
    """
    if layout not in LAYOUTS:
        raise SpecError(f"unknown layout {layout!r}; expected one of {', '.join(LAYOUTS)}")
    if params.max_spike_count != spec.max_spike_count:
        raise SpecError(
            f"max_spike_count {spec.max_spike_count} differs from the float model's {params.max_spike_count}"
        )
    if not (np.isfinite(input_scale) and input_scale > 0):
        raise SpecError(f"input_scale must be a positive finite number, got {input_scale}")
    if n_steps < 1:
        raise SpecError(f"n_steps must be positive, got {n_steps}")
    leak_shift = leak_shift_for(params.leak)
    u_scale = float(spec.u_scale)
    ff_target, rec_target = synapse_targets(params, spec, input_scale)
    self_inhibition = None
    if layout == LAYOUT_PER_NEURON:
        ff = quantize_rows(ff_target, spec.weight_bits)  # [K, M], exponents [K]
        self_inhibition = quantize_self_inhibition(np.diag(rec_target).copy(), spec.weight_bits)  # [K]
        off_diagonal = rec_target.copy()  # [K, K]
        np.fill_diagonal(off_diagonal, 0.0)
        rec = quantize_matrix(off_diagonal, spec.weight_bits)
    else:
        ff = quantize_matrix(ff_target, spec.weight_bits, ff_probes)  # [K, M]
        rec = quantize_matrix(rec_target, spec.weight_bits, rec_probes)  # [K, K]
    bias = np.rint(-params.drive() * u_scale)  # [K]
    if np.max(np.abs(bias)) > INT32_MAX:
        raise SpecError("bias * 2**F does not fit in int32")
    u_prior = np.clip(np.rint(params.u_prior * u_scale), spec.u_min_int, spec.u_max_int)  # [K]
    model = IntegerModel(
        spec=spec,
        input_scale=float(input_scale),
        ff=ff,
        rec=rec,
        bias=bias.astype(np.int32),
        u_prior=u_prior.astype(np.int32),
        cdf=neuron_model(params.neuron).build_table(spec),
        decoder_phi=params.phi.astype(np.float32),
        decoder=quantize_matrix(params.phi, spec.decoder_bits),
        n_steps=int(n_steps),
        leak_shift=leak_shift,
        neuron=params.neuron,
        self_inhibition=self_inhibition,
    )
    check_accumulator_bounds(model)
    return model


def accumulator_bounds(model: IntegerModel) -> dict[str, int]:
    """Worst-case magnitudes (any input payload, any spike counts) of every integer the dynamics form.

    ff_dot / rec_dot: Lava's Dense accumulator before the exponent shift (weights m << (9 - b));
    ff_out: the feed-forward term after each neuron's exponent; rec_out: the lateral Dense a_out after the shift
    plus the self-inhibition held apart; neuron_sum: |u| + |a_ff| + |a_rec| + |bias| + |leak term| (the leak
    term of an offset |u - u_prior| <= u_max_int - u_min_int; 0 without a leak).
    """
    spec = model.spec
    pre_shift = max(0, LAVA_MIXED_WEIGHT_WIDTH - spec.weight_bits)
    ff_rows = np.abs(model.ff.mantissa.astype(np.int64)).sum(axis=1) * spec.input_max  # [K]
    ff_row = int(ff_rows.max(initial=0))
    rec_rows = np.abs(model.rec.mantissa.astype(np.int64)).sum(axis=1) * spec.max_spike_count  # [K]
    rec_row = int(rec_rows.max(initial=0))
    ff_out = max((_shifted_bound(int(row), int(exponent)) for row, exponent in zip(ff_rows, model.ff.row_exponents)),
                 default=0)
    rec_out_rows = [_shifted_bound(int(row), model.rec.exponent) for row in rec_rows]  # [K]
    if model.self_inhibition is not None:  # neuron k adds its own term to its row's Dense output
        held = model.self_inhibition
        peaks = np.abs(held.mantissa.astype(np.int64)) * spec.max_spike_count  # [K]
        rec_out_rows = [row + _shifted_bound(int(peak), held.exponent) for row, peak in zip(rec_out_rows, peaks)]
    rec_out = max(rec_out_rows, default=0)
    u_peak = max(abs(spec.u_min_int), abs(spec.u_max_int))
    bias_peak = int(np.abs(model.bias.astype(np.int64)).max())
    leak_peak = leak_term(spec.u_max_int - spec.u_min_int, model.leak_shift)  # the largest |leak term| of either sign
    return {
        "ff_dot": ff_row << pre_shift,
        "rec_dot": rec_row << pre_shift,
        "ff_out": ff_out,
        "rec_out": rec_out,
        "neuron_sum": u_peak + ff_out + rec_out + bias_peak + leak_peak,
    }


def check_accumulator_bounds(model: IntegerModel) -> None:
    """Refuse a model whose worst case could overflow int32 (Lava's a_out ports and the neuron sum)."""
    for name, bound in accumulator_bounds(model).items():
        if name.endswith("_dot") and not model.spec.lava_compatible:
            continue  # reference-only widths accumulate in int64
        if bound > INT32_MAX:
            raise SpecError(f"worst-case {name} = {bound} overflows int32; use fewer weight or input bits")


def _shifted_bound(value: int, exponent: int) -> int:
    """Upper bound of |floor(v * 2**exponent)| for |v| <= value."""
    return value << exponent if exponent >= 0 else -((-value) >> -exponent)
