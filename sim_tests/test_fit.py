"""`ipvae fit`: storage in closed form, core counts against brute force, timesteps/s in closed form, CLI."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from ipvae.cli import main
from ipvae.lava.accounting.fit import LOIHI2, Figure, StorageFormat, cores_needed, fit_report, plan_groups, steps_per_second, synapse_bytes
from sim_tests.conftest import integer_model


def test_synapse_bytes_picks_the_cheaper_encoding():
    storage = StorageFormat(index_bits=16)
    assert synapse_bytes(100, 10, 10, 8, storage) == (100, "dense")  # 100 x 8 bits beats 100 x 24 bits
    assert synapse_bytes(10, 10, 10, 8, storage) == (30, "sparse")  # 10 x 24 bits beats 100 x 8 bits


def fits(n_cores, neurons, fixed_bytes, table_bytes, limits):
    per_core_neurons = math.ceil(neurons / n_cores)
    return (per_core_neurons <= limits.neurons_per_core.value
            and fixed_bytes / n_cores + table_bytes <= limits.memory_per_core_bytes.value)


@pytest.mark.parametrize("neurons, fixed_bytes, table_bytes", [(512, 400_000, 34_000), (20_000, 10_000, 0), (1, 1, 0), (784, 600_000, 0)])
def test_cores_needed_is_the_fewest_that_fit(neurons, fixed_bytes, table_bytes):
    n = cores_needed(neurons, fixed_bytes, table_bytes, LOIHI2)
    assert fits(n, neurons, fixed_bytes, table_bytes, LOIHI2)
    assert n == 1 or not fits(n - 1, neurons, fixed_bytes, table_bytes, LOIHI2)


def test_plan_keeps_every_core_within_its_memory_and_pruning_shrinks_it():
    model = integer_model("sparse", seed=1, n_steps=4)
    tiny = dataclasses.replace(LOIHI2, memory_per_core_bytes=Figure(32 * 1024, "test", True))
    groups = plan_groups(model, tiny)
    for group in groups:
        assert group.bytes_per_core <= tiny.memory_per_core_bytes.value
    poisson = groups[0]
    # every lateral synapse counts, the self-inhibition held apart in the neuron included (one per neuron here)
    assert poisson.synapses_in == (np.count_nonzero(model.ff.mantissa) + np.count_nonzero(model.rec.mantissa)
                                   + np.count_nonzero(model.self_inhibition.mantissa))
    assert poisson.table_bytes_per_core == model.cdf.nbytes
    # prune 90 % of the lateral synapses: the lateral group switches to the sparse encoding and needs fewer bytes
    mantissa = model.rec.mantissa.copy()
    mantissa[np.random.default_rng(0).random(mantissa.shape) < 0.9] = 0
    pruned = dataclasses.replace(model, rec=dataclasses.replace(model.rec, mantissa=mantissa))
    pruned_poisson = plan_groups(pruned, tiny)[0]
    assert "lateral sparse" in pruned_poisson.encoding
    assert pruned_poisson.synapse_bytes < poisson.synapse_bytes


def test_steps_per_second_closed_form():
    model = integer_model("sparse", seed=1, n_steps=4)
    groups = plan_groups(model, LOIHI2)
    events = {"input": 3.0, "neurons": 2.0}
    ff_fanout = np.count_nonzero(model.ff.mantissa, axis=0).mean()
    rec_fanout = (np.count_nonzero(model.rec.mantissa, axis=0) + (model.self_inhibition.mantissa != 0)).mean()
    dec_fanout = np.count_nonzero(model.decoder.mantissa, axis=0).mean()
    poisson, readout = groups
    t_syn, t_upd = LOIHI2.synaptic_op_seconds.value, LOIHI2.neuron_update_seconds.value
    poisson_time = (3 * ff_fanout + 2 * rec_fanout) / poisson.cores * t_syn + poisson.neurons / poisson.cores * t_upd
    readout_time = 2 * dec_fanout / readout.cores * t_syn + readout.neurons / readout.cores * t_upd
    expected = 1.0 / (max(poisson_time, readout_time) + LOIHI2.barrier_seconds.value)
    assert steps_per_second(model, groups, LOIHI2, events) == pytest.approx(expected)
    report = fit_report(model)
    assert report["fits_one_chip"] and "PLAN, NOT A MEASUREMENT" in report["label"]


def test_plan_cli_json_and_bad_target(mnist_sized_export, capsys):
    assert main(["plan", str(mnist_sized_export), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["target"] == "loihi2" and report["chip_totals"]["neurons"]["used"] == 48 + 784
    assert any(figure["assumption"] for figure in report["figures"].values())
    assert main(["plan", str(mnist_sized_export), "--target", "truenorth"]) != 0
    err = capsys.readouterr().err
    assert "unknown target" in err and len(err.strip().splitlines()) == 1


def test_fit_is_a_deprecated_alias_of_plan(mnist_sized_export, capsys):
    assert main(["plan", str(mnist_sized_export), "--json"]) == 0
    planned = capsys.readouterr()
    assert main(["fit", str(mnist_sized_export), "--json"]) == 0
    aliased = capsys.readouterr()
    assert json.loads(aliased.out) == json.loads(planned.out)
    assert planned.err == "" and aliased.err.strip().splitlines() == ["ipvae fit: deprecated, use 'ipvae plan' (the same arguments)"]


def test_pruning_removes_exactly_the_smallest_synapses():
    from ipvae.lava.accounting.pruning import prune_model, prune_smallest

    model = integer_model("saturating", seed=1, n_steps=4)
    before = model.rec.mantissa
    pruned = prune_smallest(model.rec, 0.5).mantissa
    n_before = np.count_nonzero(before)
    assert np.count_nonzero(pruned) == n_before - round(0.5 * n_before)
    kept, removed = np.abs(before[pruned != 0]), np.abs(before[(pruned == 0) & (before != 0)])
    assert kept.min() >= removed.max()  # every kept synapse is at least as large as every removed one
    assert np.array_equal(pruned[pruned != 0], before[pruned != 0])  # kept ones unchanged
    assert np.array_equal(prune_smallest(model.rec, 0.0).mantissa, before)
    both = prune_model(model, lateral=1.0, feedforward=0.25)
    assert np.count_nonzero(both.rec.mantissa) == 0 and np.array_equal(both.decoder.mantissa, model.decoder.mantissa)
