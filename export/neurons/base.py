"""What a neuron model is: plain functions over numpy arrays, and the parameters they read.

A neuron model (``NeuronModel``) is one value holding the functions every backend calls for one step of
one population of B images x K neurons:

- ``build_table(spec)``: the sampler table the export stores (``layer/1/neuron/cdf``, uint32 [n_idx, cap]);
- ``window_start(u_prior, shape)``: the potential u [B, K] at window step 0 (the drive register restarts at 0);
- ``float_step(u, inputs, params)``: u after one step of the float dynamics; ``inputs`` are the terms
  added to u, summed in the order given (the float reference passes one, the Lava float graph three);
- ``float_sample(u, uniforms, params)``: spike counts [B, K] of float potentials for the uniforms U;
- ``int_step(u, drive, a_rec, params)``: u after one step of the integer dynamics, from the held
  feed-forward row sums ``drive`` (mantissa units, before e_ff) and the lateral term ``a_rec`` (the lateral
  Dense output plus, when the export holds it apart, the self-inhibition: ipvae.export.spec.self_inhibition_term);
- ``int_sample(u, uniforms, params)``: spike counts [B, K] of integer potentials for the uniforms U;
- ``fused_int_step`` (optional): a compiled form of int_step + int_sample for the integer reference
  (ipvae.export.kernels), pinned to the plain functions by tests/test_export_kernels.py; None: the
  reference calls the plain functions.

``params`` is a FloatNeuronParams / IntegerNeuronParams or any object with the same attributes (the Lava
ProcessModels pass themselves: their Vars and run constants carry those names). The integer functions form
their sums in int64 whatever the integer width of the stored arrays.

The uniforms U = uniform24(seed, image, step, neuron) (ipvae.export.rng) and the stopping rule
(ipvae.export.events.StopRegisters) are the same for every neuron model. Models are registered by name
in ipvae.export.neurons.registry; the name is what the export file stores in ``layer/1/neuron/type``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np


@dataclass(frozen=True, eq=False)
class FloatNeuronParams:
    """What a float step reads: u_prior [K] (start of a window, target of the leak), the clamp bounds,
    the spike-count cap, the leak (fraction of u - u_prior removed per step; 0: none) and the upper clamp
    (hard saturation at u_max, or the soft clamp u_max - softplus(u_max - y))."""

    u_prior: np.ndarray
    u_min: float
    u_max: float
    max_spike_count: int
    leak: float = 0.0
    hard_upper_clamp: bool = False


@dataclass(frozen=True, eq=False)
class IntegerNeuronParams:
    """What an integer step reads (u-LSBs): bias [K], u_prior [K], the saturation bounds, the leak shift n
    (0: none), the feed-forward exponent e_ff applied to the held drive (one int, or int64 [K]: one per
    neuron), the sampler table cdf [n_idx, cap] and the shift F - G from u-LSBs to table rows."""

    bias: np.ndarray
    u_prior: np.ndarray
    u_min: int
    u_max: int
    leak_shift: int
    ff_exponent: int | np.ndarray
    cdf: np.ndarray
    sampler_shift: int

    @classmethod
    def from_model(cls, model) -> "IntegerNeuronParams":
        """From an ipvae.export.integer_model.IntegerModel (the arrays as int64)."""
        spec = model.spec
        return cls(
            bias=model.bias.astype(np.int64),
            u_prior=model.u_prior.astype(np.int64),
            u_min=int(spec.u_min_int),
            u_max=int(spec.u_max_int),
            leak_shift=int(model.leak_shift),
            ff_exponent=model.ff.exponent,  # an int, or int64 [K] (QuantizedMatrix normalises both)
            cdf=np.ascontiguousarray(model.cdf, dtype=np.int64),
            sampler_shift=int(spec.sampler_shift),
        )


@dataclass(frozen=True, eq=False)
class NeuronModel:
    """One neuron model: its name (the export's ``neuron/type``) and its plain step functions (module docstring)."""

    name: str
    build_table: Callable
    window_start: Callable
    float_step: Callable
    float_sample: Callable
    int_step: Callable
    int_sample: Callable
    fused_int_step: Optional[Callable] = None
