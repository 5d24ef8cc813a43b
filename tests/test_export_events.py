"""Event-driven options of the integer model (ipvae.export.events) and their effect on the integer reference.

Oracles: literal per-pixel / per-image loops of the definitions in docs/fixed_point.md section 11; the
reference without options (the per-step dynamics, itself checked against a timestep simulation of
the spec in test_export_reference.py); hand-worked cases.
"""

from __future__ import annotations

import numpy as np
import pytest

from ipvae.export.events import (
    STOP_TOLERANCE_SCALE,
    EventOptions,
    EventOptionsError,
    ReadoutMode,
    ReadoutSchedule,
    converged,
    readout_counts,
    readout_mask,
    sigma_delta_events,
    static_events,
    stop_steps,
)
from ipvae.export.quantize import quantize, spec_for
from ipvae.export.reference import run_reference
from ipvae.export.synthetic import SyntheticConfig, random_float_params


def sigma_delta_loop(frames: np.ndarray, threshold: int) -> np.ndarray:
    """The encoder pixel by pixel: send the change when |x - x_sent| > threshold."""
    events = np.zeros_like(frames)
    n_frames, n_images, n_pixels = frames.shape
    for b in range(n_images):
        for j in range(n_pixels):
            sent = 0
            for s in range(n_frames):
                change = int(frames[s, b, j]) - sent
                if abs(change) > threshold:
                    events[s, b, j] = change
                    sent += change
    return events


@pytest.mark.parametrize("threshold", [0, 1, 5, 40])
def test_sigma_delta_events_equal_the_pixel_loop_and_track_within_the_threshold(threshold):
    rng = np.random.default_rng(threshold)
    frames = np.cumsum(rng.integers(-9, 10, size=(12, 3, 10)), axis=0).clip(-127, 127)  # [S, B, M] drifting
    events = sigma_delta_events(frames, threshold)
    assert np.array_equal(events, sigma_delta_loop(frames, threshold))
    held = np.cumsum(events, axis=0)  # what the receiver holds after each step
    assert np.abs(frames - held).max() <= threshold
    if threshold == 0:
        assert np.array_equal(held, frames)  # threshold 0 is exact


def test_static_events_are_the_sigma_delta_events_of_the_repeated_frame():
    x = np.random.default_rng(1).integers(-127, 128, size=(4, 9))
    for threshold in (0, 30):
        repeated = np.repeat(x[None], 6, axis=0)
        assert np.array_equal(static_events(x, 6, threshold), sigma_delta_events(repeated, threshold))
    assert np.count_nonzero(static_events(x, 6, 0)[1:]) == 0  # sent once


def test_converged_hand_worked():
    current = np.array([[3, 0, 1], [0, 0, 0]])
    previous = np.array([[2, 1, 1], [0, 0, 0]])
    # image 0: change 2 of total 8 = 0.25; image 1: silent in both windows (0 <= 0)
    assert converged(current, previous, STOP_TOLERANCE_SCALE // 4).tolist() == [True, True]
    assert converged(current, previous, STOP_TOLERANCE_SCALE // 4 - 1).tolist() == [False, True]


def stop_loop(z: np.ndarray, window: int, tolerance: int) -> list[int]:
    """The stopping rule per image, written out with Python integers."""
    n_steps = z.shape[0] - 1
    result = []
    for image in range(z.shape[1]):
        last = n_steps
        for step in range(2 * window, n_steps + 1, window):
            current = z[step - window + 1 : step + 1, image].sum(axis=0)
            previous = z[step - 2 * window + 1 : step - window + 1, image].sum(axis=0)
            change = int(np.abs(current - previous).sum())
            total = int((current + previous).sum())
            if change * STOP_TOLERANCE_SCALE <= tolerance * total:
                last = step
                break
        result.append(last)
    return result


@pytest.fixture(scope="module")
def model():
    params = random_float_params(SyntheticConfig(n_inputs=30, n_latents=12, phi_std=0.1, sigma=1.0, step_size=0.2, seed=7))
    return quantize(params, spec_for(params, seed=5), input_scale=1.0 / 127, n_steps=24)


def payloads(model, n_images, seed):
    return np.random.default_rng(seed).integers(0, 128, size=(n_images, model.n_inputs))


def test_a_static_threshold_drops_exactly_the_faint_pixels(model):
    x = payloads(model, 6, seed=4)
    threshold = 60
    with_threshold = run_reference(model, x, options=EventOptions(input_threshold=threshold))
    faint_removed = run_reference(model, np.where(x > threshold, x, 0))
    assert np.array_equal(with_threshold.z, faint_removed.z) and np.array_equal(with_threshold.u, faint_removed.u)


def test_stopping_freezes_images_and_leaves_the_trajectory_before_the_stop_unchanged(model):
    x = payloads(model, 10, seed=9)
    options = EventOptions(stop_window=3, stop_tolerance=STOP_TOLERANCE_SCALE // 2)
    free = run_reference(model, x)
    stopped = run_reference(model, x, options=options)
    assert stopped.last_step.tolist() == stop_loop(free.z, 3, options.stop_tolerance)  # decided on the free run's counts
    assert np.array_equal(stop_steps(stopped.z, options), stopped.last_step)
    assert (stopped.last_step < model.n_steps).any()
    for image, last in enumerate(stopped.last_step):
        assert np.array_equal(stopped.z[: last + 1, image], free.z[: last + 1, image])
        assert np.array_equal(stopped.u[: last + 1, image], free.u[: last + 1, image])
        assert not stopped.z[last + 1 :, image].any()
        assert (stopped.u[last + 1 :, image] == stopped.u[last, image]).all()


def test_readout_schedules():
    rng = np.random.default_rng(2)
    z = rng.integers(0, 4, size=(9, 3, 5))  # T = 8
    last = np.array([8, 4, 6])
    end = readout_mask(last, 8, ReadoutSchedule())
    assert end.sum(axis=0).tolist() == [1, 1, 1] and end[last, np.arange(3)].all()
    every = readout_mask(last, 8, ReadoutSchedule(ReadoutMode.EVERY, every=3))
    assert [np.flatnonzero(every[:, b]).tolist() for b in range(3)] == [[3, 6, 8], [3, 4], [3, 6]]
    assert np.array_equal(readout_counts(z, last, ReadoutSchedule()), z[last, np.arange(3)])
    average = readout_counts(z, last, ReadoutSchedule(ReadoutMode.AVERAGE, window=3))
    for b in range(3):
        assert np.allclose(average[b], z[last[b] - 2 : last[b] + 1, b].mean(axis=0))


@pytest.mark.parametrize("fields", [dict(input_threshold=-1), dict(stop_window=1.5), dict(stop_tolerance=True)])
def test_bad_options_are_refused(fields):
    with pytest.raises(EventOptionsError):
        EventOptions(**fields)
