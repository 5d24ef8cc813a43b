"""Typed values of the integer model: the float source parameters and the quantized result."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ipvae.export.neurons.poisson import NAME as POISSON
from ipvae.export.spec import NO_LEAK_SHIFT, FixedPointSpec, QuantizedMatrix, SelfInhibition, SpecError, check_leak_shift


@dataclass(frozen=True, eq=False)
class FloatParams:
    """The float iP-VAE's inference parameters as float64 numpy arrays.

    phi [M, K], precision [M] (1/sigma^2), bias [K] (b > 0), step_size (lr > 0), u_prior [K];
    u_min, u_max, max_spike_count, hard_upper_clamp (the float model's upper clamp; the integer spec
    always saturates), leak (the fraction of u - u_prior removed per step, ModelConfig.leak; 0: none),
    neuron (the name of the neuron model, ipvae.export.neurons.registry; the iP-VAE's is POISSON).
    Derived: A = lr Phi^T D [K, M], L = lr Phi^T D Phi [K, K], c = lr b [K].
    """

    phi: np.ndarray
    precision: np.ndarray
    bias: np.ndarray
    step_size: float
    u_prior: np.ndarray
    u_min: float
    u_max: float
    max_spike_count: int
    hard_upper_clamp: bool = False
    leak: float = 0.0
    neuron: str = POISSON

    @classmethod
    def from_inference_params(cls, params) -> "FloatParams":
        """From ``train`` InferenceParams (torch tensors) or any object with the same attributes."""

        def as_array(value) -> np.ndarray:
            if hasattr(value, "detach"):
                value = value.detach().cpu().double().numpy()
            return np.asarray(value, dtype=np.float64)

        return cls(
            phi=as_array(params.phi),
            precision=as_array(params.precision),
            bias=as_array(params.bias),
            step_size=float(as_array(params.step_size)),
            u_prior=as_array(params.u_prior),
            u_min=float(params.u_min),
            u_max=float(params.u_max),
            max_spike_count=int(params.max_spike_count),
            hard_upper_clamp=bool(getattr(params, "hard_upper_clamp", False)),
            leak=float(getattr(params, "leak", 0.0)),  # models from before ModelConfig.leak have none
        )

    @property
    def float_clamp(self) -> str:
        """The float model's clamp as ``ipvae.export.reference.run_float_reference`` names it."""
        return "hard" if self.hard_upper_clamp else "soft"

    @property
    def n_inputs(self) -> int:
        return self.phi.shape[0]

    @property
    def n_latents(self) -> int:
        return self.phi.shape[1]

    def feedforward(self) -> np.ndarray:
        """A = lr * Phi^T D, float64 [K, M]."""
        return self.step_size * (self.phi * self.precision[:, None]).T

    def lateral(self) -> np.ndarray:
        """L = lr * Phi^T D Phi, float64 [K, K]."""
        return self.feedforward() @ self.phi

    def drive(self) -> np.ndarray:
        """c = lr * b, float64 [K]."""
        return self.step_size * self.bias


@dataclass(frozen=True, eq=False)
class IntegerModel:
    """Everything the integer dynamics need (docs/fixed_point.md).

    ff: mantissas [K, M] + exponent (one, or one per neuron [K]), u-LSBs per input payload unit.
    rec: mantissas [K, K] + exponent, u-LSBs per spike (the lateral term, already negated: -L).
    self_inhibition: the diagonal of -L held apart ([K] mantissas, own exponent; rec's diagonal is then 0),
    or None (format version 1 layout: the diagonal is inside rec).
    bias: int32 [K], u-LSBs added every step.  u_prior: int32 [K], the initial potential (and the
    potential the leak pulls towards).  leak_shift: n, the leak 2**-n (0: no leak; docs/fixed_point.md 6.1).
    cdf: uint32 [n_idx, cap], the sampler table.  input_scale: s_x, real input per payload unit.
    decoder_phi: float32 [M, K] (recon = Phi z).  decoder: quantized Phi (energy accounting only).
    n_steps: the default number of inference steps T.
    neuron: the name of the neuron model whose functions run the dynamics (ipvae.export.neurons.registry),
    stored in the export as ``layer/1/neuron/type``.
    """

    spec: FixedPointSpec
    input_scale: float
    ff: QuantizedMatrix
    rec: QuantizedMatrix
    bias: np.ndarray
    u_prior: np.ndarray
    cdf: np.ndarray
    decoder_phi: np.ndarray
    decoder: QuantizedMatrix
    n_steps: int
    leak_shift: int = NO_LEAK_SHIFT
    neuron: str = POISSON
    self_inhibition: SelfInhibition | None = None

    def __post_init__(self) -> None:
        check_leak_shift(self.leak_shift)
        if self.self_inhibition is not None:
            if self.self_inhibition.mantissa.shape != (self.n_latents,):
                raise SpecError(f"self-inhibition has {self.self_inhibition.mantissa.shape[0]} neurons, "
                                f"the model {self.n_latents}")
            if np.any(np.diag(self.rec.mantissa)):
                raise SpecError("the lateral matrix's diagonal must be 0 when the self-inhibition is held apart")

    def lateral_synapses(self) -> np.ndarray:
        """Every lateral synapse as one [K, K] mantissa matrix, the self-inhibition on the diagonal (for counting
        synapses and synaptic operations: the diagonal costs one operation per spike wherever it is held)."""
        if self.self_inhibition is None:
            return self.rec.mantissa
        full = self.rec.mantissa.copy()  # [K, K]
        np.fill_diagonal(full, self.self_inhibition.mantissa)
        return full

    @property
    def n_inputs(self) -> int:
        return self.ff.shape[1]

    @property
    def n_latents(self) -> int:
        return self.ff.shape[0]
