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
    """Relays the host's frame of this timestep to the graph (blocks until the host has sent it)."""

    frame_in: PyInPort = None
    s_out: PyOutPort = None

    def run_spk(self) -> None:
        self.s_out.send(self.frame_in.recv())


@implements(proc=FrameSource, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyFrameSourceModelFixed(AbstractPyFrameSourceModel):
    frame_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=PAYLOAD_PRECISION)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=PAYLOAD_PRECISION)


@implements(proc=FrameSource, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyFrameSourceModelFloat(AbstractPyFrameSourceModel):
    frame_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)


class AbstractPyStateTapModel(PyLoihiProcessModel):
    """Stacks (z, u) of this timestep and sends it down the external pipe (blocks when the pipe is full)."""

    s_in: PyInPort = None
    u_in: PyInPort = None
    state_out: PyOutPort = None
    dtype = None

    def run_spk(self) -> None:
        state = np.stack([self.s_in.recv(), self.u_in.recv()]).astype(self.dtype)  # [2, K]
        self.state_out.csp_ports[-1].send(state)


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
