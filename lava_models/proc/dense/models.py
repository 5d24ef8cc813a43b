"""ProcessModels of BatchDense: ``fixed_pt`` (Lava Dense's bit-accurate arithmetic, per image row) and ``floating_pt``."""

from __future__ import annotations

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from ipvae.lava.proc.dense.process import BatchDense

ACCUMULATOR_PRECISION = 32
PAYLOAD_PRECISION = 24
FLOAT64_EXACT_LIMIT = 2**53  # integer-valued float64 products and sums are exact below this


@implements(proc=BatchDense, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyBatchDenseModelFixed(PyLoihiProcessModel):
    """a_out = floor((s_in @ W^T) * 2**exponent), exact: the row sums run as a float64 BLAS product on
    integer values, exact while every partial sum stays below 2**53 (checked per message)."""

    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=PAYLOAD_PRECISION)
    a_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=ACCUMULATOR_PRECISION)
    weights: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=16)
    a_buff: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=ACCUMULATOR_PRECISION)

    def __init__(self, proc_params: dict) -> None:
        super().__init__(proc_params)
        self.exponent: int = proc_params["exponent"]
        self._transposed = None  # [J, I] float64, built on the first timestep (Vars are set by then)
        self._row_bound = 0.0

    def run_spk(self) -> None:
        self.a_out.send(self.a_buff)  # computed from the previous timestep's messages (Lava Dense's delay)
        s_in = self.s_in.recv()  # [B, J]
        if not s_in.any():  # no event: no synaptic work
            self.a_buff = np.zeros_like(self.a_buff)
            return
        if self._transposed is None:
            self._transposed = np.ascontiguousarray(self.weights.T, dtype=np.float64)
            self._row_bound = float(np.abs(self._transposed).sum(axis=0).max(initial=0.0))
        if self._row_bound * float(np.abs(s_in).max()) >= FLOAT64_EXACT_LIMIT:
            raise OverflowError("BatchDense row sum could exceed 2**53: not exact in float64")
        accumulated = (s_in.astype(np.float64) @ self._transposed).astype(np.int64)  # [B, I], exact
        shifted = accumulated << self.exponent if self.exponent >= 0 else accumulated >> -self.exponent
        self.a_buff = shifted.astype(np.int32)


@implements(proc=BatchDense, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyBatchDenseModelFloat(PyLoihiProcessModel):
    """a_out = s_in @ W^T (float64)."""

    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    a_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    weights: np.ndarray = LavaPyType(np.ndarray, float)
    a_buff: np.ndarray = LavaPyType(np.ndarray, float)

    def run_spk(self) -> None:
        self.a_out.send(self.a_buff)
        s_in = self.s_in.recv()  # [B, J]
        self.a_buff = s_in @ self.weights.T if s_in.any() else np.zeros_like(self.a_buff)
