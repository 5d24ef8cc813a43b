"""ProcessModels of the PoissonNeuron: ``floating_pt`` (float dynamics) and ``fixed_pt`` (bit-exact).

Both share the window protocol (docs/fixed_point.md, sections 6.2 and 11): global timestep
``time_step`` (1-based, continuing across ``run`` calls of one runtime) belongs to window
``n = (time_step - 1) // (T + 1)`` at window step ``(time_step - 1) % (T + 1)``; row b of the
population holds image ``image_offset + n B + b``. Window step 0 resets u to u_prior and the drive
register to 0 and discards what arrives; the stopping rule (ipvae.export.events) freezes converged rows.
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

from ipvae.export.events import EventOptions, converged, is_check_step
from ipvae.export.rng import RNG_BITS, key_prefix, uniform24_from_prefix
from ipvae.export.spec import NO_LEAK_SHIFT, leak_term
from ipvae.lava.proc.poisson.process import PoissonNeuron

STATE_PRECISION = 24  # u is a 24-bit state on the chip (docs/fixed_point.md, section 2)
ACCUMULATOR_PRECISION = 32  # Dense outputs arrive on int32 channels
TABLE_PRECISION = RNG_BITS + 1  # cdf entries are 0..2**24 inclusive
RNG_SCALE = float(1 << RNG_BITS)


class AbstractPyPoissonNeuronModel(PyLoihiProcessModel):
    """Window bookkeeping, the counter-based uniforms and the stopping rule shared by both models.

    Subclasses implement ``integrate(u, drive, a_in)`` (u after a step) and ``sample(u, draws)`` (counts).
    """

    def __init__(self, proc_params: dict) -> None:
        super().__init__(proc_params)
        self.n_steps: int = proc_params["n_steps"]
        self.cap: int = proc_params["max_spike_count"]
        self.seed: int = proc_params["seed"]
        self.image_offset: int = proc_params["image_offset"]
        self.batch, n_latents = proc_params["shape"]
        self.stop_options = EventOptions(stop_window=proc_params["stop_window"],
                                         stop_tolerance=proc_params["stop_tolerance"])
        self._neurons = np.arange(n_latents, dtype=np.uint64)[None, :]  # [1, K]
        self._prefix_window = -1
        self._prefix = None
        self._active = np.ones(self.batch, dtype=bool)  # [B] rows not stopped
        self._window_counts = np.zeros((self.batch, n_latents), dtype=np.int64)  # [B, K]
        self._previous_counts = np.zeros((self.batch, n_latents), dtype=np.int64)

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
            u = np.broadcast_to(self.u_prior, self.u.shape).copy()
            self.drive = np.zeros_like(self.drive)
            self._active[:] = True
            self._window_counts[:] = 0
            self._previous_counts[:] = 0
        else:
            self.drive = self.drive + drive_in
            u = self.integrate(self.u, self.drive, a_in)
        z = self.sample(u, self.uniforms(window, step))  # [B, K]
        if not self._active.all():
            frozen = ~self._active[:, None]  # [B, 1]
            u = np.where(frozen, self.u, u)
            z = np.where(frozen, 0, z)
        if step > 0:
            self.update_stop(step, z)
        self.u = u.astype(self.u.dtype)
        self.s_out.send(z)
        self.u_out.send(self.u)

    def update_stop(self, step: int, z: np.ndarray) -> None:
        """ipvae.export.events' rule: windowed counts; at t = 2w, 3w, ... converged rows stop after this step."""
        options = self.stop_options
        if not options.stops:
            return
        self._window_counts += z.astype(np.int64)
        if step % options.stop_window:
            return
        if is_check_step(step, options):
            self._active &= ~converged(self._window_counts, self._previous_counts, options.stop_tolerance)
        self._previous_counts = self._window_counts
        self._window_counts = np.zeros_like(self._window_counts)


@implements(proc=PoissonNeuron, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyPoissonNeuronModelFloat(AbstractPyPoissonNeuronModel):
    """Float dynamics of the iP-VAE (the PyTorch model's update, float64).

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

    def __init__(self, proc_params: dict) -> None:
        super().__init__(proc_params)
        self.u_min = float(proc_params["u_min"])
        self.u_max = float(proc_params["u_max"])
        self.hard_upper_clamp = bool(proc_params.get("hard_upper_clamp", False))
        self.leak = float(proc_params.get("leak", 0.0))
        self._log_factorials = np.array([math.lgamma(n + 1.0) for n in range(self.cap)])  # [cap]
        self._counts = np.arange(self.cap, dtype=np.float64)  # [cap]

    def clamp(self, y: np.ndarray) -> np.ndarray:
        """clip(y, u_min, u_max) with hard_upper_clamp, else max(u_min, u_max - softplus(u_max - y))
        (softplus(v) = logaddexp(0, v), overflow-free)."""
        if self.hard_upper_clamp:
            return np.clip(y, self.u_min, self.u_max)
        return np.maximum(self.u_min, self.u_max - np.logaddexp(0.0, self.u_max - y))

    def thresholds(self, u: np.ndarray) -> np.ndarray:
        """floor(P(N <= n | exp(u)) * 2**24) for n = 0..cap-1, float64 [..., cap]."""
        rate = np.exp(u)[..., None]  # [..., 1]
        log_pmf = self._counts * u[..., None] - rate - self._log_factorials  # [..., cap]
        cdf = np.minimum(np.cumsum(np.exp(log_pmf), axis=-1), 1.0)  # [..., cap]
        return np.floor(cdf * RNG_SCALE)

    def integrate(self, u: np.ndarray, drive: np.ndarray, a_in: np.ndarray) -> np.ndarray:
        total = u + drive + a_in + self.bias  # [B, K]
        if self.leak:
            total = total - self.leak * (u - self.u_prior)  # [B, K] the restoring force toward the prior
        return self.clamp(total)

    def sample(self, u: np.ndarray, draws: np.ndarray) -> np.ndarray:
        return (draws.astype(np.float64)[..., None] >= self.thresholds(u)).sum(axis=-1).astype(np.float64)


@implements(proc=PoissonNeuron, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyPoissonNeuronModelFixed(AbstractPyPoissonNeuronModel):
    """Integer dynamics of docs/fixed_point.md (bit-exact to ipvae.export.reference.run_reference).

    u := clip(u + a_in + bias - leak, u_min, u_max) (exact int64 sum, then saturation), with
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

    def __init__(self, proc_params: dict) -> None:
        super().__init__(proc_params)
        self.u_min = int(proc_params["u_min"])
        self.u_max = int(proc_params["u_max"])
        self.ff_exponent = int(proc_params["ff_exponent"])
        self.leak_shift = int(proc_params.get("leak_shift", NO_LEAK_SHIFT))
        self.sampler_shift = proc_params["u_frac_bits"] - proc_params["sampler_frac_bits"]

    def feedforward(self, drive: np.ndarray) -> np.ndarray:
        """floor(drive * 2**e_ff): the held row sums scaled as Lava's Dense scales its accumulator."""
        drive = drive.astype(np.int64)
        return drive << self.ff_exponent if self.ff_exponent >= 0 else drive >> -self.ff_exponent

    def integrate(self, u: np.ndarray, drive: np.ndarray, a_in: np.ndarray) -> np.ndarray:
        """clip(u + ff(drive) + a_in + bias - leak, u_min, u_max): the sum exact in int64, then saturated."""
        potential = u.astype(np.int64)  # [B, K] before this step's update
        total = potential + self.feedforward(drive) + a_in.astype(np.int64) + self.bias.astype(np.int64)  # [B, K]
        if self.leak_shift != NO_LEAK_SHIFT:
            total -= leak_term(potential - self.u_prior.astype(np.int64), self.leak_shift)  # [B, K]
        return np.clip(total, self.u_min, self.u_max)

    def sample(self, u: np.ndarray, draws: np.ndarray) -> np.ndarray:
        """Table lookup: spike counts int32 [B, K]; only neurons with U >= cdf[idx, 0] compare the whole row."""
        last_row = self.cdf.shape[0] - 1
        rows = np.clip((u.astype(np.int64) - self.u_min) >> self.sampler_shift, 0, last_row)  # [B, K]
        draws = draws.astype(np.int64)
        z = np.zeros(u.shape, dtype=np.int32)
        fires = np.nonzero(draws >= self.cdf[rows, 0])
        z[fires] = (draws[fires][:, None] >= self.cdf[rows[fires]]).sum(axis=1)
        return z
