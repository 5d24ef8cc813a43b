"""The information rate of a code in bits per image: the x axis of the rate-distortion figure in bits.

Definition (the same for every model of the comparison, and for PCA):

    bits per image = sum over units k of H_k,  H_k = -sum_v p_k(v) log2 p_k(v)

where p_k is the plug-in (empirical) distribution of unit k's value over the N test images. This is the length
of the code under an ideal entropy coder per unit whose tables are fit to the test images themselves; the
sum of the marginal entropies is at least the joint entropy of the code, so it is an upper bound on the length
of the best joint code of the same symbols (units that carry the same information are counted twice).

The symbols of a unit:

* integer-valued codes (the iP-VAE's and the amortized P-VAE's spike counts, the integer export's counts)
  are taken as they are: a count is already a discrete symbol, and no quantization of it is needed to
  transmit it exactly;
* real-valued codes (iG-VAE samples, iG_relu codes, amortized G-VAE samples, LCA and predictive-coding codes,
  PCA projections) are rounded to the nearest of ``QUANTIZATION_LEVELS`` = 2^8 points spread evenly over that
  unit's observed range [min, max] on the test images. A real number has no finite entropy, so some grid is
  needed; 8 bits is the width the integer export gives its weights and inputs (the deployed iP-VAE's
  numbers), so a real code is charged as if it were sent at the export's precision. A unit then costs at most
  8 bits, a constant unit 0. Rounding moves a value by at most range / (2 (2^8 - 1)), 0.2 % of the unit's
  range (ipvae.paper.pca reports the R^2 of PCA's rounded projections beside the exact ones).

A code counts as integer-valued when every one of its values [N, K] is a whole number (``is_integer_valued``);
the experiment passes each model's whole code, so a model's units are all treated alike.

Caveat of the plug-in estimate: with N images a unit cannot show more than log2(N) bits, and the estimate
falls short of the entropy by about (m - 1) / (2 N ln 2) bits for a unit that takes m values (Miller-Madow):
compare models on the same test images, and read a unit near log2(N) bits as capped rather than measured.

    unit_entropies(codes [N, K]) -> [K] bits;   bits_per_image(codes [N, K]) -> float
"""

from __future__ import annotations

import numpy as np

QUANTIZATION_BITS = 8  # the integer export's weight and input width
QUANTIZATION_LEVELS = 2**QUANTIZATION_BITS  # grid points over a real-valued unit's observed range


def is_integer_valued(codes: np.ndarray) -> bool:
    """True when every value is a whole number (spike counts, however stored): such codes are not quantized."""
    values = np.asarray(codes)
    return bool(np.issubdtype(values.dtype, np.integer) or np.all(values == np.round(values)))


def quantize_to_grid(codes: np.ndarray, levels: int = QUANTIZATION_LEVELS) -> np.ndarray:
    """Each value of codes [N, K] as the index (0..levels - 1) of the nearest of ``levels`` points spread evenly
    over its unit's (column's) observed range; a constant unit maps to 0.  Returns [N, K] int64."""
    values = np.asarray(codes, dtype=np.float64)  # [N, K]
    low = values.min(axis=0)  # [K]
    span = values.max(axis=0) - low  # [K]
    scale = np.divide(levels - 1, span, out=np.zeros_like(span), where=span > 0)  # [K] grid steps per unit of value
    return np.rint((values - low) * scale).astype(np.int64)  # [N, K]


def round_to_grid(codes: np.ndarray, levels: int = QUANTIZATION_LEVELS) -> np.ndarray:
    """codes [N, K] with each value replaced by its grid point (``quantize_to_grid``): what the rate pays for."""
    values = np.asarray(codes, dtype=np.float64)  # [N, K]
    low = values.min(axis=0)  # [K]
    step = (values.max(axis=0) - low) / (levels - 1)  # [K] grid spacing (0 for a constant unit)
    return low + quantize_to_grid(values, levels) * step  # [N, K]


def plugin_entropy(symbols: np.ndarray) -> float:
    """Entropy in bits of the empirical distribution of the symbols [N] (any comparable values)."""
    _, counts = np.unique(np.asarray(symbols), return_counts=True)
    probabilities = counts / counts.sum()
    return float(-(probabilities * np.log2(probabilities)).sum())


def code_symbols(codes: np.ndarray) -> np.ndarray:
    """The symbols [N, K] the rate counts: the values themselves if all are whole numbers, else grid indices."""
    values = np.asarray(codes)
    return values if is_integer_valued(values) else quantize_to_grid(values)


def unit_entropies(codes: np.ndarray) -> np.ndarray:
    """Plug-in entropy in bits [K] of each unit (column) of codes [N, K] over the N images (module docstring)."""
    values = np.asarray(codes)
    if values.ndim != 2 or values.shape[0] == 0:
        raise ValueError(f"codes must be [N images, K units] with N >= 1, got shape {values.shape}")
    if not np.all(np.isfinite(values)):
        raise ValueError("codes hold NaN or infinite values; their rate is undefined")
    symbols = code_symbols(values)  # [N, K]
    return np.array([plugin_entropy(symbols[:, unit]) for unit in range(symbols.shape[1])])  # [K]


def bits_per_image(codes: np.ndarray) -> float:
    """Sum over units of their plug-in entropies: the code's rate in bits per image (module docstring)."""
    return float(unit_entropies(codes).sum())
