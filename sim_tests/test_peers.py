"""The lava-dl peers: the export loaded by netx and run on Lava reproduces slayer's forward pass; the counts of
that run against a direct count; the verdict rule on planted points; benchmarks/peers.py end to end (tiny)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ipvae.lava.accounting.pricing import LOIHI_TABLE, PICO
from ipvae.lava.peers.counting import neurobench, operation_counts
from ipvae.lava.peers.lava_run import SIGMA_OUTPUT_SCALE, LavaRun, lava_reconstruction, run_on_lava
from ipvae.lava.peers.nets import N_PIXELS, CubaConfig, SigmaDeltaConfig, build, export_hdf5, held
from ipvae.lava.peers.report import compare_at, verdict

ROOT = Path(__file__).resolve().parents[1]
N_IMAGES = 3
REQUIRED_KEYS = ("name", "framework", "loaded_with", "backend", "r2", "synops_per_inference", "energy_estimate_nj", "T")
HIDDEN = 32


def _images(n_images: int, seed: int) -> np.ndarray:
    """MNIST-like still images: sparse strokes in [0, 1]."""
    rng = np.random.default_rng(seed)
    x = rng.random((n_images, N_PIXELS)) * (rng.random((n_images, N_PIXELS)) < 0.2)
    return x.astype(np.float32)


def _model(config, seed: int = 0, weight_std: float = 0.5) -> torch.nn.Module:
    """An untrained peer with larger weights than slayer's default, so that every layer is active."""
    torch.manual_seed(seed)
    model = build(config)
    with torch.no_grad():
        for block in model.blocks[1:]:
            block.synapse.weight.normal_(0.0, weight_std)
        model(held(torch.zeros(1, N_PIXELS), 1))  # slayer learns the blocks' shapes on the first forward pass
    return model.eval()


def _slayer(model, x: np.ndarray, n_steps: int):
    with torch.no_grad():
        return [t.numpy() for t in model(held(torch.as_tensor(x), n_steps))]


@pytest.mark.lava
def test_sigma_delta_on_lava_is_slayer_exactly(tmp_path):
    """netx builds Dense + SigmaDelta, Dense + Sigma from the file; the Lava run's hidden deltas and output sigma
    equal slayer's (fixed point: 6 fractional bits of weights, 12 of payloads, 18 of the output sigma)."""
    model = _model(SigmaDeltaConfig(hidden=HIDDEN, threshold=4 / 64), weight_std=0.15)  # sigma within 24 bits
    path = tmp_path / "sdnn.net"
    export_hdf5(model, path)
    x = _images(N_IMAGES, seed=1)
    window = 4
    run = run_on_lava(path, model, x, window)
    _, hidden, output = _slayer(model, x, window)
    assert run.loaded_with == "lava.lib.dl.netx.hdf5.Network"
    recon = lava_reconstruction("sigma_delta", run.output)
    assert np.abs(recon).max() > 0.1  # the test is not passing on silence
    np.testing.assert_allclose(recon, output[..., -1], rtol=0, atol=1 / SIGMA_OUTPUT_SCALE)  # slayer: float32
    # the hidden block sends each non-zero delta once, one step after slayer's (the Dense block's synaptic delay)
    np.testing.assert_array_equal((run.hidden[..., 1:] != 0).sum(axis=(1, 2)), (hidden != 0).sum(axis=(1, 2)))
    assert (run.hidden != 0).sum() > 0


@pytest.mark.lava
def test_cuba_on_lava_is_slayer_exactly(tmp_path):
    """netx's LIFReset neurons, reset every window, give slayer's spikes of every image (current decay 1, where
    netx's LIF and slayer's CUBA neuron agree bit for bit)."""
    model = _model(CubaConfig(hidden=HIDDEN, steps=6, voltage_decay=0.1, input_threshold=0.5))
    path = tmp_path / "cuba.net"
    export_hdf5(model, path)
    x = _images(N_IMAGES, seed=2)
    run = run_on_lava(path, model, x, 6)
    sent, hidden, output = _slayer(model, x, 6)
    np.testing.assert_array_equal(run.inputs[..., :-1], sent[..., :-1])  # the last step's would act after the window
    np.testing.assert_array_equal(run.hidden, hidden)
    assert hidden.sum() > 0 and output.sum() > 0
    np.testing.assert_allclose(lava_reconstruction("cuba", run.output), output.sum(axis=-1) / 6, rtol=0, atol=1e-6)


def _planted_run(kind: str, seed: int) -> LavaRun:
    rng = np.random.default_rng(seed)
    n, m, h, w = 4, 10, 6, 3
    encoder = rng.integers(-3, 4, (h, m)) * (rng.random((h, m)) < 0.6)
    decoder = rng.integers(-3, 4, (m, h)) * (rng.random((m, h)) < 0.6)
    inputs = rng.integers(-5, 6, (n, m, w)) * (rng.random((n, m, w)) < 0.4)
    hidden = rng.integers(0, 2, (n, h, w))
    output = rng.integers(0, 2, (n, m, w)).astype(float)
    return LavaRun(inputs, hidden, output, (encoder, decoder), "planted")


@pytest.mark.parametrize("kind", ["sigma_delta", "cuba"])
def test_counts_against_a_direct_count(kind):
    run = _planted_run(kind, seed=3)
    encoder, decoder = run.weights
    n_images, _, window = run.inputs.shape
    ff = readout = messages = 0
    for image in range(n_images):
        for step in range(window):
            for pixel in np.flatnonzero(run.inputs[image, :, step]):
                ff += np.count_nonzero(encoder[:, pixel])
                messages += 1
            for unit in np.flatnonzero(run.hidden[image, :, step]):
                readout += np.count_nonzero(decoder[:, unit])
                messages += 1
            if kind == "cuba":
                messages += np.count_nonzero(run.output[image, :, step])
    neurons = encoder.shape[0] + (decoder.shape[0] if kind == "cuba" else 0)
    totals = operation_counts(kind, run).per_inference()
    assert totals["synops_feedforward_per_inference"] == pytest.approx(ff / n_images)
    assert totals["synops_readout_per_inference"] == pytest.approx(readout / n_images)
    assert totals["neuron_updates_per_inference"] == neurons * window
    expected = PICO / 1e-9 * ((ff + readout) / n_images * LOIHI_TABLE.synaptic_op.picojoules
                              + neurons * window * LOIHI_TABLE.neuron_update.picojoules
                              + messages / n_images * LOIHI_TABLE.spike_message.picojoules)
    assert totals["energy_estimate_nj"] == pytest.approx(expected)
    metrics = neurobench(kind, run)  # NeuroBench's effective ops count the same (event, synapse) pairs
    assert metrics.effective_macs + metrics.effective_acs == pytest.approx((ff + readout) / n_images)


def test_verdict_rule_on_planted_points():
    ipvae = [{"name": "a", "T": 64, "r2": 0.92, "energy_estimate_nj": 10.0},
             {"name": "b", "T": 32, "r2": 0.915, "energy_estimate_nj": 5.0},
             {"name": "c", "T": 8, "r2": 0.80, "energy_estimate_nj": 1.0}]
    peers = [{"name": "p", "T": 3, "r2": 0.95, "energy_estimate_nj": 2.0},
             {"name": "q", "T": 3, "r2": 0.85, "energy_estimate_nj": 0.5}]
    result = verdict(ipvae, peers)
    at_ipvae = result["at_ipvae_level"]  # level 0.91: iP-VAE's cheapest is b (5.0), the peers' p (2.0)
    assert at_ipvae["ipvae_point"] == "b" and at_ipvae["peer_point"] == "p"
    assert at_ipvae["peer_over_ipvae"] == pytest.approx(0.4) and at_ipvae["cheaper"] == "lava-dl peer"
    assert result["at_peer_level"]["cheaper"] == "only the lava-dl peers reach it"  # 0.94: no iP-VAE point
    assert compare_at(0.99, ipvae, peers)["cheaper"] == "neither reaches it"


def test_missing_fashion_mnist_is_skipped_in_one_line(monkeypatch):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import peers as benchmark

    from ipvae.errors import IpvaeError

    import ipvae.data as data

    real = data.get_dataset

    def without_fashion(name, split, **kw):
        if name == "fashion_mnist":
            raise IpvaeError("fashion_mnist needs the Debian package dataset-fashion-mnist")
        return real(name, split, **kw)

    monkeypatch.setattr(data, "get_dataset", without_fashion)
    lines = []
    sets = benchmark.image_sets(benchmark.replace(benchmark.QUICK, mnist_images=2, novel_images=2), lines.append)
    assert list(sets) == ["mnist", benchmark.NOVEL_SETS[1]]
    assert len(lines) == 1 and "fashion_mnist skipped" in lines[0]


@pytest.mark.lava
def test_peers_benchmark_tiny(tmp_path):
    """benchmarks/peers.py end to end: a sigma-delta and a CUBA peer on Lava beside the iP-VAE's points (a random
    K = 512 iP-VAE stands in for the shipped one, whose export would take most of the time)."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "peers.py"), str(tmp_path / "no_run"), "--quick", "--images", "2",
         "--train-images", "200", "--thresholds", "4", "--sets", "mnist", "--out", str(tmp_path)],
        capture_output=True, text=True, cwd=ROOT, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "peers.json").read_text())
    kinds = {p["kind"] for p in report["peers"]}
    assert kinds == {"sigma_delta", "cuba"}
    for entry in report["peers"] + report["ipvae"]:
        for key in REQUIRED_KEYS:
            assert key in entry, key
    assert all(p["framework"] == "lava-dl" and p["backend"] == "lava" for p in report["peers"])
    assert all(p["loaded_with"] == "lava.lib.dl.netx.hdf5.Network" for p in report["peers"])
    assert (tmp_path / "peers_pareto.png").stat().st_size > 0
    assert "Verdict" in (tmp_path / "peers.md").read_text()


def test_peers_benchmark_refuses_bad_flags(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "peers.py"), "--images", "0", "--out",
                             str(tmp_path)], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
