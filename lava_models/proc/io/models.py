"""ProcessModels of FrameSource and StateTap: int32 payloads in ``fixed_pt``, float64 in ``floating_pt``."""

from __future__ import annotations

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from ipvae.lava.proc.io.process import FrameSource, StateTap

PAYLOAD_PRECISION = 24
STATE_PRECISION = 32


class AbstractPyFrameSourceModel(PyLoihiProcessModel):
    """The sigma-delta encoder: events = changes of the window's frames above the threshold."""

    frame_in: PyInPort = None
    s_out: PyOutPort = None
    dtype = None

    def __init__(self, proc_params: dict) -> None:
        super().__init__(proc_params)
        self.n_steps: int = proc_params["n_steps"]
        self.threshold = proc_params["threshold"]
        self._frames = None  # [T, B, M] of the current window
        self._sent = np.zeros(proc_params["shape"], dtype=self.dtype)  # [B, M] x_sent

    def run_spk(self) -> None:
        step = (self.time_step - 1) % (self.n_steps + 1)
        if step == 0:
            self._frames = self.frame_in.recv()
            self._sent = np.zeros_like(self._sent)
        change = self._frames[min(step, self.n_steps - 1)] - self._sent  # [B, M]
        events = np.where(np.abs(change) > self.threshold, change, 0).astype(self.dtype)
        self._sent = self._sent + events
        self.s_out.send(events)


@implements(proc=FrameSource, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyFrameSourceModelFixed(AbstractPyFrameSourceModel):
    frame_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=PAYLOAD_PRECISION)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=PAYLOAD_PRECISION)
    dtype = np.int32


@implements(proc=FrameSource, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyFrameSourceModelFloat(AbstractPyFrameSourceModel):
    frame_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    dtype = np.float64


class AbstractPyStateTapModel(PyLoihiProcessModel):
    """Collects (z, u) of every timestep of a window; sends the window at its last timestep (blocks when the pipe is full)."""

    s_in: PyInPort = None
    u_in: PyInPort = None
    state_out: PyOutPort = None
    dtype = None

    def __init__(self, proc_params: dict) -> None:
        super().__init__(proc_params)
        self.n_steps: int = proc_params["n_steps"]
        self._record = np.zeros((self.n_steps + 1, 2) + tuple(proc_params["shape"]), dtype=self.dtype)  # [T+1, 2, B, K]

    def run_spk(self) -> None:
        step = (self.time_step - 1) % (self.n_steps + 1)
        self._record[step, 0] = self.s_in.recv()
        self._record[step, 1] = self.u_in.recv()
        if step == self.n_steps:
            self.state_out.csp_ports[-1].send(self._record.copy())


@implements(proc=StateTap, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyStateTapModelFixed(AbstractPyStateTapModel):
    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=STATE_PRECISION)
    u_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=STATE_PRECISION)
    state_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=STATE_PRECISION)
    dtype = np.int32


@implements(proc=StateTap, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyStateTapModelFloat(AbstractPyStateTapModel):
    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    u_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    state_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    dtype = np.float64
