"""Compiled inner loop of the integer reference (numba): integrate, saturate and sample one step.

The arithmetic is docs/fixed_point.md sections 5 and 6 for one step of B images:

    u   <- clip(u + a_ff + a_rec + bias - leak, u_min_int, u_max_int)  (skipped at step 0 and for stopped images)
    leak = (u - u_prior + 2**(n-1)) >> n  with u the potential before the step (0 when n = 0: no leak)
    idx  = clip((u - u_min_int) >> (F - G), 0, n_idx - 1)
    U    = mix64((step_state[b] ^ k) + GOLDEN) >> 40                    (ipvae.export.rng: the neuron absorb)
    z    = #{n : U >= cdf[idx, n]}                                      (rows are non-decreasing: stop at the first miss)

``step_state[b]`` = absorb(absorb(absorb(0, seed), image_b), step) comes from ipvae.export.rng (numpy).
These kernels are an optimisation, not a definition: the arithmetic is defined once by the plain functions
of ipvae.export.neurons.poisson (int_step, int_sample), ipvae.export.rng and ipvae.export.reference.dense_apply,
and tests/test_export_kernels.py pins the kernels to them bit for bit on random states (the Poisson neuron's
``fused_int_step`` calls integrate_and_sample). The early exit of the sampler loop relies on non-decreasing
table rows, which ipvae.export.sampler builds and ipvae.export.hdf5.read_model validates.
"""

from __future__ import annotations

import numba
import numpy as np

from ipvae.export.rng import GOLDEN, MIX_MULT_1, MIX_MULT_2, MIX_SHIFTS, OUTPUT_SHIFT

_SHIFT_A, _SHIFT_B, _SHIFT_C = (np.uint64(s) for s in MIX_SHIFTS)
_GOLDEN, _MULT_1, _MULT_2, _OUTPUT_SHIFT = np.uint64(GOLDEN), np.uint64(MIX_MULT_1), np.uint64(MIX_MULT_2), np.uint64(OUTPUT_SHIFT)


@numba.njit(cache=True, nogil=True)
def _uniform(step_state: np.uint64, neuron: np.uint64) -> np.int64:
    z = (step_state ^ neuron) + _GOLDEN
    z = (z ^ (z >> _SHIFT_A)) * _MULT_1
    z = (z ^ (z >> _SHIFT_B)) * _MULT_2
    z = z ^ (z >> _SHIFT_C)
    return np.int64(z >> _OUTPUT_SHIFT)


@numba.njit(cache=True, nogil=True)
def integrate_and_sample(u, a_in, bias, u_prior, leak_shift, active, step_state, cdf, u_min, u_max, sampler_shift,
                         integrate, z_out):
    """One step for B images in place: u int64 [B, K], a_in int64 [B, K] (a_ff + a_rec), bias int64 [K],
    u_prior int64 [K], leak_shift n (0: no leak), active bool [B], step_state uint64 [B],
    cdf int64 [n_idx, cap]; writes z_out int16 [B, K].

    integrate=False: step 0 (sample u as it is). Stopped images keep u and get z = 0.
    """
    n_images, n_latents = u.shape
    last_row = cdf.shape[0] - 1
    cap = cdf.shape[1]
    leaks = leak_shift > 0
    leak_half = np.int64(1) << max(leak_shift - 1, 0)  # 2**(n-1): round half up before the shift
    shift = np.int64(leak_shift)
    for b in range(n_images):
        if not active[b]:
            for k in range(n_latents):
                z_out[b, k] = 0
            continue
        state = step_state[b]
        for k in range(n_latents):
            value = u[b, k]
            if integrate:
                leak = (value - u_prior[k] + leak_half) >> shift if leaks else np.int64(0)
                value = value + a_in[b, k] + bias[k] - leak
                value = min(max(value, u_min), u_max)
                u[b, k] = value
            row = (value - u_min) >> sampler_shift
            row = min(max(row, 0), last_row)
            draw = _uniform(state, np.uint64(k))
            count = 0
            while count < cap and draw >= cdf[row, count]:
                count += 1
            z_out[b, k] = count


@numba.njit(cache=True, nogil=True)
def lateral_input(z, rec_transposed, exponent, out):
    """a_rec = floor((m_rec z) * 2**exponent) per image, event-driven: only non-zero counts add their row.

    z int16 [B, K] (counts of the previous step), rec_transposed int32 [K, K] (row j = the weights of
    presynaptic neuron j), out int64 [B, K]. The row sum is exact in int32 (the exporter guarantees
    the pre-shift accumulator fits, docs/fixed_point.md 4.3), then shifted once as Lava's Dense does.
    """
    n_images, n_latents = z.shape
    accumulator = np.zeros(n_latents, dtype=np.int32)
    for b in range(n_images):
        accumulator[:] = 0
        for j in range(n_latents):
            count = np.int32(z[b, j])
            if count != 0:
                for k in range(n_latents):
                    accumulator[k] += count * rec_transposed[j, k]
        for k in range(n_latents):
            value = np.int64(accumulator[k])
            out[b, k] = value << exponent if exponent >= 0 else value >> -exponent
