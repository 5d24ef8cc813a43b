"""ProcessModels of the PoissonNeuron: ``floating_pt`` (float dynamics) and ``fixed_pt`` (bit-exact).

Both share the window protocol (docs/fixed_point.md, section 6.2): global timestep ``time_step``
(1-based, continuing across ``run`` calls of one runtime) belongs to image
``image_offset + (time_step - 1) // (T + 1)`` at window step ``(time_step - 1) % (T + 1)``; window
step 0 resets u to u_prior and discards a_in.
"""

from __future__ import annotations

import math

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from ipvae.export.rng import RNG_BITS, key_prefix, uniform24_from_prefix
from ipvae.lava.proc.poisson.process import PoissonNeuron

STATE_PRECISION = 24  # u is a 24-bit state on the chip (docs/fixed_point.md, section 2)
ACCUMULATOR_PRECISION = 32  # Dense outputs arrive on int32 channels
TABLE_PRECISION = RNG_BITS + 1  # cdf entries are 0..2**24 inclusive
RNG_SCALE = float(1 << RNG_BITS)


class AbstractPyPoissonNeuronModel(PyLoihiProcessModel):
    """Window bookkeeping and the counter-based uniforms shared by both models."""

    def __init__(self, proc_params: dict) -> None:
        super().__init__(proc_params)
        self.n_steps: int = proc_params["n_steps"]
        self.cap: int = proc_params["max_spike_count"]
        self.seed: int = proc_params["seed"]
        self.image_offset: int = proc_params["image_offset"]
        self._neurons = np.arange(proc_params["shape"][0], dtype=np.uint64)  # [K]
        self._prefix_image = -1
        self._prefix = None

    def window_position(self) -> tuple[int, int]:
        """(step t in 0..T, global image index) of the current timestep."""
        elapsed = self.time_step - 1
        window = self.n_steps + 1
        return elapsed % window, self.image_offset + elapsed // window

    def uniforms(self, image: int, step: int) -> np.ndarray:
        """U[k] = uniform24(seed, image, step, k), uint32 [K]; the per-image key prefix is cached."""
        if image != self._prefix_image:
            self._prefix = key_prefix(self.seed, image)
            self._prefix_image = image
        return uniform24_from_prefix(self._prefix, step, self._neurons)


@implements(proc=PoissonNeuron, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyPoissonNeuronModelFloat(AbstractPyPoissonNeuronModel):
    """Float dynamics of the iP-VAE (the PyTorch model's update, float64).

    u := max(u_min, u_max - softplus(u_max - (u + a_in + bias))); z = #{n < cap : U >= floor(P(N <= n) 2**24)}
    with N ~ Poisson(exp(u)): inverse-CDF sampling of min(Poisson(exp(u)), cap) at the exact rate.
    """

    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    u_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    u: np.ndarray = LavaPyType(np.ndarray, float)
    u_prior: np.ndarray = LavaPyType(np.ndarray, float)
    bias: np.ndarray = LavaPyType(np.ndarray, float)
    cdf: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=TABLE_PRECISION)

    def __init__(self, proc_params: dict) -> None:
        super().__init__(proc_params)
        self.u_min = float(proc_params["u_min"])
        self.u_max = float(proc_params["u_max"])
        self._log_factorials = np.array([math.lgamma(n + 1.0) for n in range(self.cap)])  # [cap]
        self._counts = np.arange(self.cap, dtype=np.float64)  # [cap]

    def soft_clamp(self, y: np.ndarray) -> np.ndarray:
        """max(u_min, u_max - softplus(u_max - y)); softplus(v) = logaddexp(0, v) (overflow-free)."""
        return np.maximum(self.u_min, self.u_max - np.logaddexp(0.0, self.u_max - y))

    def thresholds(self, u: np.ndarray) -> np.ndarray:
        """floor(P(N <= n | exp(u)) * 2**24) for n = 0..cap-1, float64 [K, cap]."""
        rate = np.exp(u)[:, None]  # [K, 1]
        log_pmf = self._counts[None, :] * u[:, None] - rate - self._log_factorials[None, :]  # [K, cap]
        cdf = np.minimum(np.cumsum(np.exp(log_pmf), axis=1), 1.0)  # [K, cap]
        return np.floor(cdf * RNG_SCALE)

    def run_spk(self) -> None:
        a_in = self.a_in.recv()  # [K]
        step, image = self.window_position()
        if step == 0:
            u = self.u_prior.astype(np.float64)  # a_in: the previous image's traffic, discarded
        else:
            u = self.soft_clamp(self.u + a_in + self.bias)
        draws = self.uniforms(image, step).astype(np.float64)  # [K]
        z = (draws[:, None] >= self.thresholds(u)).sum(axis=1).astype(np.float64)  # [K]
        self.u = u
        self.s_out.send(z)
        self.u_out.send(u)


@implements(proc=PoissonNeuron, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyPoissonNeuronModelFixed(AbstractPyPoissonNeuronModel):
    """Integer dynamics of docs/fixed_point.md (bit-exact to ipvae.export.reference.run_reference).

    u := clip(u + a_in + bias, u_min, u_max) (exact int64 sum, then saturation);
    z = #{n < cap : U >= cdf[clip((u - u_min) >> (F - G), 0, n_idx - 1), n]}.
    """

    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=ACCUMULATOR_PRECISION)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=ACCUMULATOR_PRECISION)
    u_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=STATE_PRECISION)
    u: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=STATE_PRECISION)
    u_prior: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=STATE_PRECISION)
    bias: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=ACCUMULATOR_PRECISION)
    cdf: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=TABLE_PRECISION)

    def __init__(self, proc_params: dict) -> None:
        super().__init__(proc_params)
        self.u_min = int(proc_params["u_min"])
        self.u_max = int(proc_params["u_max"])
        self.sampler_shift = proc_params["u_frac_bits"] - proc_params["sampler_frac_bits"]

    def sample(self, u: np.ndarray, draws: np.ndarray) -> np.ndarray:
        """Table lookup: spike counts int32 [K] for potentials u (int64 [K]) and uniforms (uint32 [K])."""
        last_row = self.cdf.shape[0] - 1
        rows = np.clip((u - self.u_min) >> self.sampler_shift, 0, last_row)  # [K]
        thresholds = self.cdf[rows]  # [K, cap]
        return (draws.astype(np.int64)[:, None] >= thresholds).sum(axis=1).astype(np.int32)

    def run_spk(self) -> None:
        a_in = self.a_in.recv()  # [K]
        step, image = self.window_position()
        if step == 0:
            u = self.u_prior.astype(np.int64)  # a_in: the previous image's traffic, discarded
        else:
            total = self.u.astype(np.int64) + a_in.astype(np.int64) + self.bias.astype(np.int64)
            u = np.clip(total, self.u_min, self.u_max)
        z = self.sample(u, self.uniforms(image, step))
        self.u = u.astype(np.int32)
        self.s_out.send(z)
        self.u_out.send(self.u)
