"""ProcessModels of the PoissonNeuron: ``floating_pt`` (float dynamics) and ``fixed_pt`` (bit-exact).

Both share the window protocol (docs/fixed_point.md, sections 6.2 and 11): global timestep
``time_step`` (1-based, continuing across ``run`` calls of one runtime) belongs to window
``n = (time_step - 1) // (T + 1)`` at window step ``(time_step - 1) % (T + 1)``; row b of the
population holds image ``image_offset + n B + b``. Window step 0 resets u to u_prior and the drive
register to 0 and discards what arrives; the stopping rule (ipvae.export.events.StopRegisters) freezes
converged rows.

The arithmetic is not written here: each step calls the functions of the neuron model the process names
(``neuron``, default POISSON; ipvae.export.neurons), the same functions the integer and float references
call. These models only move data between Lava's ports and those functions.
"""

from __future__ import annotations

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from ipvae.export.events import EventOptions, StopRegisters
from ipvae.export.neurons.poisson import NAME as POISSON
from ipvae.export.neurons.registry import neuron_model
from ipvae.export.rng import RNG_BITS, key_prefix, uniform24_from_prefix
from ipvae.export.spec import NO_LEAK_SHIFT, self_inhibition_term
from ipvae.lava.proc.poisson.process import PoissonNeuron

STATE_PRECISION = 24  # u is a 24-bit state on the chip (docs/fixed_point.md, section 2)
ACCUMULATOR_PRECISION = 32  # Dense outputs arrive on int32 channels
TABLE_PRECISION = RNG_BITS + 1  # cdf entries are 0..2**24 inclusive
EXPONENT_PRECISION = 6  # signed weight exponents -31..31
COUNT_PRECISION = 8  # spike counts 0..255


class AbstractPyPoissonNeuronModel(PyLoihiProcessModel):
    """Window bookkeeping, the counter-based uniforms and the stopping rule shared by both models.

    Subclasses implement ``integrate(u, drive, a_in)`` (u after a step) and ``sample(u, draws)`` (counts)
    by calling their neuron model's functions.
    """

    def __init__(self, proc_params: dict) -> None:
        super().__init__(proc_params)
        self.n_steps: int = proc_params["n_steps"]
        self.cap: int = proc_params["max_spike_count"]
        self.seed: int = proc_params["seed"]
        self.image_offset: int = proc_params["image_offset"]
        self.neuron = neuron_model(proc_params.get("neuron", POISSON))
        self.batch, n_latents = proc_params["shape"]
        stop_options = EventOptions(stop_window=proc_params["stop_window"],
                                    stop_tolerance=proc_params["stop_tolerance"])
        self.stop = StopRegisters(self.batch, n_latents, self.n_steps, stop_options)
        self._neurons = np.arange(n_latents, dtype=np.uint64)[None, :]  # [1, K]
        self._prefix_window = -1
        self._prefix = None

    def window_position(self) -> tuple[int, int]:
        """(step t in 0..T, window index n) of the current timestep."""
        elapsed = self.time_step - 1
        window = self.n_steps + 1
        return elapsed % window, elapsed // window

    def uniforms(self, window: int, step: int) -> np.ndarray:
        """U[b, k] = uniform24(seed, image of row b, step, k), uint32 [B, K]; the window's key prefixes are cached."""
        if window != self._prefix_window:
            images = self.image_offset + window * self.batch + np.arange(self.batch, dtype=np.uint64)  # [B]
            self._prefix = key_prefix(self.seed, images)[:, None]  # [B, 1]
            self._prefix_window = window
        return uniform24_from_prefix(self._prefix, step, self._neurons)

    def run_spk(self) -> None:
        a_in = self.a_in.recv()  # [B, K] lateral input
        drive_in = self.drive_in.recv()  # [B, K] feed-forward row sums of input events
        step, window = self.window_position()
        if step == 0:  # what arrived is the previous window's traffic: discarded
            u = self.neuron.window_start(self.u_prior, self.u.shape)
            self.drive = np.zeros_like(self.drive)
            self.stop.reset()
        else:
            self.drive = self.drive + drive_in
            u = self.integrate(self.u, self.drive, a_in)
        z = self.sample(u, self.uniforms(window, step))  # [B, K]
        u, z = self.stop.hold(self.u, u, z)
        self.stop.update(step, z)
        self.u = u.astype(self.u.dtype)
        self.z_last = z.astype(self.z_last.dtype)
        self.s_out.send(z)
        self.u_out.send(self.u)


@implements(proc=PoissonNeuron, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyPoissonNeuronModelFloat(AbstractPyPoissonNeuronModel):
    """Float dynamics of the iP-VAE (the PyTorch model's update, float64): the neuron model's float_step and
    float_sample. For POISSON:

    u := max(u_min, u_max - softplus(u_max - (u + a_in + bias - leak (u - u_prior))));
    z = #{n < cap : U >= floor(P(N <= n) 2**24)}
    with N ~ Poisson(exp(u)): inverse-CDF sampling of min(Poisson(exp(u)), cap) at the exact rate.
    """

    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    drive_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    u_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    u: np.ndarray = LavaPyType(np.ndarray, float)
    drive: np.ndarray = LavaPyType(np.ndarray, float)
    u_prior: np.ndarray = LavaPyType(np.ndarray, float)
    bias: np.ndarray = LavaPyType(np.ndarray, float)
    cdf: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=TABLE_PRECISION)
    ff_exponent: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=EXPONENT_PRECISION)  # unused (float)
    self_weight: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=ACCUMULATOR_PRECISION)  # unused (float)
    z_last: np.ndarray = LavaPyType(np.ndarray, float)

    def __init__(self, proc_params: dict) -> None:
        super().__init__(proc_params)
        self.u_min = float(proc_params["u_min"])
        self.u_max = float(proc_params["u_max"])
        self.hard_upper_clamp = bool(proc_params.get("hard_upper_clamp", False))
        self.leak = float(proc_params.get("leak", 0.0))

    @property
    def max_spike_count(self) -> int:
        return self.cap

    # The model is its own FloatNeuronParams: u_prior, u_min, u_max, max_spike_count, leak, hard_upper_clamp.
    def integrate(self, u: np.ndarray, drive: np.ndarray, a_in: np.ndarray) -> np.ndarray:
        return self.neuron.float_step(u, (drive, a_in, self.bias), self)  # [B, K]

    def sample(self, u: np.ndarray, draws: np.ndarray) -> np.ndarray:
        return self.neuron.float_sample(u, draws, self).astype(np.float64)  # [B, K]


@implements(proc=PoissonNeuron, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyPoissonNeuronModelFixed(AbstractPyPoissonNeuronModel):
    """Integer dynamics of docs/fixed_point.md (bit-exact to ipvae.export.reference.run_reference): the neuron
    model's int_step and int_sample. For POISSON:

    u := clip(u + ff(drive) + a_in + self(z_last) + bias - leak, u_min, u_max) (exact int64 sum, then saturation),
    with ff(drive) = floor(drive 2**ff_exponent_k), self(z_last) = floor(self_weight_k z_last 2**self_exponent)
    (ipvae.export.spec.self_inhibition_term) and
    leak = (u - u_prior + 2**(n-1)) >> n for leak_shift n >= 1 and 0 for n = 0 (ipvae.export.spec.leak_term);
    z = #{n < cap : U >= cdf[clip((u - u_min) >> (F - G), 0, n_idx - 1), n]}.
    """

    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=ACCUMULATOR_PRECISION)
    drive_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=ACCUMULATOR_PRECISION)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=ACCUMULATOR_PRECISION)
    u_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=STATE_PRECISION)
    u: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=STATE_PRECISION)
    drive: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=ACCUMULATOR_PRECISION)
    u_prior: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=STATE_PRECISION)
    bias: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=ACCUMULATOR_PRECISION)
    cdf: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=TABLE_PRECISION)
    ff_exponent: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=EXPONENT_PRECISION)  # [K]
    self_weight: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=ACCUMULATOR_PRECISION)  # [K]
    z_last: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=COUNT_PRECISION)  # [B, K]

    def __init__(self, proc_params: dict) -> None:
        super().__init__(proc_params)
        self.u_min = int(proc_params["u_min"])
        self.u_max = int(proc_params["u_max"])
        self.self_exponent = int(proc_params.get("self_exponent", 0))
        self.leak_shift = int(proc_params.get("leak_shift", NO_LEAK_SHIFT))
        self.sampler_shift = proc_params["u_frac_bits"] - proc_params["sampler_frac_bits"]

    # The model is its own IntegerNeuronParams: bias, u_prior, u_min, u_max, leak_shift, ff_exponent ([K]), cdf,
    # sampler_shift.
    def integrate(self, u: np.ndarray, drive: np.ndarray, a_in: np.ndarray) -> np.ndarray:
        """The neuron's integer step (the sum exact in int64, then saturated) from the held drive, the lateral
        Dense's a_in and the self-inhibition of the neuron's own last count."""
        lateral = a_in.astype(np.int64) + self_inhibition_term(self.z_last, self.self_weight, self.self_exponent)  # [B, K]
        return self.neuron.int_step(u, drive, lateral, self)  # [B, K]

    def sample(self, u: np.ndarray, draws: np.ndarray) -> np.ndarray:
        """The neuron's table lookup: spike counts int32 [B, K]."""
        return self.neuron.int_sample(u, draws, self).astype(np.int32)
