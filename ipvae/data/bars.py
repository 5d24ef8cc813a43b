"""The bars problem: planted-dictionary data with a known ground truth (Foldiak 1990; Lucke & Sahani).

K_true = 2 * side atoms, each one horizontal or vertical bar of ones on a side x side grid; the counts
z ~ Poisson(n_active / K_true) per atom and sample (so about n_active bars per image), and
x = phi @ z + Normal(0, noise_std^2). It tests that a model recovers a dictionary it was not given.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ipvae.errors import IpvaeError

BARS_PER_SIDE = 2  # one horizontal and one vertical bar per row/column index
BAR_VALUE = 1.0
DEFAULT_SIDE = 8
DEFAULT_N_ACTIVE = 2.0
DEFAULT_NOISE_STD = 0.05


@dataclass(frozen=True)
class PlantedData:
    """Samples x [N, side*side] float32, their counts z [N, K_true] int64, the atoms phi [side*side, K_true]."""

    x: Tensor
    z: Tensor
    phi: Tensor


def bars_dictionary(side: int = DEFAULT_SIDE) -> np.ndarray:
    """phi [side*side, 2*side] float32: columns 0..side-1 horizontal bars (rows), then vertical bars (columns)."""
    atoms = np.zeros((BARS_PER_SIDE * side, side, side), dtype=np.float32)  # [K, side, side]
    for index in range(side):
        atoms[index, index, :] = BAR_VALUE  # horizontal bar in row `index`
        atoms[side + index, :, index] = BAR_VALUE  # vertical bar in column `index`
    return atoms.reshape(BARS_PER_SIDE * side, side * side).T.copy()  # [side*side, K]


def planted_dictionary_data(
    n_samples: int,
    side: int = DEFAULT_SIDE,
    n_active: float = DEFAULT_N_ACTIVE,
    noise_std: float = DEFAULT_NOISE_STD,
    seed: int = 0,
) -> PlantedData:
    """Draw n_samples bars images with Poisson counts per atom (see the module docstring)."""
    if n_samples < 0 or side < 1 or n_active < 0 or noise_std < 0:
        raise IpvaeError(
            f"planted_dictionary_data needs n_samples >= 0, side >= 1, n_active >= 0, noise_std >= 0; "
            f"got {n_samples}, {side}, {n_active}, {noise_std}."
        )
    rng = np.random.default_rng(seed)
    phi = bars_dictionary(side)  # [M, K]
    n_atoms = phi.shape[1]
    z = rng.poisson(n_active / n_atoms, size=(n_samples, n_atoms)).astype(np.int64)  # [N, K]
    noise = rng.normal(0.0, noise_std, size=(n_samples, side * side))  # [N, M]
    x = (z @ phi.T + noise).astype(np.float32)  # [N, M]
    return PlantedData(x=torch.from_numpy(x), z=torch.from_numpy(z), phi=torch.from_numpy(phi))
