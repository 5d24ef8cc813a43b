"""Bit-exact comparison of the Lava fixed_pt simulation with the integer reference."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Mismatch:
    """The first difference: step t, image (global index), neuron, and both sides' (z, u)."""

    step: int
    image: int
    neuron: int
    lava_z: int
    reference_z: int
    lava_u: int
    reference_u: int

    def describe(self) -> str:
        return (
            f"first difference at step t={self.step}, image {self.image}, neuron {self.neuron}: "
            f"lava z={self.lava_z} u={self.lava_u}, reference z={self.reference_z} u={self.reference_u}"
        )


@dataclass(frozen=True)
class ParityReport:
    """Outcome of comparing every z_t and u_t (t = 0..T) of every image and neuron."""

    identical: bool
    images: int
    steps: int
    neurons: int
    compared_values: int
    differing_values: int
    first: Mismatch | None

    def verdict(self) -> str:
        scope = f"{self.images} images x {self.steps + 1} steps (t=0..{self.steps}) x {self.neurons} neurons"
        if self.identical:
            return f"PARITY OK: spike counts and membrane potentials identical on {scope} ({self.compared_values} values)"
        return f"PARITY FAILED on {scope}: {self.differing_values} of {self.compared_values} values differ; {self.first.describe()}"


def compare_trajectories(lava_z, lava_u, reference_z, reference_u, image_offset: int = 0) -> ParityReport:
    """Compare z and u arrays [T+1, N, K] exactly; the first mismatch is the earliest step, then image, then neuron."""
    arrays = [np.asarray(a) for a in (lava_z, lava_u, reference_z, reference_u)]
    shape = arrays[0].shape
    for array in arrays[1:]:
        if array.shape != shape:
            raise ValueError(f"shapes differ: {[a.shape for a in arrays]}")
    lava_z, lava_u, reference_z, reference_u = (a.astype(np.int64) for a in arrays)
    differs = (lava_z != reference_z) | (lava_u != reference_u)  # [T+1, N, K]
    n_window, n_images, n_latents = shape
    first = None
    if differs.any():
        step, image, neuron = (int(i) for i in np.argwhere(differs)[0])  # C order: step, then image, then neuron
        first = Mismatch(
            step=step,
            image=image_offset + image,
            neuron=neuron,
            lava_z=int(lava_z[step, image, neuron]),
            reference_z=int(reference_z[step, image, neuron]),
            lava_u=int(lava_u[step, image, neuron]),
            reference_u=int(reference_u[step, image, neuron]),
        )
    differing = int((lava_z != reference_z).sum() + (lava_u != reference_u).sum())
    return ParityReport(
        identical=first is None,
        images=n_images,
        steps=n_window - 1,
        neurons=n_latents,
        compared_values=2 * differs.size,
        differing_values=differing,
        first=first,
    )
