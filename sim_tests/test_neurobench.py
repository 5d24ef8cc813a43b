"""NeuroBench-definition metrics: against our own counts (a second implementation), closed forms, and
neurobench 2.3.0's own layer-op counter and connection sparsity where it is installed (extra [neurobench])."""

from __future__ import annotations

import numpy as np
import pytest

from ipvae.lava.accounting.energy import Fanouts, count_operations
from ipvae.lava.accounting.neurobench_metrics import neurobench_metrics, resent_every_step
from sim_tests.conftest import integer_model

N_STEPS, N_IMAGES = 4, 3


def planted_run(seed: int = 0):
    """A model and counts with some steps binary (0/1 only: accumulates) and some graded (MACs)."""
    model = integer_model("sparse", seed=1, n_steps=N_STEPS)
    rng = np.random.default_rng(seed)
    shape = (N_STEPS + 1, N_IMAGES, model.n_latents)
    z = rng.integers(0, 4, size=shape) * (rng.random(shape) < 0.3)  # graded
    z[1::2] = np.minimum(z[1::2], 1)  # odd steps binary
    payload = rng.integers(0, 128, size=(N_IMAGES, model.n_inputs)) * (rng.random((N_IMAGES, model.n_inputs)) < 0.5)
    return model, z.astype(np.int16), payload.astype(np.int32)


def test_effective_synops_equal_our_synaptic_op_count():
    model, z, payload = planted_run()
    ours = count_operations(z, payload, Fanouts.from_integer_model(model)).per_inference()
    metrics = neurobench_metrics(z, resent_every_step(payload, N_STEPS + 1), model)
    assert metrics.effective_macs + metrics.effective_acs == pytest.approx(ours["synops_per_inference"])
    assert metrics.effective_acs > 0 and metrics.effective_macs > 0
    k, m = model.n_latents, model.n_inputs
    assert metrics.dense_synops == (N_STEPS + 1) * (k * m + k * k + m * k)
    assert metrics.activation_sparsity == pytest.approx(np.sum(z == 0) / z.size)


def test_against_neurobench_layer_counter_and_connection_sparsity():
    pytest.importorskip("neurobench", reason="optional extra: pip install '.[neurobench]'")
    import torch
    from neurobench.metrics.static import ConnectionSparsity
    from neurobench.metrics.utils.layers import single_layer_MACs
    from neurobench.models import TorchModel

    model, z, payload = planted_run(seed=3)

    def linear(mantissa):
        layer = torch.nn.Linear(mantissa.shape[1], mantissa.shape[0], bias=False)
        layer.weight.data = torch.from_numpy(mantissa.astype(np.float32))
        return layer

    ff, rec, dec = linear(model.ff.mantissa), linear(model.rec.mantissa), linear(model.decoder.mantissa)
    totals = {"macs": 0, "acs": 0, "dense": 0}
    sends = resent_every_step(payload, N_STEPS + 1)
    for t in range(N_STEPS + 1):
        for n in range(N_IMAGES):  # batch 1: one layer call per image, as our metric defines
            for layer, values in ((ff, sends[t, n]), (rec, z[t, n]), (dec, z[t, n])):
                inputs = torch.from_numpy(values.astype(np.float32))[None]  # [1, n_in]
                effective, spiking = single_layer_MACs(inputs, layer)
                total, _ = single_layer_MACs(inputs, layer, total=True)
                totals["acs" if spiking else "macs"] += effective
                totals["dense"] += total
    ours = neurobench_metrics(z, sends, model)
    assert ours.effective_macs == pytest.approx(totals["macs"] / N_IMAGES)
    assert ours.effective_acs == pytest.approx(totals["acs"] / N_IMAGES)
    assert ours.dense_synops == pytest.approx(totals["dense"] / N_IMAGES)
    their_sparsity = ConnectionSparsity()(TorchModel(torch.nn.Sequential(ff, rec, dec)))
    assert ours.connection_sparsity == pytest.approx(their_sparsity, abs=5e-5)  # they round to 4 decimals
