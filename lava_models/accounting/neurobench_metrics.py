"""The deployment's metrics in NeuroBench's definitions (Yik et al., "The NeuroBench framework for benchmarking
neuromorphic computing algorithms and systems", Nature Communications 16, 2025; neurobench 2.3.0), so figures
compare with published NeuroBench results. docs/energy.md says where they differ from our own counts.

The iP-VAE step as NeuroBench sees it: three connection layers per timestep, feed-forward (input payload ->
K), lateral (z -> K) and readout (z -> M), and one neuron layer (the Poisson counts z).

- activation sparsity: zero neuron outputs / all neuron outputs, over neurons, timesteps and images;
- synaptic operations per inference: for each layer call, the (non-zero input, non-zero weight) pairs;
  a call whose input holds only 0 and +-1 counts them as accumulates (``effective_acs``), any other
  input (graded counts, 8-bit pixels) as multiply-accumulates (``effective_macs``); ``dense`` counts
  every (input, weight) pair, zeros included. Each image is its own call here (batch 1);
- footprint: bytes of the stored weights and tables (NeuroBench: parameters and buffers at their dtype);
- neuron updates are not synaptic operations in NeuroBench's definition, so the leak (part of the neuron
  update, docs/fixed_point.md 6.1) changes none of these figures;
- connection sparsity: zero weights / all weights of the connection layers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

BITS_PER_BYTE = 8
SPIKE_VALUES = (-1, 0, 1)  # NeuroBench treats a layer input holding only these as spikes (accumulates)


@dataclass(frozen=True)
class NeuroBenchMetrics:
    activation_sparsity: float
    effective_macs: float
    effective_acs: float
    dense_synops: float
    footprint_bytes: int
    connection_sparsity: float

    def as_dict(self) -> dict:
        return asdict(self)


def _layer_ops(inputs: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per call (row of ``inputs`` [C, n_in]) with weights [n_out, n_in]: effective pairs [C] and 'spiking' [C]."""
    fanout = np.count_nonzero(weights, axis=0)  # [n_in]
    effective = (inputs != 0).astype(np.int64) @ fanout  # [C]
    spiking = np.isin(inputs, SPIKE_VALUES).all(axis=1)  # [C]
    return effective, spiking


def synaptic_operations(z: np.ndarray, input_sends: np.ndarray, model) -> tuple[float, float, float]:
    """(effective MACs, effective ACs, dense) per inference.

    z: counts [T+1, N, K]; input_sends: the payloads the source sent during each window, [S, N, M] (S = T+1
    when a static image is re-sent every timestep).
    """
    n_window, n_images, n_latents = z.shape
    layers = (
        (input_sends, model.ff.mantissa),  # [S, N, M] into [K, M]
        (z, model.lateral_synapses()),  # [T+1, N, K] into [K, K] (the self-inhibition included)
        (z, model.decoder.mantissa),  # [T+1, N, K] into [M, K]
    )
    macs = acs = dense = 0
    for inputs, weights in layers:
        calls = inputs.reshape(-1, inputs.shape[-1])  # [S * N, n_in]
        effective, spiking = _layer_ops(calls, weights)
        acs += int(effective[spiking].sum())
        macs += int(effective[~spiking].sum())
        dense += calls.shape[0] * weights.size
    return macs / n_images, acs / n_images, dense / n_images


def footprint_bytes(model) -> int:
    """Stored bytes: ff, lateral and decoder mantissas at their bit widths, bias and u_prior at the state width,
    and the sampler table."""
    spec = model.spec
    weight_bits = (model.ff.mantissa.size + model.rec.mantissa.size) * spec.weight_bits + model.decoder.mantissa.size * spec.decoder_bits
    state_bits = (model.bias.size + model.u_prior.size) * spec.u_bits
    return int(np.ceil((weight_bits + state_bits) / BITS_PER_BYTE)) + int(model.cdf.nbytes)


def connection_sparsity(model) -> float:
    matrices = (model.ff.mantissa, model.lateral_synapses(), model.decoder.mantissa)
    zeros = sum(int(m.size - np.count_nonzero(m)) for m in matrices)
    return zeros / sum(m.size for m in matrices)


def neurobench_metrics(z: np.ndarray, input_sends: np.ndarray, model) -> NeuroBenchMetrics:
    macs, acs, dense = synaptic_operations(z, input_sends, model)
    return NeuroBenchMetrics(
        activation_sparsity=float(np.mean(z == 0)),
        effective_macs=macs,
        effective_acs=acs,
        dense_synops=dense,
        footprint_bytes=footprint_bytes(model),
        connection_sparsity=connection_sparsity(model),
    )


def resent_every_step(payload: np.ndarray, n_window: int) -> np.ndarray:
    """The sends of today's source: a static image [N, M] every timestep -> [T+1, N, M]; frames [N, F, M]
    as the source sends them (timestep t + 1 sends frame min(t, F - 1))."""
    if payload.ndim == 2:
        return np.broadcast_to(payload, (n_window,) + payload.shape)
    frame_of_step = np.minimum(np.arange(n_window), payload.shape[1] - 1)  # [T+1]
    return payload[:, frame_of_step].transpose(1, 0, 2)
