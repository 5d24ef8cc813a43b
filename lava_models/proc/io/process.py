"""Host <-> graph I/O: FrameSource sends host frames as graded spikes, StateTap streams neuron state out.

Both use Lava's external pipes (as ``lava.proc.io.injector.Injector`` and ``extractor.Extractor`` do),
so a run streams one message per timestep instead of reading Vars element by element afterwards
(``Var.get`` moves one element per channel message: minutes for a whole run's spike record).
Unlike Lava's Injector/Extractor, whose ports are float, these carry integers in ``fixed_pt``:
Lava's bit-accurate Dense shifts its accumulator, which needs integer payloads.
"""

from __future__ import annotations

import typing as ty

from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess, LogConfig

DEFAULT_PIPE_BUFFER = 16  # messages the host may run ahead of (source) or behind (tap) the graph


class FrameSource(AbstractProcess):
    """Sends, every timestep, the frame the host pushed for it, as graded spikes (payload = value).

    The host calls ``send(frame)`` once per timestep, before or while the graph runs (the pipe holds
    ``buffer_size`` frames); the model blocks on an empty pipe, so the graph never runs ahead of its
    input.

    Parameters
    ----------
    shape : tuple of int
        ``(M,)``, pixels per frame.
    num_message_bits : int, optional
        Signed payload bits of the graded spike (the input_bits of the fixed-point spec). Default 8.
    buffer_size : int, optional
        Frames the host-to-graph pipe holds. Default 16.
    """

    def __init__(
        self,
        *,
        shape: tuple[int, ...],
        num_message_bits: int = 8,
        buffer_size: int = DEFAULT_PIPE_BUFFER,
        name: ty.Optional[str] = None,
        log_config: ty.Optional[LogConfig] = None,
    ) -> None:
        super().__init__(shape=shape, num_message_bits=num_message_bits, name=name, log_config=log_config)
        self.frame_in = InPort(shape=shape)
        self.frame_in.flag_external_pipe(buffer_size=buffer_size)
        self.s_out = OutPort(shape=shape)

    def send(self, frame) -> None:
        """Push one timestep's frame (host side; the runtime must exist)."""
        port = getattr(self.frame_in, "external_pipe_csp_send_port", None)
        if port is None:
            raise RuntimeError("FrameSource.send needs a runtime: create it first (runtime not started)")
        port.send(frame)


class StateTap(AbstractProcess):
    """Receives the spike counts and potentials of a population every timestep and relays them to the host.

    Each timestep produces one message of shape ``(2, K)``: row 0 the spike counts z, row 1 the
    potentials u. The host reads it with ``receive_port()`` (a Lava CspRecvPort).

    Parameters
    ----------
    shape : tuple of int
        ``(K,)``, neurons.
    buffer_size : int, optional
        Messages the graph-to-host pipe holds before the graph blocks. Default 16.
    """

    def __init__(
        self,
        *,
        shape: tuple[int, ...],
        buffer_size: int = DEFAULT_PIPE_BUFFER,
        name: ty.Optional[str] = None,
        log_config: ty.Optional[LogConfig] = None,
    ) -> None:
        super().__init__(shape=shape, name=name, log_config=log_config)
        self.s_in = InPort(shape=shape)
        self.u_in = InPort(shape=shape)
        self.state_out = OutPort(shape=(2,) + tuple(shape))
        self.state_out.flag_external_pipe(buffer_size=buffer_size)

    def receive_port(self):
        """The host end of the pipe (CspRecvPort); exists once the runtime is created."""
        port = getattr(self.state_out, "external_pipe_csp_recv_port", None)
        if port is None:
            raise RuntimeError("StateTap has no pipe yet: create the runtime first")
        return port
