"""Host <-> graph I/O: FrameSource turns host frames into sigma-delta input events, StateTap streams neuron state out.

Both use Lava's external pipes (as ``lava.proc.io.injector.Injector`` and ``extractor.Extractor`` do)
and exchange one message per image window (T + 1 timesteps) instead of one per timestep: the host
pushes a window's frames at once and reads a window's (z, u) at once. ``Var.get`` would move one
element per channel message: minutes for a whole run's spike record. Unlike Lava's
Injector/Extractor, whose ports are float, these carry integers in ``fixed_pt``: the bit-accurate
synapses need integer payloads.
"""

from __future__ import annotations

import typing as ty

from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess, LogConfig

DEFAULT_PIPE_BUFFER = 4  # windows the host may run ahead of (source) or behind (tap) the graph


class FrameSource(AbstractProcess):
    """A sigma-delta input stage for B images side by side (ipvae.export.events.sigma_delta_events).

    At window step 0 it takes the window's frames [T, B, M] from the host pipe; at window step
    s = 0..T it compares frame min(s, T - 1) with what it has sent since the window began
    (``x_sent``, 0 at window step 0) and sends a graded event (payload = the change) for every
    pixel whose change exceeds ``threshold``, then adds what it sent to ``x_sent``. A static image
    therefore produces one event per pixel above the threshold at window step 0 and nothing after.

    Parameters
    ----------
    shape : tuple of int
        ``(B, M)``: images side by side, pixels per frame.
    n_steps : int
        T: frames per window (the window is T + 1 timesteps).
    threshold : int or float, optional
        Sigma-delta threshold (payload units); 0: every change is sent. Default 0.
    buffer_size : int, optional
        Windows the host-to-graph pipe holds. Default 4.
    """

    def __init__(
        self,
        *,
        shape: tuple[int, int],
        n_steps: int,
        threshold: float = 0,
        buffer_size: int = DEFAULT_PIPE_BUFFER,
        name: ty.Optional[str] = None,
        log_config: ty.Optional[LogConfig] = None,
    ) -> None:
        super().__init__(shape=shape, n_steps=int(n_steps), threshold=threshold, name=name, log_config=log_config)
        self.frame_in = InPort(shape=(int(n_steps),) + tuple(shape))
        self.frame_in.flag_external_pipe(buffer_size=buffer_size)
        self.s_out = OutPort(shape=shape)

    def send(self, frames) -> None:
        """Push one window's frames [T, B, M] (host side; the runtime must exist)."""
        port = getattr(self.frame_in, "external_pipe_csp_send_port", None)
        if port is None:
            raise RuntimeError("FrameSource.send needs a runtime: create it first (runtime not started)")
        port.send(frames)


class StateTap(AbstractProcess):
    """Collects the spike counts and potentials of a population over a window and relays them to the host.

    Each window produces one message of shape ``(T + 1, 2, B, K)``: [t, 0] the spike counts z_t,
    [t, 1] the potentials u_t. The host reads it with ``receive_port()`` (a Lava CspRecvPort).

    Parameters
    ----------
    shape : tuple of int
        ``(B, K)``: images side by side, neurons.
    n_steps : int
        T (a window is T + 1 timesteps).
    buffer_size : int, optional
        Windows the graph-to-host pipe holds before the graph blocks. Default 4.
    """

    def __init__(
        self,
        *,
        shape: tuple[int, int],
        n_steps: int,
        buffer_size: int = DEFAULT_PIPE_BUFFER,
        name: ty.Optional[str] = None,
        log_config: ty.Optional[LogConfig] = None,
    ) -> None:
        super().__init__(shape=shape, n_steps=int(n_steps), name=name, log_config=log_config)
        self.s_in = InPort(shape=shape)
        self.u_in = InPort(shape=shape)
        self.state_out = OutPort(shape=(int(n_steps) + 1, 2) + tuple(shape))
        self.state_out.flag_external_pipe(buffer_size=buffer_size)

    def receive_port(self):
        """The host end of the pipe (CspRecvPort); exists once the runtime is created."""
        port = getattr(self.state_out, "external_pipe_csp_recv_port", None)
        if port is None:
            raise RuntimeError("StateTap has no pipe yet: create the runtime first")
        return port
