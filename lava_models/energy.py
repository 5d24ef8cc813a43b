"""Operation counts and energy proxies of the iP-VAE inference loop (docs/energy.md explains every number).

Counting conventions (per inference = one image's window of T + 1 Lava timesteps, t = 0..T):

- A spike count is a count: ``spikes`` sums the integer counts z (a count of 3 is 3 spikes).
- A graded spike *event* is one non-zero count: one message that carries the count as its payload
  (``events``). Input pixels are graded events too (non-zero payloads of the frame sent that timestep).
- Synaptic operations of a synapse group = sum over events of the presynaptic neuron's fan-out
  (its non-zero weights): one multiply-accumulate of payload x weight per (event, target). Loihi 2
  processes a graded spike as one synaptic op per target, whatever its payload.
  ``binary_synops`` is what a binary-spike implementation would need: counts x fan-out.
- Groups: ``feedforward`` (input -> neurons), ``lateral`` (neurons -> neurons), ``readout``
  (neurons -> pixels, the decoder Phi; computed on the host in simulation, counted as a synapse group).
- ``neuron_updates``: K per timestep (every neuron integrates and samples every timestep).

The energy estimate multiplies these counts by a per-operation table (``LOIHI_TABLE``, published
Loihi figures) and is only an estimate. ``dense_baselines`` counts the same inference as dense MACs
for the float model on a conventional processor, and one forward pass of an amortized VAE of the
paper's size, priced with Horowitz's 45 nm arithmetic costs (``CONVENTIONAL_TABLE``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PICO = 1e-12
NANO = 1e-9

# Amortized P-VAE of the paper (convolutional, MNIST): 6.79M parameters (docs/energy.md, ipvae.md table).
AMORTIZED_VAE_PARAMS = 6_790_000


@dataclass(frozen=True)
class OpCost:
    """Energy of one operation, in picojoules, with where the number comes from."""

    name: str
    picojoules: float
    source: str


@dataclass(frozen=True)
class EnergyTable:
    """A named per-operation energy table (every entry an estimate with its source)."""

    name: str
    synaptic_op: OpCost
    neuron_update: OpCost
    spike_message: OpCost


DAVIES_2018 = "Davies et al., 'Loihi: a neuromorphic manycore processor with on-chip learning', IEEE Micro 38(1), 2018, Table 2"
HOROWITZ_2014 = "Horowitz, 'Computing's energy problem (and what we can do about it)', ISSCC 2014, 45 nm, 0.9 V"

LOIHI_TABLE = EnergyTable(
    name="loihi1-davies2018",
    synaptic_op=OpCost("synaptic spike op (min)", 23.6, DAVIES_2018),
    # Table 2 lists 52 pJ and 81 pJ for a neuron update (active / inactive); we charge the larger, 81 pJ,
    # for every update: the Poisson neuron's sampler is more work than a LIF update.
    neuron_update=OpCost("neuron update (larger of the two published figures)", 81.0, DAVIES_2018),
    spike_message=OpCost("within-tile spike energy", 1.7, DAVIES_2018),
)


@dataclass(frozen=True)
class ConventionalTable:
    """Arithmetic costs of one multiply-accumulate on a conventional processor (memory access excluded)."""

    fp32_mac: OpCost
    int8_mac: OpCost


CONVENTIONAL_TABLE = ConventionalTable(
    fp32_mac=OpCost("fp32 multiply (3.7 pJ) + fp32 add (0.9 pJ)", 4.6, HOROWITZ_2014),
    int8_mac=OpCost("int8 multiply (0.2 pJ) + int8 add (0.03 pJ)", 0.23, HOROWITZ_2014),
)


@dataclass(frozen=True, eq=False)
class Fanouts:
    """Synapses per presynaptic unit: feedforward [M] (per pixel), lateral [K], readout [K] (per neuron)."""

    feedforward: np.ndarray
    lateral: np.ndarray
    readout: np.ndarray

    @classmethod
    def from_matrices(cls, feedforward: np.ndarray, lateral: np.ndarray, readout: np.ndarray) -> "Fanouts":
        """Non-zero entries per column of W_ff [K, M], W_rec [K, K] and the decoder [M, K]."""
        return cls(
            feedforward=np.count_nonzero(feedforward, axis=0).astype(np.int64),  # [M]
            lateral=np.count_nonzero(lateral, axis=0).astype(np.int64),  # [K]
            readout=np.count_nonzero(readout, axis=0).astype(np.int64),  # [K]
        )

    @classmethod
    def from_integer_model(cls, model) -> "Fanouts":
        """The synapses a chip would store for an export (zero mantissas are no synapse)."""
        return cls.from_matrices(model.ff.mantissa, model.rec.mantissa, model.decoder.mantissa)

    @property
    def n_inputs(self) -> int:
        return self.feedforward.shape[0]

    @property
    def n_latents(self) -> int:
        return self.lateral.shape[0]


@dataclass(frozen=True, eq=False)
class OperationCounts:
    """Per-step counts averaged over images, each [T+1] for t = 0..T (window timestep t + 1)."""

    spikes: np.ndarray
    events: np.ndarray
    input_events: np.ndarray
    synops_feedforward: np.ndarray
    synops_lateral: np.ndarray
    synops_readout: np.ndarray
    binary_synops: np.ndarray
    neuron_updates: np.ndarray

    @property
    def synops(self) -> np.ndarray:
        return self.synops_feedforward + self.synops_lateral + self.synops_readout

    def energy_joules(self, table: EnergyTable = LOIHI_TABLE) -> np.ndarray:
        """Estimated energy per step [T+1]: synops, neuron updates and spike messages priced by ``table``."""
        return PICO * (
            self.synops * table.synaptic_op.picojoules
            + self.neuron_updates * table.neuron_update.picojoules
            + (self.events + self.input_events) * table.spike_message.picojoules
        )

    def per_inference(self, table: EnergyTable = LOIHI_TABLE) -> dict[str, float]:
        """Totals over the window (one inference), averaged over images."""
        return {
            "spikes_per_inference": float(self.spikes.sum()),
            "events_per_inference": float(self.events.sum()),
            "input_events_per_inference": float(self.input_events.sum()),
            "synops_per_inference": float(self.synops.sum()),
            "synops_feedforward_per_inference": float(self.synops_feedforward.sum()),
            "synops_lateral_per_inference": float(self.synops_lateral.sum()),
            "synops_readout_per_inference": float(self.synops_readout.sum()),
            "binary_synops_per_inference": float(self.binary_synops.sum()),
            "neuron_updates_per_inference": float(self.neuron_updates.sum()),
            "energy_estimate_nj": float(self.energy_joules(table).sum() / NANO),
        }


def count_operations(z: np.ndarray, input_payload: np.ndarray, fanouts: Fanouts) -> OperationCounts:
    """Operation counts of a run (one step at a time, so memory stays at one [N, K] / [N, M] slice).

    z: spike counts [T+1, N, K] (t = 0..T). input_payload: what the source sent, [N, M] for a static
    image (the same frame every timestep) or [N, F, M] frames (timestep t + 1 sends frame min(t, T-1)).
    """
    z = np.asarray(z)
    n_window, n_images, n_latents = z.shape
    n_steps = n_window - 1
    if n_latents != fanouts.n_latents:
        raise ValueError(f"z has {n_latents} neurons, the fan-outs {fanouts.n_latents}")
    payload = np.asarray(input_payload)
    integer_payload = payload.dtype.kind in "iu"
    spike_fanout = fanouts.lateral + fanouts.readout  # [K]
    names = ("spikes", "events", "input_events", "ff", "lateral", "readout", "binary")
    totals = {name: np.zeros(n_window) for name in names}
    for t in range(n_window):
        counts = z[t].astype(np.int64)  # [N, K]
        fired = counts != 0  # [N, K]
        frame = payload if payload.ndim == 2 else payload[:, min(t, n_steps - 1)]  # [N, M]
        nonzero_input = frame != 0  # [N, M]
        totals["spikes"][t] = counts.sum()
        totals["events"][t] = fired.sum()
        totals["lateral"][t] = (fired @ fanouts.lateral).sum()
        totals["readout"][t] = (fired @ fanouts.readout).sum()
        totals["input_events"][t] = nonzero_input.sum()
        totals["ff"][t] = (nonzero_input @ fanouts.feedforward).sum()
        if integer_payload:  # a binary implementation would send |x_int| spikes per pixel
            binary_input = (np.abs(frame.astype(np.int64)) @ fanouts.feedforward).sum()
        else:  # float pixels have no spike-count equivalent: one event each
            binary_input = totals["ff"][t]
        totals["binary"][t] = (counts @ spike_fanout).sum() + binary_input
    per_image = {name: values / n_images for name, values in totals.items()}  # [T+1] each
    return OperationCounts(
        spikes=per_image["spikes"],
        events=per_image["events"],
        input_events=per_image["input_events"],
        synops_feedforward=per_image["ff"],
        synops_lateral=per_image["lateral"],
        synops_readout=per_image["readout"],
        binary_synops=per_image["binary"],
        neuron_updates=np.full(n_window, float(n_latents)),
    )


def dense_baselines(n_inputs: int, n_latents: int, n_steps: int, table: ConventionalTable = CONVENTIONAL_TABLE) -> dict[str, float]:
    """The same inference as dense multiply-accumulates on a conventional processor.

    Float iP-VAE: recon_t = Phi z_t for t = 0..T (T + 1 decodes of M x K) and the drive
    Phi^T D (x - recon) for t = 1..T (T products of K x M): (2T + 1) M K MACs.
    Amortized VAE: one forward pass of a network of the paper's amortized P-VAE size, counted as one
    MAC per parameter (a lower bound: a convolution reuses each weight at many positions).
    """
    float_macs = (2 * n_steps + 1) * n_inputs * n_latents
    amortized_macs = AMORTIZED_VAE_PARAMS
    return {
        "dense_macs_per_inference": float(float_macs),
        "dense_fp32_energy_nj": float(float_macs * table.fp32_mac.picojoules * PICO / NANO),
        "dense_int8_energy_nj": float(float_macs * table.int8_mac.picojoules * PICO / NANO),
        "amortized_vae_macs_per_inference": float(amortized_macs),
        "amortized_vae_fp32_energy_nj": float(amortized_macs * table.fp32_mac.picojoules * PICO / NANO),
    }


def table_as_dict(table: EnergyTable = LOIHI_TABLE, conventional: ConventionalTable = CONVENTIONAL_TABLE) -> dict:
    """The per-operation tables as plain data (for JSON outputs)."""
    entries = {
        "synaptic_op": table.synaptic_op,
        "neuron_update": table.neuron_update,
        "spike_message": table.spike_message,
        "fp32_mac": conventional.fp32_mac,
        "int8_mac": conventional.int8_mac,
    }
    return {
        "name": table.name,
        "label": "estimate: published per-operation energies, not a measurement",
        "ops_pj": {key: {"pj": op.picojoules, "what": op.name, "source": op.source} for key, op in entries.items()},
    }
