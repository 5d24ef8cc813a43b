"""Operation counts of a peer's Lava run, priced with the iP-VAE's per-operation table, its NeuroBench metrics,
and the same network on a conventional processor.

The conventions are docs/energy.md's, applied to the Lava run (``LavaRun``):

- an event is one message: a non-zero payload (a graded delta carries its value as payload; a binary spike);
- synaptic ops of a Dense block = sum over the events it receives of the sender's fan-out (non-zero weights
  in its column of the integer matrix Lava holds): one op per (event, target), graded payloads as one op;
- groups: ``feedforward`` = input -> hidden (the encoder), ``readout`` = hidden -> output (the decoder);
  there is no lateral group;
- neuron updates: every spiking / sigma-delta neuron the chip runs, every timestep of the window: H per step
  for the SDNN (its output Sigma units are accumulators of the decoder's weighted events, the counterpart of
  the iP-VAE's readout Phi z, which is charged as synaptic ops only), H + M per step for the CUBA net (its
  output units are LIF neurons that spike);
- messages: input events + hidden events (+ the CUBA output spikes, sent to the host);
- energy: ``OperationCounts.energy_joules`` with ``LOIHI_TABLE``, the very formula and table of the iP-VAE.
"""

from __future__ import annotations

import numpy as np

from ipvae.lava.accounting.energy import OperationCounts
from ipvae.lava.accounting.neurobench_metrics import NeuroBenchMetrics, _layer_ops
from ipvae.lava.accounting.pricing import PRECISIONS, WeightSet, Workload, price
from ipvae.lava.peers.lava_run import LavaRun
from ipvae.lava.peers.nets import SIGMA_DELTA

BITS_PER_WEIGHT = 8  # slayer's blocks are 8-bit quantization ready: mantissas of at most 8 bits (+ exponent)
BITS_PER_BYTE = 8


def fanouts(weights: np.ndarray) -> np.ndarray:
    """Synapses per presynaptic unit: non-zero entries per column of [out, in]; [in]."""
    return np.count_nonzero(weights, axis=0).astype(np.int64)


def operation_counts(kind: str, run: LavaRun) -> OperationCounts:
    """Per-step counts [W] averaged over images, in the iP-VAE's OperationCounts (no lateral group)."""
    encoder, decoder = run.weights
    n_images, n_outputs, _ = run.output.shape
    n_hidden = run.hidden.shape[1]
    input_events = (run.inputs != 0)  # [N, M, W]
    hidden_events = (run.hidden != 0)  # [N, H, W]
    synops_feedforward = np.einsum("nmw,m->w", input_events, fanouts(encoder)) / n_images  # [W]
    synops_readout = np.einsum("nhw,h->w", hidden_events, fanouts(decoder)) / n_images  # [W]
    events = hidden_events.sum(axis=(0, 1)) / n_images  # [W]
    spikes = events.copy()
    neurons = n_hidden
    if kind != SIGMA_DELTA:
        output_spikes = (run.output != 0).sum(axis=(0, 1)) / n_images  # [W]
        events, spikes, neurons = events + output_spikes, spikes + output_spikes, n_hidden + n_outputs
    n_window = run.output.shape[-1]
    synops = synops_feedforward + synops_readout
    return OperationCounts(
        spikes=spikes, events=events, input_events=input_events.sum(axis=(0, 1)) / n_images,
        synops_feedforward=synops_feedforward, synops_lateral=np.zeros(n_window), synops_readout=synops_readout,
        binary_synops=synops, neuron_updates=np.full(n_window, float(neurons)),
    )


def neurobench(kind: str, run: LavaRun) -> NeuroBenchMetrics:
    """NeuroBench's definitions (ipvae.lava.accounting.neurobench_metrics) of the run: two connection layers
    called once per image and step (batch 1), the neuron layers' outputs for activation sparsity."""
    encoder, decoder = run.weights
    n_images = run.output.shape[0]
    layers = ((run.inputs, encoder), (run.hidden, decoder))
    macs = acs = dense = 0
    for inputs, weights in layers:
        calls = inputs.transpose(0, 2, 1).reshape(-1, inputs.shape[1])  # [N * W, n_in]
        effective, spiking = _layer_ops(calls, weights)
        acs += int(effective[spiking].sum())
        macs += int(effective[~spiking].sum())
        dense += calls.shape[0] * weights.size
    activations = [run.hidden] if kind == SIGMA_DELTA else [run.hidden, run.output]
    zeros = sum(int(np.count_nonzero(a == 0)) for a in activations)
    total = sum(a.size for a in activations)
    n_weights = sum(w.size for w in run.weights)
    return NeuroBenchMetrics(
        activation_sparsity=zeros / total,
        effective_macs=macs / n_images,
        effective_acs=acs / n_images,
        dense_synops=dense / n_images,
        footprint_bytes=int(np.ceil(n_weights * BITS_PER_WEIGHT / BITS_PER_BYTE)),
        connection_sparsity=sum(int(w.size - np.count_nonzero(w)) for w in run.weights) / n_weights,
    )


def conventional_autoencoder(weights: tuple[np.ndarray, ...]) -> dict:
    """The same autoencoder as one dense forward pass on a conventional processor (MACs = its weights; each
    matrix read once), priced like the iP-VAE's baselines (ipvae.lava.accounting.pricing): fp32 and int8,
    arithmetic only and with weight reads."""
    workload = Workload(
        name="dense_autoencoder",
        macs=int(sum(w.size for w in weights)),
        weight_sets=tuple(WeightSet(f"W{index + 1} {list(w.shape)}", int(w.size), 1)
                          for index, w in enumerate(weights)),
        description="the peer's 784-H-784 network, one dense forward pass per image",
    )
    priced = {}
    for precision in PRECISIONS:
        result = price(workload, precision)
        priced[f"dense_autoencoder_{precision.name}"] = {
            "macs": result.macs, "arithmetic_nj": result.arithmetic_nj, "with_memory_nj": result.with_memory_nj,
            "placement": result.placement, "what": workload.description,
        }
    return priced
