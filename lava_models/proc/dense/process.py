"""BatchDense: Lava Dense's synapse arithmetic for B images side by side.

Lava's own ``Dense`` takes one presynaptic vector per timestep. To simulate several images per
timestep (the populations of B images side by side, block-diagonal in effect, with one shared
weight matrix), this Process carries [B, J] payloads in and [B, I] outputs out and applies the
same arithmetic as Lava's bit-accurate Dense with ``sign_mode=MIXED`` (docs/fixed_point.md, 4.1):

    a_out(tau) = floor( (W s_in(tau - 1)) * 2**exponent )     per image row, row sum exact, then shifted

with W the signed mantissas, one timestep of delay (a_buff is sent before s_in is received), and
no work when no event arrived (all-zero s_in). ``floating_pt``: a_out(tau) = W s_in(tau - 1).
"""

from __future__ import annotations

import typing as ty

import numpy as np
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess, LogConfig
from lava.magma.core.process.variable import Var


class BatchDense(AbstractProcess):
    """Synapses W [I, J] applied to B presynaptic payload rows: s_in [B, J] -> a_out [B, I].

    Parameters
    ----------
    weights : numpy.ndarray
        [I, J]: integer mantissas (fixed_pt) or real weights (floating_pt).
    exponent : int
        fixed_pt: power-of-two scale applied after the exact row sum (floor shift); 0 for raw row sums.
    batch : int
        B, images side by side.
    """

    def __init__(
        self,
        *,
        weights: np.ndarray,
        exponent: int = 0,
        batch: int = 1,
        name: ty.Optional[str] = None,
        log_config: ty.Optional[LogConfig] = None,
    ) -> None:
        weights = np.asarray(weights)
        if weights.ndim != 2:
            raise ValueError(f"weights must be [I, J], got shape {weights.shape}")
        if int(batch) < 1:
            raise ValueError(f"batch must be positive, got {batch}")
        super().__init__(exponent=int(exponent), batch=int(batch), name=name, log_config=log_config)
        n_out, n_in = weights.shape
        self.s_in = InPort(shape=(int(batch), n_in))
        self.a_out = OutPort(shape=(int(batch), n_out))
        self.weights = Var(shape=weights.shape, init=weights.copy())
        self.a_buff = Var(shape=(int(batch), n_out), init=0)
