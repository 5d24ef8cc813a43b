"""Run many images through one compiled iP-VAE graph on the Lava CPU simulator (Loihi2SimCfg).

One ``LavaSimulation`` compiles the graph once; every ``run(x)`` streams its images through it, B
side by side (``network.batch``) and windows back to back (window n occupies Lava timesteps
n(T+1)+1 .. (n+1)(T+1); the neuron resets itself at the first timestep of each window, so nothing is
rebuilt or reset from the host; a last, partial window is padded with blank images whose results are
dropped, and the next run continues after them). The host pushes one window's frames into the FrameSource pipe and pulls one window's
(z, u) from the StateTap pipe while the graph runs (non-blocking ``RunSteps``): two messages per window.

Shutdown: the runtime is stopped in ``close()`` on every path (use the simulation as a context
manager). The Lava worker processes are forked while SIGINT only sets a flag, and keep that
handler: a Ctrl-C (which a terminal sends to every process of the foreground group) interrupts only
the host process, which then stops the runtime; a worker killed by SIGINT would leave
``Runtime.stop`` waiting forever.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import signal
import sys
import threading
import time
from dataclasses import dataclass

import numpy as np

from ipvae.errors import IpvaeError
from ipvae.lava.network import FIXED_PT, LavaNetwork

MAX_BATCH = 32  # images side by side by default: the simulator's cost per timestep barely grows with it
LOOKAHEAD_WINDOWS = 2  # windows of frames pushed ahead of the graph (< the FrameSource pipe's buffer)
POLL_MIN_S = 20e-6  # first sleep while waiting for the graph; doubles up to POLL_MAX_S
POLL_MAX_S = 1e-3
LIVENESS_CHECK_S = 0.2  # how often a waiting host checks that the workers are alive
FORCE_JOIN_TIMEOUT_S = 5.0


class LavaRunError(IpvaeError):
    """The Lava runtime failed (a ProcessModel raised); the runtime has been stopped."""

    exit_code = 3


class InputError(IpvaeError):
    """Images that cannot be fed to the network (shape, NaN, too few frames)."""


@dataclass(frozen=True, eq=False)
class LavaTrajectory:
    """What one ``run`` recorded, in the integer reference's layout.

    z: int16 [T+1, N, K] spike counts for steps t = 0..T; u: [T+1, N, K] potentials (int32 u-LSBs in
    fixed_pt, float64 in floating_pt) or None when not recorded; image_offset: global index of image 0;
    seconds: wall time of the streaming run (compilation excluded).
    """

    z: np.ndarray
    u: np.ndarray | None
    image_offset: int
    seconds: float
    mode: str
    decoder_phi: np.ndarray  # [M, K] float32

    def reconstructions(self) -> np.ndarray:
        """recon_t = Phi z_t for every step and image, float32 [T+1, N, M] (the host-side readout)."""
        return (self.z.astype(np.float32) @ self.decoder_phi.T).astype(np.float32)

    @property
    def n_images(self) -> int:
        return self.z.shape[1]

    @property
    def n_steps(self) -> int:
        return self.z.shape[0] - 1


def validate_images(x: np.ndarray, n_inputs: int, n_steps: int) -> np.ndarray:
    """x as float64 [N, M] (static) or [N, F, M] (F >= T frames); IpvaeError on a wrong shape or NaN/Inf."""
    x = np.asarray(x)
    if x.dtype.kind not in "fiu":
        raise InputError(f"images must be numeric, got dtype {x.dtype}")
    x = x.astype(np.float64)
    if x.ndim not in (2, 3):
        raise InputError(f"images must be [N, {n_inputs}] or [N, frames, {n_inputs}], got shape {x.shape}")
    if x.shape[0] < 1:
        raise InputError("no images to run")
    if x.shape[-1] != n_inputs:
        raise InputError(f"images have {x.shape[-1]} pixels, the model expects {n_inputs}")
    if x.ndim == 3 and x.shape[1] < n_steps:
        raise InputError(f"a sequence needs at least {n_steps} frames for {n_steps} steps, got {x.shape[1]}")
    if not np.all(np.isfinite(x)):
        raise InputError("images contain NaN or Inf pixels")
    return x


def balanced_batch(n_images: int, largest: int = MAX_BATCH) -> int:
    """Images side by side for a run of n_images: as few windows as ``largest`` allows, evenly filled."""
    n_windows = -(-max(int(n_images), 1) // largest)
    return -(-max(int(n_images), 1) // n_windows)


def window_frames(payload: np.ndarray, first: int, batch: int, n_steps: int) -> np.ndarray:
    """Frames [T, B, M] of the window whose first image is ``first`` (blank rows past the last image)."""
    chunk = payload[first : first + batch]  # [b, M] or [b, F, M]
    frames = np.zeros((n_steps, batch, payload.shape[-1]), dtype=payload.dtype)  # [T, B, M]
    if chunk.ndim == 2:
        frames[:, : chunk.shape[0]] = chunk[None]
    else:
        frames[:, : chunk.shape[0]] = chunk[:, :n_steps].transpose(1, 0, 2)
    return frames


class LavaSimulation:
    """A compiled graph on Loihi2SimCfg; ``run`` images through it; always ``close`` (or use ``with``).

    Parameters
    ----------
    network : LavaNetwork
        From ``build_fixed_network`` / ``build_float_network``; one simulation per network.
    progress : bool or None
        tqdm progress bar over images; None: only on a terminal.
    run_config : lava RunConfig, optional
        Default ``Loihi2SimCfg(select_tag=network.mode)`` (the CPU simulator); hw_tests pass
        ``Loihi2HwCfg()``.
    """

    def __init__(self, network: LavaNetwork, *, progress: bool | None = None, run_config=None) -> None:
        self.network = network
        self.progress = progress
        self.run_config = run_config
        self.images_done = 0
        self._started = False
        self._closed = False
        self._mid_run = False
        self._runtime = None

    # -------------------------------------------------------------------------------- lifecycle
    def __enter__(self) -> "LavaSimulation":
        self.start()
        return self

    def __exit__(self, exc_type, *exc_info) -> None:
        # Leaving on an exception (a Ctrl-C during run(), even before its first window) the runtime's
        # state is unknown: Lava's STOP handshake was seen to wait forever for a worker, so terminate.
        self.close(force=exc_type is not None)

    def start(self) -> None:
        """Compile and start the runtime; idempotent.

        While the workers are forked, SIGINT only sets a flag (the workers inherit that handler and
        so never die of a Ctrl-C); a Ctrl-C that arrived meanwhile is raised once the runtime exists,
        after stopping it. If compiling or starting fails, whatever was started is terminated.
        """
        if self._started:
            return
        if self._closed:
            raise RuntimeError("this LavaSimulation was closed; build a new network to run again")
        run_cfg = self.run_config
        if run_cfg is None:
            from lava.magma.core.run_configs import Loihi2SimCfg

            run_cfg = Loihi2SimCfg(select_tag=self.network.mode)
        interrupts: list[int] = []
        in_main_thread = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, lambda signum, _: interrupts.append(signum)) if in_main_thread else None
        try:
            self._started = True  # from here on close() must stop whatever was started
            self.network.block.create_runtime(run_cfg=run_cfg)
            self._runtime = self.network.block.runtime
        except BaseException:
            runtime = getattr(self.network.block, "runtime", None)
            if runtime is not None and getattr(runtime, "_messaging_infrastructure", None) is not None:
                _force_stop(runtime)
            self._closed = True
            raise
        finally:
            if in_main_thread:
                signal.signal(signal.SIGINT, previous)
        if interrupts:
            self.close()
            raise KeyboardInterrupt

    def close(self, *, force: bool = False) -> None:
        """Stop the runtime and its worker processes; safe to call more than once.

        ``force``: terminate the workers by handle instead of Lava's STOP handshake (after an exception).

        Between runs (every worker idle) Lava's own STOP handshake is used. After an interruption or a
        failure in the middle of a run it cannot be: Lava's runtime service reads STOP only between
        phases, and a worker blocked inside a phase (the FrameSource waiting for a frame the host will
        not send, the StateTap waiting for the host to read, a Dense waiting for a dead neuron) never
        finishes it. Then the workers, which this simulation started, are terminated by handle.
        """
        if self._closed:
            return
        self._closed = True
        if not self._started or self._runtime is None:
            return
        if self._mid_run or force:
            _force_stop(self._runtime)
            return
        try:
            self.network.block.stop()
        except Exception as error:  # the runtime is gone either way; say so and clean up what is left
            print(f"warning: Lava runtime stop failed ({type(error).__name__}: {error}); terminating workers",
                  file=sys.stderr)
            _force_stop(self._runtime)

    # -------------------------------------------------------------------------------- running
    def run(self, x: np.ndarray, *, record_u: bool = True) -> LavaTrajectory:
        """Stream images x ([N, M] static or [N, F, M] frames) through the graph; returns z (and u) per step."""
        net = self.network
        x = validate_images(x, net.n_inputs, net.n_steps)
        self.start()
        payload = net.encode(x)  # [N, M] or [N, F, M]
        n_images, window, batch = payload.shape[0], net.window, net.batch
        n_windows = -(-n_images // batch)
        z = np.zeros((window, n_windows * batch, net.n_latents), dtype=np.int16)  # [T+1, N', K]
        u_dtype = np.int32 if net.mode == FIXED_PT else np.float64
        u = np.zeros((window, n_windows * batch, net.n_latents), dtype=u_dtype) if record_u else None

        from lava.magma.core.run_conditions import RunSteps
        from tqdm import tqdm

        image_offset = net.image_offset + self.images_done
        bar = tqdm(total=n_images, unit="img", desc=f"lava {net.mode}", disable=self._bar_disabled(), leave=False)
        started = time.perf_counter()
        receiver = _StateReceiver(net.tap.receive_port(), self._runtime)
        try:
            self._mid_run = True
            net.block.run(condition=RunSteps(num_steps=n_windows * window, blocking=False))
            receiver.running = True
            sent = 0
            for _ in range(min(LOOKAHEAD_WINDOWS, n_windows)):
                with _interrupt_after_lava_call():
                    net.source.send(window_frames(payload, sent * batch, batch, net.n_steps))
                sent += 1
            for index in range(n_windows):
                state = receiver.receive()  # [T+1, 2, B, K]
                rows = slice(index * batch, (index + 1) * batch)
                z[:, rows] = state[:, 0]
                if u is not None:
                    u[:, rows] = state[:, 1]
                if sent < n_windows:
                    with _interrupt_after_lava_call():
                        net.source.send(window_frames(payload, sent * batch, batch, net.n_steps))
                    sent += 1
                bar.update(min(batch, n_images - index * batch))
            receiver.finish()
            self._mid_run = False
        except _WorkerFailure as failure:
            self.close()
            raise LavaRunError(f"the Lava simulation failed: {failure}") from None
        except BaseException:
            self.close()
            raise
        finally:
            bar.close()
        self.images_done += n_windows * batch  # blank padding images use up their indices too
        z = z[:, :n_images]
        u = u[:, :n_images] if u is not None else None
        return LavaTrajectory(z=z, u=u, image_offset=image_offset, seconds=time.perf_counter() - started,
                              mode=net.mode, decoder_phi=net.decoder_phi)


    def _bar_disabled(self) -> bool | None:
        if self.progress is None:
            return None  # tqdm: disable when not writing to a terminal
        return not self.progress


@contextlib.contextmanager
def _interrupt_after_lava_call():
    """Hold a Ctrl-C back while Lava code runs and raise it right after, never inside Lava.

    A KeyboardInterrupt raised inside a channel send can leave a message half-sent (the graph then
    waits forever while the host waits for its answer: seen as a hang of the Ctrl-C test).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    interrupts: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, _: interrupts.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if interrupts:
        raise KeyboardInterrupt


class _WorkerFailure(Exception):
    """A Lava worker process died or its runtime service reported an error during a run."""


class _StateReceiver:
    """Reads the StateTap pipe while watching the runtime.

    A ProcessModel that raises ends its worker process; the other workers stay blocked inside the
    phase, so neither more data nor (usually) an ERROR message ever arrives. Waiting on the data pipe
    alone would block forever: every wait polls the data pipe (sleeping between polls, so a Ctrl-C
    is delivered at once) and, periodically, the liveness of the workers and the service channels.
    """

    def __init__(self, data_port, runtime) -> None:
        self.data_port = data_port
        self.runtime = runtime
        self.running = False

    def receive(self) -> np.ndarray:
        port = self.data_port
        pause = POLL_MIN_S
        next_check = time.monotonic() + LIVENESS_CHECK_S
        while not port.probe():
            if self.running and time.monotonic() >= next_check:
                self.check()
                next_check = time.monotonic() + LIVENESS_CHECK_S
            time.sleep(pause)
            pause = min(2.0 * pause, POLL_MAX_S)
        with _interrupt_after_lava_call():
            return port.recv()

    def check(self) -> None:
        """Raise _WorkerFailure if a worker died or a service reported anything but DONE."""
        from lava.magma.runtime.mgmt_token_enums import MGMT_RESPONSE, enum_equal

        for actor in self.runtime._messaging_infrastructure.actors:
            if not actor.is_alive():
                raise _WorkerFailure(_describe_actor_failure(actor))
        for service in self.runtime.service_to_runtime:
            if service.probe():
                message = service.peek()
                if enum_equal(message, MGMT_RESPONSE.DONE):
                    self.finish()  # the run ended: the remaining data is in the pipe
                    return
                raise _WorkerFailure(f"the runtime service answered {message!r}")

    def finish(self) -> None:
        """Collect the runtime's end-of-run answer (Runtime.wait)."""
        if self.running:
            self.running = False
            self.runtime.wait()


def _describe_actor_failure(actor) -> str:
    error = actor.exception
    if error:
        exception, _ = error
        return f"a worker process raised {type(exception).__name__}: {_first_line(exception)}"
    return f"a worker process exited (exit code {actor.exitcode})"


def _force_stop(runtime) -> None:
    """Terminate the runtime's worker processes (by handle), free its shared memory, mark it stopped.

    Uses Lava internals (``Runtime._messaging_infrastructure``): Lava has no public way to stop a
    runtime whose workers are blocked mid-phase.
    """
    infrastructure = runtime._messaging_infrastructure
    actors = list(getattr(infrastructure, "actors", []))
    for actor in actors:
        if actor.is_alive():
            actor.terminate()
    for actor in actors:
        multiprocessing.Process.join(actor, FORCE_JOIN_TIMEOUT_S)
        if actor.is_alive():
            actor.kill()
            multiprocessing.Process.join(actor, FORCE_JOIN_TIMEOUT_S)
    try:
        infrastructure.smm.shutdown()
    except Exception as error:  # the manager process may already be gone
        print(f"warning: Lava shared memory manager shutdown: {error}", file=sys.stderr)
    runtime._is_running = False
    runtime._is_started = False  # Runtime.__del__ would otherwise attempt the STOP handshake again
    if runtime._watchdog_manager is not None:
        runtime._watchdog_manager.stop()


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
