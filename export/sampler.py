"""Integer-exact Poisson spike counts by inverse-CDF table lookup (docs/fixed_point.md, section 4).

    idx = clip((u_int - u_min_int) >> (F - G), 0, n_idx - 1)
    cdf[idx, n] = floor(P(N <= n | lambda_idx) * 2**24), n = 0..cap-1,  N ~ Poisson(lambda_idx)
    lambda_idx = exp(u_min_int / 2**F + (idx + 0.5) * 2**-G)
    z = #{n in 0..cap-1 : U >= cdf[idx, n]}                 (U = uniform24(...), so z <= cap)

The table is computed once here (scipy) and stored in the export file; every implementation reads
the stored integers, so scipy's last-ulp behaviour never matters for bit-exactness.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import poisson

from ipvae.export.spec import RNG_BITS, FixedPointSpec

RNG_SCALE = float(1 << RNG_BITS)
HALF_BIN = 0.5


def bin_log_rates(spec: FixedPointSpec) -> np.ndarray:
    """Log rate at the centre of each sampler bin, float64 [n_idx]."""
    idx = np.arange(spec.n_sampler_bins, dtype=np.float64)
    return spec.u_min + (idx + HALF_BIN) * 2.0 ** (-spec.sampler_frac_bits)


def build_cdf_table(spec: FixedPointSpec) -> np.ndarray:
    """cdf[idx, n] = floor(P(N <= n | lambda_idx) * 2**24) as uint32 [n_idx, cap]."""
    rates = np.exp(bin_log_rates(spec))  # [n_idx]
    counts = np.arange(spec.max_spike_count, dtype=np.float64)  # [cap]
    probabilities = poisson.cdf(counts[None, :], rates[:, None])  # [n_idx, cap]
    table = np.floor(probabilities * RNG_SCALE)
    return np.maximum.accumulate(table, axis=1).astype(np.uint32)  # guard monotonicity against ulp noise


def table_rows(u_int: np.ndarray, u_min_int: int, sampler_shift: int, n_rows: int) -> np.ndarray:
    """Table row of each potential: clip((u - u_min_int) >> (F - G), 0, n_rows - 1), int64 of u's shape."""
    offset = u_int.astype(np.int64) - u_min_int
    return np.clip(offset >> sampler_shift, 0, n_rows - 1)


def lookup_counts(u_int: np.ndarray, uniforms: np.ndarray, cdf: np.ndarray, u_min_int: int,
                  sampler_shift: int) -> np.ndarray:
    """Spike counts z = #{n : U >= cdf[row(u), n]} for potentials u_int and draws U of the same shape.

    The one definition of the table lookup (the integer reference's compiled kernel is pinned to it).
    Table rows are non-decreasing (built so here, validated on read), so a draw below its row's first entry
    counts 0 and only the others are compared with the whole row. Returns int16 of the shape of u_int, 0..cap.
    """
    rows = table_rows(u_int, u_min_int, sampler_shift, cdf.shape[0])  # [...]
    draws = uniforms.astype(np.int64)
    counts = np.zeros(np.shape(u_int), dtype=np.int16)
    fires = np.nonzero(draws >= cdf[rows, 0])  # where z >= 1
    counts[fires] = (draws[fires][:, None] >= cdf[rows[fires]]).sum(axis=-1, dtype=np.int16)
    return counts


def sampler_index(u_int: np.ndarray, spec: FixedPointSpec) -> np.ndarray:
    """table_rows with the spec's bounds: clip((u - u_min_int) >> (F - G), 0, n_idx - 1)."""
    return table_rows(u_int, spec.u_min_int, spec.sampler_shift, spec.n_sampler_bins)


def sample_counts(u_int: np.ndarray, uniforms: np.ndarray, cdf: np.ndarray, spec: FixedPointSpec) -> np.ndarray:
    """lookup_counts with the spec's bounds: z = #{n : U >= cdf[idx(u), n]}, int16 of the shape of u_int."""
    return lookup_counts(u_int, uniforms, cdf, spec.u_min_int, spec.sampler_shift)


def poisson_cdf_rows(log_rate: np.ndarray, cap: int) -> np.ndarray:
    """P(N <= n | exp(u)) for n = 0..cap-1 by the pmf recursion p_n = p_{n-1} * rate / n; [..., cap] float64."""
    rate = np.exp(np.asarray(log_rate, dtype=np.float64))[..., None]  # [..., 1]
    steps = np.concatenate([np.ones(1), 1.0 / np.arange(1, cap)])  # [cap]: 1, 1/1, 1/2, ...
    factors = np.concatenate([np.exp(-rate), np.broadcast_to(rate, rate.shape[:-1] + (cap - 1,))], axis=-1)
    pmf = np.cumprod(factors * steps, axis=-1)  # [..., cap]: e^-r, e^-r r, e^-r r^2/2, ...
    return np.minimum(np.cumsum(pmf, axis=-1), 1.0)


def sample_counts_exact_rate(log_rate: np.ndarray, uniforms: np.ndarray, cap: int) -> np.ndarray:
    """The same inverse-CDF rule with the exact rate exp(u) of a float potential (no bins).

    z = #{n in 0..cap-1 : U >= floor(P(N <= n | exp(u)) * 2**24)}; int16 of the shape of log_rate.
    Used by the float reference (the high-precision limit of the integer sampler).
    """
    thresholds = np.floor(poisson_cdf_rows(log_rate, cap) * RNG_SCALE)  # [..., cap]
    return (uniforms[..., None].astype(np.float64) >= thresholds).sum(axis=-1, dtype=np.int16)
