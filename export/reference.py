"""Integer reference simulator: the software side of the parity tests (docs/fixed_point.md, section 6).

``run_reference`` is exact to the specification and vectorised over a batch of images:

    u_0 = u_prior_int;  z_0 = sample(u_0, step 0)
    for t = 1..T:  u_t = sat(u_{t-1} + dense(ff, x_t) + dense(rec, z_{t-1}) + bias_int);  z_t = sample(u_t, t)

with dense(W, s) = floor(sum_j m_ij s_j * 2**e) exactly as Lava's bit-accurate Dense computes it.
Integer dot products run as float64 BLAS products, which are exact while every partial sum stays
below 2**53 (checked). ``run_float_reference`` is the float-u variant (no quantization at all) that
draws spikes with the same uniforms, for the high-precision-limit test.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ipvae.export.integer_model import FloatParams, IntegerModel
from ipvae.export.rng import key_prefix, uniform24_from_prefix
from ipvae.export.sampler import sample_counts, sample_counts_exact_rate
from ipvae.export.spec import QuantizedMatrix

FLOAT64_EXACT_LIMIT = 2**53
CLAMP_MODES = ("soft", "hard")


@dataclass(frozen=True, eq=False)
class ReferenceResult:
    """Per-step trajectories for t = 0..T: z [T+1, B, K] int16, u [T+1, B, K], recon [T+1, B, M] float32.

    u is int32 u-LSBs for the integer reference, float64 for the float reference; recon = Phi z_t.
    """

    z: np.ndarray
    u: np.ndarray
    recon: np.ndarray


def dense_apply(matrix: QuantizedMatrix, payload: np.ndarray) -> np.ndarray:
    """Lava bit-accurate Dense output for payloads [B, J]: floor((payload @ m^T) * 2**e), int64 [B, I]."""
    mantissa = matrix.mantissa.astype(np.float64)  # [I, J]
    bound = float(np.abs(mantissa).sum(axis=1).max(initial=0.0)) * float(np.abs(payload).max(initial=0))
    if bound >= FLOAT64_EXACT_LIMIT:
        raise OverflowError("integer dot product could exceed 2**53; the float64 path would not be exact")
    accumulated = (payload.astype(np.float64) @ mantissa.T).astype(np.int64)  # [B, I], exact integers
    if matrix.exponent >= 0:
        return accumulated << matrix.exponent
    return accumulated >> -matrix.exponent


def _frames(x: np.ndarray, n_steps: int, name: str) -> tuple[np.ndarray, bool]:
    """Validate x as [B, M] (static) or [T', B, M] with T' >= n_steps; return (x, is_static)."""
    if x.ndim == 2:
        return x, True
    if x.ndim == 3:
        if x.shape[0] < n_steps:
            raise ValueError(f"{name} has {x.shape[0]} frames for {n_steps} steps")
        return x, False
    raise ValueError(f"{name} must be [B, M] or [T, B, M], got shape {x.shape}")


def _image_prefixes(seed: int, image_offset: int, batch_size: int) -> np.ndarray:
    if image_offset < 0:
        raise ValueError("image_offset must be non-negative")
    images = image_offset + np.arange(batch_size, dtype=np.uint64)  # [B]
    return key_prefix(seed, images)[:, None]  # [B, 1]


def run_reference(
    model: IntegerModel,
    x_int: np.ndarray,
    n_steps: int | None = None,
    *,
    image_offset: int = 0,
) -> ReferenceResult:
    """Integer dynamics for graded input payloads x_int ([B, M] static or [T, B, M] frames, integer dtype).

    Image b of the batch has the global image index image_offset + b (the generator key).
    """
    spec = model.spec
    n_steps = model.n_steps if n_steps is None else int(n_steps)
    if n_steps < 1:
        raise ValueError("n_steps must be positive")
    x_int, is_static = _frames(np.asarray(x_int), n_steps, "x_int")
    if x_int.dtype.kind not in "iu":
        raise TypeError(f"x_int must hold integer payloads (see ipvae.export.quantize.quantize_input), got {x_int.dtype}")
    if x_int.shape[-1] != model.n_inputs:
        raise ValueError(f"x_int has {x_int.shape[-1]} inputs, the model {model.n_inputs}")
    if x_int.size and int(np.abs(x_int.astype(np.int64)).max()) > spec.input_max:
        raise ValueError(f"x_int exceeds the {spec.input_bits}-bit payload range +-{spec.input_max}")
    batch_size, n_latents = x_int.shape[-2], model.n_latents
    prefixes = _image_prefixes(spec.seed, image_offset, batch_size)  # [B, 1]
    neurons = np.arange(n_latents, dtype=np.uint64)[None, :]  # [1, K]
    phi_t = model.decoder_phi.T  # [K, M]

    z_steps = np.empty((n_steps + 1, batch_size, n_latents), dtype=np.int16)  # [T+1, B, K]
    u_steps = np.empty((n_steps + 1, batch_size, n_latents), dtype=np.int32)  # [T+1, B, K]
    u = np.broadcast_to(model.u_prior.astype(np.int64), (batch_size, n_latents))  # [B, K]
    feedforward = dense_apply(model.ff, x_int) if is_static else None  # [B, K]
    bias = model.bias.astype(np.int64)  # [K]
    for t in range(n_steps + 1):
        if t > 0:
            a_ff = feedforward if is_static else dense_apply(model.ff, x_int[t - 1])  # [B, K]
            a_rec = dense_apply(model.rec, z_steps[t - 1])  # [B, K]
            u = np.clip(u + a_ff + a_rec + bias, spec.u_min_int, spec.u_max_int)
        uniforms = uniform24_from_prefix(prefixes, t, neurons)  # [B, K]
        z_steps[t] = sample_counts(u, uniforms, model.cdf, spec)
        u_steps[t] = u
    recon = (z_steps.astype(np.float32) @ phi_t).astype(np.float32)  # [T+1, B, M]
    return ReferenceResult(z=z_steps, u=u_steps, recon=recon)


def soft_clamp(y: np.ndarray, low: float, high: float) -> np.ndarray:
    """The float model's clamp: max(low, high - softplus(high - y))."""
    return np.maximum(low, high - np.logaddexp(0.0, high - y))


def run_float_reference(
    params: FloatParams,
    x: np.ndarray,
    n_steps: int,
    *,
    seed: int,
    image_offset: int = 0,
    clamp: str = "soft",
) -> ReferenceResult:
    """Float-u dynamics (float64, unquantized weights and inputs) with the integer sampler's uniforms.

    u_t = clamp(u_{t-1} + lr (Phi^T D (x_t - Phi z_{t-1}) - b)); z_t by the inverse-CDF rule of
    ipvae.export.sampler with the exact rate exp(u_t). clamp="soft" is the float model's clamp,
    clamp="hard" the integer spec's saturation to [u_min, u_max].
    """
    if clamp not in CLAMP_MODES:
        raise ValueError(f"clamp must be one of {CLAMP_MODES}")
    x, is_static = _frames(np.asarray(x, dtype=np.float64), n_steps, "x")
    batch_size, n_latents = x.shape[-2], params.n_latents
    prefixes = _image_prefixes(seed, image_offset, batch_size)  # [B, 1]
    neurons = np.arange(n_latents, dtype=np.uint64)[None, :]  # [1, K]
    weighted_phi = params.phi * params.precision[:, None]  # [M, K] = D Phi

    z_steps = np.empty((n_steps + 1, batch_size, n_latents), dtype=np.int16)  # [T+1, B, K]
    u_steps = np.empty((n_steps + 1, batch_size, n_latents), dtype=np.float64)  # [T+1, B, K]
    u = np.broadcast_to(params.u_prior, (batch_size, n_latents)).astype(np.float64)  # [B, K]
    for t in range(n_steps + 1):
        if t > 0:
            x_t = x if is_static else x[t - 1]  # [B, M]
            residual = x_t - z_steps[t - 1].astype(np.float64) @ params.phi.T  # [B, M]
            y = u + params.step_size * (residual @ weighted_phi - params.bias)  # [B, K]
            u = soft_clamp(y, params.u_min, params.u_max) if clamp == "soft" else np.clip(y, params.u_min, params.u_max)
        uniforms = uniform24_from_prefix(prefixes, t, neurons)  # [B, K]
        z_steps[t] = sample_counts_exact_rate(u, uniforms, params.max_spike_count)
        u_steps[t] = u
    recon = (z_steps.astype(np.float64) @ params.phi.T).astype(np.float32)  # [T+1, B, M]
    return ReferenceResult(z=z_steps, u=u_steps, recon=recon)
