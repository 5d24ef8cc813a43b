"""Event-driven deployment of the integer iP-VAE (docs/fixed_point.md, section 11).

Three options a chip can evaluate with integer arithmetic, shared by the integer reference
(``ipvae.export.reference``) and the Lava graph (``lava_models``), which must agree bit for bit:

- **Input sent as events, held in a drive register.** The input stage is a sigma-delta encoder: at
  window step s = 0..T-1 it compares frame s with what it last sent and sends a graded event
  (payload = the difference) only where |x - x_sent| > ``input_threshold``; it starts every image
  from x_sent = 0. The neuron accumulates the feed-forward synapse's output of these events in a
  drive register (mantissa units, before the exponent shift) and adds shift(drive, e_ff) every step.
  A static image is therefore sent once (one event per non-zero pixel); threshold 0 reproduces the
  per-step re-sent drive exactly.
- **Stop when converged** (``stop_window`` w > 0). Per image, counts are summed over windows of w
  steps (t = 1..T); at t = 2w, 3w, ... the image stops after step t if
  ``sum_k |C_k - P_k| * 2**8 <= stop_tolerance * sum_k (C_k + P_k)`` (C: this window's counts,
  P: the previous window's; the relative L1 change of the windowed count average is at most
  stop_tolerance / 256). A stopped image's neurons stop updating, sampling and sending: z = 0 and u
  held for the rest of its window.
- **Readout on demand** (``ReadoutSchedule``): the decoder Phi is applied at the image's last step
  (``END``), also every k steps (``EVERY``), or once at the last step to the count average of the
  last ``window`` steps (``AVERAGE``). The readout is host-side: it does not change z or u.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

from ipvae.errors import IpvaeError

STOP_TOLERANCE_BITS = 8  # stop_tolerance is in units of 2**-8 (relative change of the windowed counts)
STOP_TOLERANCE_SCALE = 1 << STOP_TOLERANCE_BITS


class EventOptionsError(IpvaeError):
    """An event-driven option out of range (the message names it)."""


@dataclass(frozen=True)
class EventOptions:
    """Options of the event-driven dynamics (they change z and u; both backends implement them).

    input_threshold: sigma-delta threshold in input payload LSBs (0: every change is sent).
    stop_window: w, steps per convergence window (0: never stop).
    stop_tolerance: eps * 256, the largest relative L1 change of the windowed counts that stops an image.
    """

    input_threshold: int = 0
    stop_window: int = 0
    stop_tolerance: int = 0

    def __post_init__(self) -> None:
        for name in ("input_threshold", "stop_window", "stop_tolerance"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise EventOptionsError(f"{name} must be a non-negative integer, got {value!r}")

    @property
    def stops(self) -> bool:
        return self.stop_window > 0

    @classmethod
    def from_real(cls, *, input_threshold: int = 0, stop_window: int = 0, stop_eps: float = 0.0) -> "EventOptions":
        """Options with the tolerance given as a real fraction eps (rounded to a multiple of 2**-8)."""
        if not np.isfinite(stop_eps) or stop_eps < 0:
            raise EventOptionsError(f"the stopping tolerance must be a non-negative number, got {stop_eps}")
        return cls(input_threshold, stop_window, int(np.rint(stop_eps * STOP_TOLERANCE_SCALE)))


def sigma_delta_events(frames: np.ndarray, threshold: int) -> np.ndarray:
    """Input events of the sigma-delta encoder: frames [S, B, M] integer -> sent payloads [S, B, M] int32.

    Event s is sent at window step s (frame s); x_sent starts at 0 for every image.
    """
    frames = np.asarray(frames, dtype=np.int32)
    sent = np.zeros(frames.shape[1:], dtype=np.int32)  # [B, M] what the receiver holds
    events = np.zeros_like(frames)  # [S, B, M]
    for step in range(frames.shape[0]):
        change = frames[step] - sent  # [B, M]
        events[step] = np.where(np.abs(change) > threshold, change, 0)
        sent += events[step]
    return events


def static_events(x_int: np.ndarray, n_frames: int, threshold: int) -> np.ndarray:
    """Events of a static image [B, M] held for n_frames steps (= sigma_delta_events of the repeated frame).

    Step 0 sends the pixels with |x| > threshold; nothing changes afterwards, so nothing more is sent.
    """
    x_int = np.asarray(x_int, dtype=np.int32)
    events = np.zeros((n_frames,) + x_int.shape, dtype=np.int32)  # [S, B, M]
    events[0] = np.where(np.abs(x_int) > threshold, x_int, 0)
    return events


def converged(window_counts: np.ndarray, previous_counts: np.ndarray, tolerance: int) -> np.ndarray:
    """The stopping test per image: counts [B, K] of this and the previous window -> bool [B]."""
    current = window_counts.astype(np.int64)
    previous = previous_counts.astype(np.int64)
    change = np.abs(current - previous).sum(axis=-1)  # [B]
    total = (current + previous).sum(axis=-1)  # [B]
    return (change << STOP_TOLERANCE_BITS) <= tolerance * total


def is_check_step(step: int, options: EventOptions) -> bool:
    """Whether the stopping test runs after step t (t = 2w, 3w, ...)."""
    return options.stops and step >= 2 * options.stop_window and step % options.stop_window == 0


class StopRegisters:
    """The stopping rule online, per image: the windowed counts and the stopped flags of B images.

    The one definition both the integer reference and the Lava ProcessModels run (``stop_steps`` replays
    the same rule offline on recorded counts). Each step: ``hold`` freezes the stopped images (u held,
    z = 0), then ``update`` adds the counts; at t = 2w, 3w, ... converged images stop after step t.
    ``reset`` starts a new window of images.
    """

    def __init__(self, batch_size: int, n_latents: int, n_steps: int, options: EventOptions) -> None:
        self.options = options
        self.n_steps = n_steps
        self.active = np.ones(batch_size, dtype=bool)  # [B]
        self.last_step = np.full(batch_size, n_steps, dtype=np.int64)  # [B]
        self.window = np.zeros((batch_size, n_latents), dtype=np.int64)  # [B, K] counts of this window
        self.previous = np.zeros((batch_size, n_latents), dtype=np.int64)  # [B, K] counts of the previous one

    def reset(self) -> None:
        self.active[:] = True
        self.last_step[:] = self.n_steps
        self.window[:] = 0
        self.previous[:] = 0

    def hold(self, u_before: np.ndarray, u_after: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(u, z) with the stopped images' rows frozen: u as before the step, z = 0."""
        if self.active.all():
            return u_after, z
        frozen = ~self.active[:, None]  # [B, 1]
        return np.where(frozen, u_before, u_after), np.where(frozen, 0, z)

    def update(self, step: int, z: np.ndarray) -> None:
        if not self.options.stops:
            return
        self.window += z.astype(np.int64, copy=False)  # [B, K] (the float graph's counts are floats)
        if step % self.options.stop_window:
            return
        if is_check_step(step, self.options):
            newly = converged(self.window, self.previous, self.options.stop_tolerance) & self.active
            self.last_step[newly] = step
            self.active &= ~newly
        self.previous, self.window = self.window, np.zeros_like(self.window)


def stop_steps(z: np.ndarray, options: EventOptions) -> np.ndarray:
    """Replay the stopping rule on recorded counts z [T+1, B, K]: the last step of each image, int [B].

    T for an image that never stops. Used by the host (readout, counts) and as the tests' oracle.
    """
    n_window, n_images, _ = z.shape
    n_steps = n_window - 1
    last = np.full(n_images, n_steps, dtype=np.int64)
    if not options.stops:
        return last
    w = options.stop_window
    counts = z.astype(np.int64)
    for step in range(2 * w, n_steps + 1, w):
        current = counts[step - w + 1 : step + 1].sum(axis=0)  # [B, K]
        previous = counts[step - 2 * w + 1 : step - w + 1].sum(axis=0)
        newly = converged(current, previous, options.stop_tolerance) & (last == n_steps)
        last[newly] = step
    return last


class ReadoutMode(enum.Enum):
    END = "end"  # Phi z at the image's last step
    EVERY = "every"  # Phi z every k steps and at the last step
    AVERAGE = "average"  # Phi (counts of the last `window` steps / window) at the last step


@dataclass(frozen=True)
class ReadoutSchedule:
    """When the decoder is applied (host side; it does not change the dynamics).

    every: k for EVERY. window: steps averaged for AVERAGE (clipped to the steps 1..t_last there are).
    """

    mode: ReadoutMode = ReadoutMode.END
    every: int = 1
    window: int = 8

    def __post_init__(self) -> None:
        if not isinstance(self.mode, ReadoutMode):
            raise EventOptionsError(f"unknown readout mode {self.mode!r}")
        for name in ("every", "window"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise EventOptionsError(f"readout {name} must be a positive integer, got {value!r}")


def readout_mask(last_steps: np.ndarray, n_steps: int, schedule: ReadoutSchedule) -> np.ndarray:
    """bool [T+1, B]: the steps at which each image's decoder is applied."""
    steps = np.arange(n_steps + 1)[:, None]  # [T+1, 1]
    at_end = steps == last_steps[None, :]  # [T+1, B]
    if schedule.mode is ReadoutMode.EVERY:
        periodic = (steps % schedule.every == 0) & (steps > 0) & (steps <= last_steps[None, :])
        return at_end | periodic
    return at_end


def readout_counts(z: np.ndarray, last_steps: np.ndarray, schedule: ReadoutSchedule) -> np.ndarray:
    """What the decoder is applied to for the final output, float64 [B, K]: z at the last step, or the average."""
    n_images = z.shape[1]
    images = np.arange(n_images)
    if schedule.mode is not ReadoutMode.AVERAGE:
        return z[last_steps, images].astype(np.float64)  # [B, K]
    cumulative = np.concatenate([np.zeros_like(z[:1], dtype=np.int64), np.cumsum(z[1:], axis=0, dtype=np.int64)])
    first = np.maximum(last_steps - schedule.window, 0)  # [B]: average over steps first+1..last
    summed = cumulative[last_steps, images] - cumulative[first, images]  # [B, K]
    length = np.maximum(last_steps - first, 1)
    return summed / length[:, None]


def reconstruct(z: np.ndarray, decoder_phi: np.ndarray, last_steps: np.ndarray, schedule: ReadoutSchedule) -> np.ndarray:
    """The final reconstruction Phi c of each image under the schedule, float64 [B, M]."""
    return readout_counts(z, last_steps, schedule) @ np.asarray(decoder_phi, dtype=np.float64).T
