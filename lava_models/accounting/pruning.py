"""Magnitude pruning of an exported integer model's synapses (what the chip would store and run).

A pruned synapse is a zero mantissa: no synapse on the chip (``Fanouts.from_integer_model`` and
``ipvae plan`` count only non-zero mantissas), and the integer reference runs the pruned model exactly.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ipvae.export.spec import QuantizedMatrix


def prune_smallest(matrix: QuantizedMatrix, fraction: float) -> QuantizedMatrix:
    """Zero the ``fraction`` of non-zero synapses with the smallest effective magnitude |m| 2**e (ties broken by
    position)."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"pruning fraction must be in [0, 1], got {fraction}")
    mantissa = matrix.mantissa.copy()  # [rows, cols]
    flat = mantissa.reshape(-1)
    nonzero = np.flatnonzero(flat)  # [n_kept]
    n_pruned = int(round(fraction * nonzero.size))
    magnitude = np.abs(matrix.dequantize()).reshape(-1)  # effective weights: rows may have their own exponents
    order = np.argsort(magnitude[nonzero], kind="stable")  # smallest first, earlier position first on ties
    flat[nonzero[order[:n_pruned]]] = 0
    return dataclasses.replace(matrix, mantissa=mantissa)


def prune_model(model, *, lateral: float = 0.0, feedforward: float = 0.0):
    """The integer model with the smallest lateral and feed-forward synapses removed (decoder untouched; the
    self-inhibition held apart in the neurons is kept)."""
    return dataclasses.replace(model, rec=prune_smallest(model.rec, lateral), ff=prune_smallest(model.ff, feedforward))
