"""Integer reference simulator: the software side of the parity tests (docs/fixed_point.md, section 6).

``run_reference`` is exact to the specification and vectorised over a batch of images:

    u_0 = u_prior_int;  z_0 = sample(u_0, step 0)
    for t = 1..T:  u_t = sat(u_{t-1} + dense(ff, x_t) + dense(rec, z_{t-1}) + self(z_{t-1}) + bias_int
                             - leak(u_{t-1} - u_prior_int))
                   z_t = sample(u_t, t)

with dense(W, s) = floor(sum_j m_ij s_j * 2**e_i) exactly as Lava's bit-accurate Dense computes it (for ff, the
row sums are held in the neuron's drive register and e_i is neuron i's exponent), self(z)_k = floor(s_k z_k 2**e_s)
the self-inhibition of a version-2 layout (0 in version 1, where the diagonal is inside rec) and
leak(d) = (d + 2**(n-1)) >> n for the model's leak_shift n (0 when n = 0: ipvae.export.spec.leak_term).
The neuron's step and sampler are the functions of the model's neuron (ipvae.export.neurons: ``model.neuron``
names it; the Poisson neuron's compiled kernel runs in their place, pinned to them by a test), the stopping
rule is ipvae.export.events.StopRegisters. Integer dot products run as float64 BLAS products, which are
exact while every partial sum stays below 2**53 (checked). ``run_float_reference`` is the float-u variant
(no quantization at all) that draws spikes with the same uniforms, for the high-precision-limit test.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ipvae.export.events import EventOptions, StopRegisters, sigma_delta_events, static_events
from ipvae.export.integer_model import FloatParams, IntegerModel
from ipvae.export.kernels import lateral_input
from ipvae.export.neurons.base import FloatNeuronParams, IntegerNeuronParams
from ipvae.export.neurons.registry import neuron_model
from ipvae.export.rng import absorb, key_prefix, uniform24_from_prefix
from ipvae.export.spec import QuantizedMatrix, shift_by_exponent

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
    neuron = neuron_model(model.neuron)
    params = IntegerNeuronParams.from_model(model)
    image_prefixes = _image_prefixes(spec.seed, image_offset, batch_size)  # [B, 1] absorb(absorb(0, seed), image)
    neurons = np.arange(n_latents, dtype=np.uint64)[None, :]  # [1, K]

    z_steps = np.empty((n_steps + 1, batch_size, n_latents), dtype=np.int16)  # [T+1, B, K]
    u_steps = np.empty((n_steps + 1, batch_size, n_latents), dtype=np.int32)  # [T+1, B, K]
    u = neuron.window_start(params.u_prior, (batch_size, n_latents))  # [B, K] int64
    drive = np.zeros((batch_size, n_latents), dtype=np.int64)  # [B, K] held ff row sums (mantissa units)
    rec_transposed = np.ascontiguousarray(model.rec.mantissa.T, dtype=np.int32)  # [K_pre, K_post]
    a_rec = np.zeros((batch_size, n_latents), dtype=np.int64)  # [B, K]
    stop = StopRegisters(batch_size, n_latents, n_steps, options)
    for t in range(n_steps + 1):
        if t > 0:
            if events[t - 1].any():
                drive += dense_accumulate(model.ff, events[t - 1])
            lateral_input(z_steps[t - 1], rec_transposed, model.rec.exponent, a_rec)  # [B, K] = dense_apply(rec, z)
            if model.self_inhibition is not None:
                a_rec += model.self_inhibition.term(z_steps[t - 1])  # [B, K] the diagonal, held apart
        if neuron.fused_int_step is not None:
            step_states = absorb(image_prefixes[:, 0], np.uint64(t))  # [B]
            neuron.fused_int_step(u, drive, a_rec, params, stop.active, step_states, t > 0, z_steps[t])
        else:
            stepped = neuron.int_step(u, drive, a_rec, params) if t > 0 else u  # [B, K]
            z = neuron.int_sample(stepped, uniform24_from_prefix(image_prefixes, t, neurons), params)  # [B, K]
            u, z_steps[t] = stop.hold(u, stepped, z)
        u_steps[t] = u
        stop.update(t, z_steps[t])
    recon = (z_steps.astype(np.float32) @ model.decoder_phi.T).astype(np.float32) if with_recon else None
    return ReferenceResult(z=z_steps, u=u_steps, recon=recon, last_step=stop.last_step, input_events=events)


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
    z_t by the inverse-CDF rule of ipvae.export.sampler with the exact rate exp(u_t) (the float step and sampler
    of the neuron params.neuron names, ipvae.export.neurons). clamp=None follows the
    float model (params.float_clamp); clamp="soft" is the soft upper clamp, clamp="hard" the integer spec's
    saturation to [u_min, u_max].
    """
    clamp = params.float_clamp if clamp is None else clamp
    if clamp not in CLAMP_MODES:
        raise ValueError(f"clamp must be one of {CLAMP_MODES}")
    x, is_static = _frames(np.asarray(x, dtype=np.float64), n_steps, "x")
    batch_size, n_latents = x.shape[-2], params.n_latents
    neuron = neuron_model(params.neuron)
    neuron_params = FloatNeuronParams(u_prior=params.u_prior, u_min=params.u_min, u_max=params.u_max,
                                      max_spike_count=params.max_spike_count, leak=params.leak,
                                      hard_upper_clamp=clamp == "hard")
    prefixes = _image_prefixes(seed, image_offset, batch_size)  # [B, 1]
    neurons = np.arange(n_latents, dtype=np.uint64)[None, :]  # [1, K]
    weighted_phi = params.phi * params.precision[:, None]  # [M, K] = D Phi

    z_steps = np.empty((n_steps + 1, batch_size, n_latents), dtype=np.int16)  # [T+1, B, K]
    u_steps = np.empty((n_steps + 1, batch_size, n_latents), dtype=np.float64)  # [T+1, B, K]
    u = neuron.window_start(params.u_prior.astype(np.float64), (batch_size, n_latents))  # [B, K]
    for t in range(n_steps + 1):
        if t > 0:
            x_t = x if is_static else x[t - 1]  # [B, M]
            residual = x_t - z_steps[t - 1].astype(np.float64) @ params.phi.T  # [B, M]
            drive = params.step_size * (residual @ weighted_phi - params.bias)  # [B, K]
            u = neuron.float_step(u, (drive,), neuron_params)
        uniforms = uniform24_from_prefix(prefixes, t, neurons)  # [B, K]
        z_steps[t] = neuron.float_sample(u, uniforms, neuron_params)
        u_steps[t] = u
    recon = (z_steps.astype(np.float64) @ params.phi.T).astype(np.float32)  # [T+1, B, M]
    return ReferenceResult(z=z_steps, u=u_steps, recon=recon)
