"""Operation counts against brute-force loops and hand-worked cases; baselines against closed forms."""

from __future__ import annotations

import numpy as np
import pytest

from ipvae.lava.accounting.energy import LOIHI_TABLE, Fanouts, count_event_operations, count_operations


def brute_force(z, payload, fanouts):
    """Loop over every step, image and unit: the definitions of docs/energy.md, literally."""
    n_window, n_images, n_latents = z.shape
    n_steps = n_window - 1
    totals = dict(spikes=0, events=0, input_events=0, ff=0, lateral=0, readout=0, binary=0)
    for t in range(n_window):
        for n in range(n_images):
            frame = payload[n] if payload.ndim == 2 else payload[n, min(t, n_steps - 1)]
            for j, value in enumerate(frame):
                if value != 0:
                    totals["input_events"] += 1
                    totals["ff"] += fanouts.feedforward[j]
                    totals["binary"] += abs(int(value)) * fanouts.feedforward[j]
            for k in range(n_latents):
                count = int(z[t, n, k])
                totals["spikes"] += count
                if count:
                    totals["events"] += 1
                    totals["lateral"] += fanouts.lateral[k]
                    totals["readout"] += fanouts.readout[k]
                    totals["binary"] += count * (fanouts.lateral[k] + fanouts.readout[k])
    return {key: value / n_images for key, value in totals.items()}


@pytest.mark.parametrize("static", [True, False])
def test_counts_equal_brute_force_loops(static):
    rng = np.random.default_rng(0)
    n_steps, n_images, n_latents, n_inputs = 5, 3, 7, 6
    z = rng.integers(0, 4, size=(n_steps + 1, n_images, n_latents)) * (rng.random((n_steps + 1, n_images, n_latents)) < 0.4)
    shape = (n_images, n_inputs) if static else (n_images, n_steps, n_inputs)
    payload = rng.integers(-3, 4, size=shape) * (rng.random(shape) < 0.5)
    w_ff = rng.integers(-2, 3, size=(n_latents, n_inputs))
    w_rec = rng.integers(-2, 3, size=(n_latents, n_latents))
    w_dec = rng.integers(-2, 3, size=(n_inputs, n_latents))
    fanouts = Fanouts.from_matrices(w_ff, w_rec, w_dec)
    counts = count_operations(z, payload, fanouts)
    expected = brute_force(z, payload, fanouts)
    totals = counts.per_inference()
    assert totals["spikes_per_inference"] == pytest.approx(expected["spikes"])
    assert totals["events_per_inference"] == pytest.approx(expected["events"])
    assert totals["input_events_per_inference"] == pytest.approx(expected["input_events"])
    assert totals["synops_feedforward_per_inference"] == pytest.approx(expected["ff"])
    assert totals["synops_lateral_per_inference"] == pytest.approx(expected["lateral"])
    assert totals["synops_readout_per_inference"] == pytest.approx(expected["readout"])
    assert totals["binary_synops_per_inference"] == pytest.approx(expected["binary"])
    assert totals["neuron_updates_per_inference"] == (n_steps + 1) * n_latents


def event_brute_force(z, events, fanouts, last, decode_steps):
    """The event-driven account literally: each sent input event, each non-zero count, each decode."""
    n_window, n_images, n_latents = z.shape
    totals = dict(input_events=0, ff=0, lateral=0, readout=0, updates=0)
    for n in range(n_images):
        for t in range(n_window):
            if t < n_window - 1:
                for j, value in enumerate(events[t, n]):
                    if value != 0:
                        totals["input_events"] += 1
                        totals["ff"] += fanouts.feedforward[j]
            if t <= last[n]:
                totals["updates"] += n_latents
            for k in range(n_latents):
                if z[t, n, k]:
                    totals["lateral"] += fanouts.lateral[k]
                    if t in decode_steps[n]:
                        totals["readout"] += fanouts.readout[k]
    return {key: value / n_images for key, value in totals.items()}


def test_event_counts_equal_brute_force_loops():
    from ipvae.export.events import ReadoutMode, ReadoutSchedule, sigma_delta_events

    rng = np.random.default_rng(5)
    n_steps, n_images, n_latents, n_inputs = 6, 3, 7, 6
    z = rng.integers(0, 4, size=(n_steps + 1, n_images, n_latents)) * (rng.random((n_steps + 1, n_images, n_latents)) < 0.4)
    frames = rng.integers(-20, 21, size=(n_steps, n_images, n_inputs))
    events = sigma_delta_events(frames, threshold=8)
    fanouts = Fanouts.from_matrices(*(rng.integers(-2, 3, size=shape) for shape in
                                      ((n_latents, n_inputs), (n_latents, n_latents), (n_inputs, n_latents))))
    last = np.array([6, 2, 4])
    cases = {
        ReadoutSchedule(): [{6}, {2}, {4}],
        ReadoutSchedule(ReadoutMode.EVERY, every=2): [{2, 4, 6}, {2}, {2, 4}],
    }
    for schedule, decode_steps in cases.items():
        totals = count_event_operations(z, events, fanouts, last, schedule).per_inference()
        expected = event_brute_force(z, events, fanouts, last, decode_steps)
        assert totals["input_events_per_inference"] == pytest.approx(expected["input_events"])
        assert totals["synops_feedforward_per_inference"] == pytest.approx(expected["ff"])
        assert totals["synops_lateral_per_inference"] == pytest.approx(expected["lateral"])
        assert totals["synops_readout_per_inference"] == pytest.approx(expected["readout"])
        assert totals["neuron_updates_per_inference"] == pytest.approx(expected["updates"])


def test_event_counts_of_a_static_image_charge_the_input_once():
    from ipvae.export.events import static_events

    n_steps, n_latents = 5, 4
    x = np.array([[0, 3, -2, 0, 7]])  # 3 non-zero pixels
    fanouts = Fanouts.from_matrices(np.ones((n_latents, 5)), np.ones((n_latents, n_latents)), np.ones((5, n_latents)))
    z = np.zeros((n_steps + 1, 1, n_latents), dtype=np.int64)
    event = count_event_operations(z, static_events(x, n_steps, 0), fanouts, np.array([n_steps])).per_inference()
    resend = count_operations(z, x, fanouts).per_inference()
    assert event["synops_feedforward_per_inference"] == 3 * n_latents
    assert resend["synops_feedforward_per_inference"] == (n_steps + 1) * 3 * n_latents


def test_a_count_of_three_is_three_spikes_but_one_graded_event():
    z = np.zeros((2, 1, 2), dtype=np.int16)  # T = 1: steps 0 and 1, one image, two neurons
    z[1, 0, 0] = 3
    fanouts = Fanouts(feedforward=np.array([0]), lateral=np.array([2, 2]), readout=np.array([5, 5]))
    counts = count_operations(z, np.zeros((1, 1), dtype=np.int32), fanouts)
    totals = counts.per_inference()
    assert totals["spikes_per_inference"] == 3
    assert totals["events_per_inference"] == 1
    assert totals["synops_per_inference"] == 2 + 5  # one event to 2 lateral and 5 readout targets
    assert totals["binary_synops_per_inference"] == 3 * (2 + 5)
    # energy: 7 synops, 2 x 2 neuron updates, 1 spike message (picojoules from the table)
    expected_pj = 7 * LOIHI_TABLE.synaptic_op.picojoules + 4 * LOIHI_TABLE.neuron_update.picojoules + LOIHI_TABLE.spike_message.picojoules
    assert totals["energy_estimate_nj"] == pytest.approx(expected_pj * 1e-3)
