"""Bit-exact parity of the Lava fixed_pt graph (Loihi2SimCfg) with the integer reference.

Oracle: ``ipvae.export.reference.run_reference``, the export side's independent batched implementation of
docs/fixed_point.md; the Lava side is the sigma-delta FrameSource, the BatchDense synapses and the
PoissonNeuron fixed_pt model, B images side by side. Every z_t and u_t (t = 0..T) of every image and
neuron must be identical, with and without the event-driven options (ipvae.export.events).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from ipvae.export.events import EventOptions, stop_steps
from ipvae.export.quantize import LAYOUT_PER_NEURON, LAYOUT_SHARED, quantize_input
from ipvae.export.reference import run_reference
from ipvae.lava.network import build_fixed_network
from ipvae.lava.parity import compare_trajectories
from ipvae.lava.pipeline import rotating_inputs
from ipvae.lava.runner import LavaSimulation
from sim_tests.conftest import images, integer_model

pytestmark = pytest.mark.lava

N_IMAGES = 20
N_STEPS = 64
DEGREES_PER_STEP = 5.0


def reference_of(model, x, n_steps, image_offset=0, options=EventOptions()):
    payload = quantize_input(x, model.input_scale, model.spec.input_bits)
    if payload.ndim == 3:
        payload = payload.transpose(1, 0, 2)  # [T, B, M]
    return run_reference(model, payload, n_steps, image_offset=image_offset, options=options)


def assert_identical(trajectory, reference, image_offset=0):
    report = compare_trajectories(trajectory.z, trajectory.u, reference.z, reference.u, image_offset=image_offset)
    assert report.identical, report.verdict()


@pytest.mark.parametrize(
    "kind, seed, batch, layout",
    [("sparse", 0, 1, LAYOUT_PER_NEURON), ("sparse", 2**64 - 1, 8, LAYOUT_PER_NEURON),
     ("saturating", 12345, 3, LAYOUT_PER_NEURON), ("sparse", 7, 4, LAYOUT_SHARED)],
)
def test_static_images_bit_exact(kind, seed, batch, layout):
    model = integer_model(kind, seed=seed, n_steps=N_STEPS, layout=layout)
    if layout == LAYOUT_PER_NEURON:  # the graph under test has per-neuron exponents and the diagonal held apart
        assert model.ff.per_row and np.any(model.self_inhibition.mantissa) and not np.any(np.diag(model.rec.mantissa))
    x = images(N_IMAGES, seed=12)  # 20 images: with batch 3 the last window is padded
    with LavaSimulation(build_fixed_network(model, batch=batch), progress=False) as simulation:
        trajectory = simulation.run(x)
    reference = reference_of(model, x, N_STEPS)
    assert_identical(trajectory, reference)
    assert np.allclose(trajectory.reconstructions(), reference.recon, rtol=1e-5, atol=1e-5)
    assert trajectory.z.shape == (N_STEPS + 1, N_IMAGES, model.n_latents)
    assert (trajectory.z > 0).mean() > 0.05  # the comparison saw spikes
    if kind == "saturating":  # and both saturation bounds and the spike cap
        spec = model.spec
        assert (trajectory.u == spec.u_min_int).any() and (trajectory.u == spec.u_max_int).any()
        assert (trajectory.z == spec.max_spike_count).any()


@pytest.mark.parametrize(
    "kind, leak_shift, batch, n_steps",
    [("sparse", 3, 4, 32), ("saturating", 8, 3, N_STEPS)],  # a strong leak; the shipped model's 2**-8
)
def test_leak_bit_exact(kind, leak_shift, batch, n_steps):
    """With a leak (docs/fixed_point.md 6.1), every z_t and u_t still equals the integer reference."""
    model = integer_model(kind, seed=31, n_steps=n_steps, leak=2.0**-leak_shift)
    assert model.leak_shift == leak_shift
    x = images(10, seed=13)  # with batch 3 or 4 the last window is padded
    with LavaSimulation(build_fixed_network(model, batch=batch), progress=False) as simulation:
        trajectory = simulation.run(x)
    reference = reference_of(model, x, n_steps)
    assert_identical(trajectory, reference)
    assert (trajectory.z > 0).mean() > 0.05  # the comparison saw spikes
    without_leak = reference_of(dataclasses.replace(model, leak_shift=0), x, n_steps)
    assert not np.array_equal(reference.u, without_leak.u)  # the leak changed the dynamics it was compared on


def test_different_seeds_draw_different_spikes():
    x = images(4, seed=3)
    runs = []
    for seed in (1, 2):
        model = integer_model("sparse", seed=seed, n_steps=8)
        with LavaSimulation(build_fixed_network(model), progress=False) as simulation:
            runs.append(simulation.run(x))
        assert_identical(runs[-1], reference_of(model, x, 8))
    assert not np.array_equal(runs[0].z, runs[1].z)


@pytest.mark.parametrize("threshold", [0, 6])
def test_rotating_input_bit_exact(threshold):
    model = integer_model("sparse", seed=7, n_steps=16)
    static = images(6, seed=21)
    frames = rotating_inputs(static, 16, DEGREES_PER_STEP)  # [N, T, M]
    assert not np.allclose(frames[:, 0], frames[:, -1])  # the input really moves
    options = EventOptions(input_threshold=threshold)
    with LavaSimulation(build_fixed_network(model, batch=4, options=options), progress=False) as simulation:
        trajectory = simulation.run(frames)
    reference = reference_of(model, frames, 16, options=options)
    assert_identical(trajectory, reference)
    static_reference = reference_of(model, static, 16)
    assert not np.array_equal(trajectory.u, static_reference.u)  # the frames reached the neurons
    later_events = np.count_nonzero(reference.input_events[1:])
    assert later_events > 0  # changes were sent after the first frame
    if threshold:  # the threshold held some changes back: the drive differs from the exact one
        assert not np.array_equal(trajectory.u, reference_of(model, frames, 16).u)


def test_stopping_rule_bit_exact_and_replayable_from_the_counts():
    """Images stop at different steps; z = 0 and u held after the stop, identically in both implementations."""
    model = integer_model("sparse", seed=3, n_steps=N_STEPS)
    x = images(12, seed=40)
    options = EventOptions(stop_window=4, stop_tolerance=96)  # relative change <= 0.375
    with LavaSimulation(build_fixed_network(model, batch=5, options=options), progress=False) as simulation:
        trajectory = simulation.run(x)
    reference = reference_of(model, x, N_STEPS, options=options)
    assert_identical(trajectory, reference)
    last = stop_steps(trajectory.z, options)  # the rule replayed on the host from the counts alone
    assert np.array_equal(last, reference.last_step)
    assert (last < N_STEPS).any() and len(np.unique(last)) > 1  # some stopped, at different steps
    for image, step in enumerate(last):
        assert not trajectory.z[step + 1 :, image].any()
        assert (trajectory.u[step + 1 :, image] == trajectory.u[step, image]).all()


def test_reset_between_images_leaves_no_state_behind():
    """Image C gives the same z, u whatever ran before it in the same graph (same image index)."""
    model = integer_model("saturating", seed=5, n_steps=12)
    a, b, c = images(3, seed=8)
    bright = np.ones_like(a)  # drives many neurons to the cap: leaves the most traffic in the Dense buffers
    with LavaSimulation(build_fixed_network(model, batch=1), progress=False) as simulation:
        after_abc = simulation.run(np.stack([a, b, c]))
    with LavaSimulation(build_fixed_network(model, batch=1), progress=False) as simulation:
        after_bright = simulation.run(np.stack([bright, bright, c]))
    with LavaSimulation(build_fixed_network(model, image_offset=2, batch=1), progress=False) as simulation:
        alone = simulation.run(c[None])
    for before in (after_abc, after_bright):
        assert np.array_equal(before.z[:, 2], alone.z[:, 0])
        assert np.array_equal(before.u[:, 2], alone.u[:, 0])
    assert after_bright.z[:, :2].sum() > after_abc.z[:, :2].sum()  # the predecessors really differed


def test_consecutive_runs_continue_the_image_index():
    model = integer_model("sparse", seed=9, n_steps=10)
    x = images(5, seed=30)
    with LavaSimulation(build_fixed_network(model, image_offset=100, batch=2), progress=False) as simulation:
        first = simulation.run(x[:2])
        second = simulation.run(x[2:])
        third = simulation.run(x[:1])  # after a padded window (3 images in 2 windows of 2): index 106
    assert (first.image_offset, second.image_offset, third.image_offset) == (100, 102, 106)
    assert_identical(third, reference_of(model, x[:1], 10, image_offset=106), image_offset=106)
    assert_identical(first, reference_of(model, x[:2], 10, image_offset=100), image_offset=100)
    assert_identical(second, reference_of(model, x[2:], 10, image_offset=102), image_offset=102)


def test_the_tap_reports_what_lavas_own_monitor_reads():
    """The u streamed through StateTap equals the neuron's u Var as lava.proc.monitor.Monitor reads it."""
    from lava.proc.monitor.process import Monitor

    model = integer_model("sparse", seed=2, n_steps=6)
    network = build_fixed_network(model, batch=1)
    x = images(3, seed=60)
    monitor = Monitor()
    monitor.probe(network.block.neuron.u, x.shape[0] * network.window)  # sized for every timestep of the run
    with LavaSimulation(network, progress=False) as simulation:
        trajectory = simulation.run(x)
        monitored = monitor.get_data()[network.block.neuron.name]["u"]  # [timesteps, 1, K], float
    monitored = monitored.reshape(-1, model.n_latents)
    streamed = trajectory.u.transpose(1, 0, 2).reshape(-1, model.n_latents)  # timestep order
    assert np.array_equal(monitored.astype(np.int64), streamed.astype(np.int64))
