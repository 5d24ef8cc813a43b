"""Integer reference simulator: the software side of the parity tests (docs/fixed_point.md, section 6).

``run_reference`` is exact to the specification and vectorised over a batch of images:

    u_0 = u_prior_int;  z_0 = sample(u_0, step 0)
    for t = 1..T:  u_t = sat(u_{t-1} + dense(ff, x_t) + dense(rec, z_{t-1}) + bias_int - leak(u_{t-1} - u_prior_int))
                   z_t = sample(u_t, t)

with dense(W, s) = floor(sum_j m_ij s_j * 2**e) exactly as Lava's bit-accurate Dense computes it and
leak(d) = (d + 2**(n-1)) >> n for the model's leak_shift n (0 when n = 0: ipvae.export.spec.leak_term).
Integer dot products run as float64 BLAS products, which are exact while every partial sum stays
below 2**53 (checked). ``run_float_reference`` is the float-u variant (no quantization at all) that
draws spikes with the same uniforms, for the high-precision-limit test.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ipvae.export.events import EventOptions, converged, is_check_step, sigma_delta_events, static_events
from ipvae.export.integer_model import FloatParams, IntegerModel
from ipvae.export.kernels import integrate_and_sample, lateral_input
from ipvae.export.rng import absorb, key_prefix, uniform24_from_prefix
from ipvae.export.sampler import sample_counts_exact_rate
from ipvae.export.spec import QuantizedMatrix

FLOAT64_EXACT_LIMIT = 2**53
FLOAT32_EXACT_LIMIT = 2**24
CLAMP_MODES = ("soft", "hard")


@dataclass(frozen=True, eq=False)
class ReferenceResult:
    """Per-step trajectories for t = 0..T: z [T+1, B, K] int16, u [T+1, B, K], recon [T+1, B, M] float32.

    u is int32 u-LSBs for the integer reference, float64 for the float reference; recon = Phi z_t
    (None when not requested). last_step [B]: the step each image stopped at (T if it never stopped).
    input_events [T, B, M] int32: the sigma-delta input events sent at window steps 0..T-1 (integer
    reference only).
    """

    z: np.ndarray
    u: np.ndarray
    recon: np.ndarray | None
    last_step: np.ndarray | None = None
    input_events: np.ndarray | None = None


class ExactProduct:
    """payload [B, J] @ mantissa^T as exact integers (int64 [B, I]) through a float BLAS product.

    float32 when every partial sum stays below 2**24 for the largest payload, else float64 (below 2**53,
    checked): integer-valued floats below those limits add and multiply exactly.
    """

    def __init__(self, mantissa: np.ndarray, max_payload: int) -> None:
        self.row_bound = float(np.abs(mantissa).sum(axis=1, dtype=np.float64).max(initial=0.0))  # max_i sum_j |m_ij|
        bound = self.row_bound * float(max_payload)
        if bound >= FLOAT64_EXACT_LIMIT:
            raise OverflowError("integer dot product could exceed 2**53; the float64 path would not be exact")
        self.dtype = np.float32 if bound < FLOAT32_EXACT_LIMIT else np.float64
        self.transposed = np.ascontiguousarray(mantissa.T, dtype=self.dtype)  # [J, I]
        self.max_payload = max_payload

    def __call__(self, payload: np.ndarray) -> np.ndarray:
        return (payload.astype(self.dtype) @ self.transposed).astype(np.int64)  # [B, I], exact integers


def _exact_matmul(payload: np.ndarray, mantissa: np.ndarray) -> np.ndarray:
    """One exact product for an arbitrary payload (ExactProduct sized for its largest entry)."""
    return ExactProduct(mantissa, int(np.abs(payload).max(initial=0)))(payload)


def shift_by_exponent(accumulated: np.ndarray, exponent: int) -> np.ndarray:
    """floor(accumulated * 2**exponent): Lava Dense's shift after the row sum."""
    if exponent >= 0:
        return accumulated << exponent
    return accumulated >> -exponent


def dense_accumulate(matrix: QuantizedMatrix, payload: np.ndarray) -> np.ndarray:
    """The exact row sums sum_j m_ij payload_j before the exponent, int64 [B, I]."""
    return _exact_matmul(np.asarray(payload), matrix.mantissa)


def dense_apply(matrix: QuantizedMatrix, payload: np.ndarray) -> np.ndarray:
    """Lava bit-accurate Dense output for payloads [B, J]: floor((payload @ m^T) * 2**e), int64 [B, I]."""
    return shift_by_exponent(dense_accumulate(matrix, payload), matrix.exponent)


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


def input_events(model: IntegerModel, x_int: np.ndarray, n_steps: int, threshold: int) -> np.ndarray:
    """The sigma-delta input events [T, B, M] int32 for payloads x_int ([B, M] static or [T', B, M])."""
    x_int, is_static = _frames(np.asarray(x_int), n_steps, "x_int")
    if x_int.dtype.kind not in "iu":
        raise TypeError(f"x_int must hold integer payloads (see ipvae.export.quantize.quantize_input), got {x_int.dtype}")
    if x_int.shape[-1] != model.n_inputs:
        raise ValueError(f"x_int has {x_int.shape[-1]} inputs, the model {model.n_inputs}")
    if x_int.size and int(np.abs(x_int.astype(np.int64)).max()) > model.spec.input_max:
        raise ValueError(f"x_int exceeds the {model.spec.input_bits}-bit payload range +-{model.spec.input_max}")
    if is_static:
        return static_events(x_int, n_steps, threshold)
    return sigma_delta_events(x_int[:n_steps], threshold)


def run_reference(
    model: IntegerModel,
    x_int: np.ndarray,
    n_steps: int | None = None,
    *,
    image_offset: int = 0,
    options: EventOptions = EventOptions(),
    with_recon: bool = True,
) -> ReferenceResult:
    """Integer dynamics for graded input payloads x_int ([B, M] static or [T, B, M] frames, integer dtype).

    Image b of the batch has the global image index image_offset + b (the generator key). ``options``:
    the sigma-delta threshold and the stopping rule (ipvae.export.events; the defaults reproduce the
    per-step dynamics of docs/fixed_point.md section 6 exactly).
    """
    spec = model.spec
    n_steps = model.n_steps if n_steps is None else int(n_steps)
    if n_steps < 1:
        raise ValueError("n_steps must be positive")
    events = input_events(model, x_int, n_steps, options.input_threshold)  # [T, B, M]
    batch_size, n_latents = events.shape[1], model.n_latents
    image_states = _image_prefixes(spec.seed, image_offset, batch_size)[:, 0]  # [B] absorb(absorb(0, seed), image)
    cdf = np.ascontiguousarray(model.cdf, dtype=np.int64)  # [n_idx, cap], rows non-decreasing (validated)

    z_steps = np.empty((n_steps + 1, batch_size, n_latents), dtype=np.int16)  # [T+1, B, K]
    u_steps = np.empty((n_steps + 1, batch_size, n_latents), dtype=np.int32)  # [T+1, B, K]
    u = np.broadcast_to(model.u_prior.astype(np.int64), (batch_size, n_latents)).copy()  # [B, K]
    drive = np.zeros((batch_size, n_latents), dtype=np.int64)  # [B, K] held ff row sums (mantissa units)
    bias = model.bias.astype(np.int64)  # [K]
    u_prior = model.u_prior.astype(np.int64)  # [K] where the leak pulls u
    rec_transposed = np.ascontiguousarray(model.rec.mantissa.T, dtype=np.int32)  # [K_pre, K_post]
    a_rec = np.zeros((batch_size, n_latents), dtype=np.int64)  # [B, K]
    stop = _StopRegisters(batch_size, n_latents, n_steps, options)
    neuron_args = (bias, u_prior, model.leak_shift)
    step_args = (cdf, spec.u_min_int, spec.u_max_int, spec.sampler_shift)
    for t in range(n_steps + 1):
        step_states = absorb(image_states, np.uint64(t))  # [B]
        if t == 0:
            a_in = drive  # unused at step 0
        else:
            if events[t - 1].any():
                drive += dense_accumulate(model.ff, events[t - 1])
            lateral_input(z_steps[t - 1], rec_transposed, model.rec.exponent, a_rec)  # [B, K]
            a_in = shift_by_exponent(drive, model.ff.exponent) + a_rec  # [B, K]
        integrate_and_sample(u, a_in, *neuron_args, stop.active, step_states, *step_args, t > 0, z_steps[t])
        u_steps[t] = u
        stop.update(t, z_steps[t])
    recon = (z_steps.astype(np.float32) @ model.decoder_phi.T).astype(np.float32) if with_recon else None
    return ReferenceResult(z=z_steps, u=u_steps, recon=recon, last_step=stop.last_step, input_events=events)


class _StopRegisters:
    """The per-image stopping rule of ipvae.export.events, online: windowed counts and the stopped flags."""

    def __init__(self, batch_size: int, n_latents: int, n_steps: int, options: EventOptions) -> None:
        self.options = options
        self.active = np.ones(batch_size, dtype=bool)  # [B]
        self.last_step = np.full(batch_size, n_steps, dtype=np.int64)  # [B]
        if options.stops:
            self.window = np.zeros((batch_size, n_latents), dtype=np.int64)  # [B, K]
            self.previous = np.zeros((batch_size, n_latents), dtype=np.int64)

    def update(self, step: int, z: np.ndarray) -> None:
        if not self.options.stops:
            return
        self.window += z
        if step % self.options.stop_window:
            return
        if is_check_step(step, self.options):
            newly = converged(self.window, self.previous, self.options.stop_tolerance) & self.active
            self.last_step[newly] = step
            self.active &= ~newly
        self.previous, self.window = self.window, np.zeros_like(self.window)


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
    clamp: str | None = None,
) -> ReferenceResult:
    """Float-u dynamics (float64, unquantized weights and inputs) with the integer sampler's uniforms.

    u_t = clamp(u_{t-1} + lr (Phi^T D (x_t - Phi z_{t-1}) - b) - leak (u_{t-1} - u_prior)) (params.leak, 0: none);
    z_t by the inverse-CDF rule of ipvae.export.sampler with the exact rate exp(u_t). clamp=None follows the
    float model (params.float_clamp); clamp="soft" is the soft upper clamp, clamp="hard" the integer spec's
    saturation to [u_min, u_max].
    """
    clamp = params.float_clamp if clamp is None else clamp
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
            if params.leak:
                y = y - params.leak * (u - params.u_prior)  # [B, K] the restoring force toward the prior
            u = soft_clamp(y, params.u_min, params.u_max) if clamp == "soft" else np.clip(y, params.u_min, params.u_max)
        uniforms = uniform24_from_prefix(prefixes, t, neurons)  # [B, K]
        z_steps[t] = sample_counts_exact_rate(u, uniforms, params.max_spike_count)
        u_steps[t] = u
    recon = (z_steps.astype(np.float64) @ params.phi.T).astype(np.float32)  # [T+1, B, M]
    return ReferenceResult(z=z_steps, u=u_steps, recon=recon)
