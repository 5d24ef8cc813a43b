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
- ``neuron_updates``: K per timestep (every neuron integrates and samples every timestep). A neuron update
  is one priced unit (E_neuron), whatever it computes: the accounting does not count the arithmetic inside
  it. The leak (docs/fixed_point.md 6.1: u - u_prior, add 2**(n-1) and shift, subtract from the sum: three
  integer ops per neuron per integrating step, no multiply) is part of that update, so it adds no count and
  no energy here, for any leak shift; the update's price (the larger published figure) already covers a
  neuron that does more than a LIF update.

Two accounts: ``count_operations`` is the re-send-every-step deployment (the input frame is sent and
the decoder applied at every timestep); ``count_event_operations`` the event-driven one of
ipvae.export.events (input events sent once or as sigma-delta changes, readout on demand, stopping).

The energy estimate multiplies these counts by a per-operation table (``LOIHI_TABLE``, published
Loihi figures) and is only an estimate. The conventional baselines (dense iterative loops and the
amortized VAE, arithmetic-only and with weight reads) are priced in ``ipvae.lava.accounting.pricing``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Prices live in ipvae.lava.accounting.pricing; re-exported here for the counting code and older imports.
from ipvae.lava.accounting.pricing import (  # noqa: E402,F401
    AMORTIZED_VAE_PARAMS,
    CONVENTIONAL_TABLE,
    LOIHI_TABLE,
    NANO,
    PICO,
    ConventionalTable,
    EnergyTable,
    OpCost,
    table_as_dict,
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
        return cls.from_matrices(model.ff.mantissa, model.lateral_synapses(), model.decoder.mantissa)

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
    totals["updates"] = np.full(n_window, float(n_latents * n_images))
    return _per_image_counts(totals, n_images)


def count_event_operations(z: np.ndarray, input_events: np.ndarray, fanouts: Fanouts, last_steps: np.ndarray,
                           schedule=None) -> OperationCounts:
    """Operation counts of the event-driven deployment (ipvae.export.events; docs/energy.md), per step [T+1].

    Unlike ``count_operations`` (the input re-sent and the decoder applied every step), this charges
    only what is computed:
    - feed-forward: one synaptic op per target of each input *event* actually sent
      (input_events [T, N, M], the sigma-delta events of window steps 0..T-1: a static image is sent
      once); an event is charged at the step it is sent;
    - lateral: as before, one op per target of each non-zero count (a stopped image sends nothing);
    - readout: the decoder only at the steps the schedule applies it (ipvae.export.events.readout_mask),
      one op per target of each non-zero entry of what it decodes (z_t, or the windowed count sum);
    - neuron updates: K per step while the image runs (t = 0..last step).
    z: counts [T+1, N, K]; last_steps [N] (ipvae.export.events.stop_steps); schedule: ReadoutSchedule (default END).
    """
    from ipvae.export.events import ReadoutMode, ReadoutSchedule, readout_counts, readout_mask

    schedule = ReadoutSchedule() if schedule is None else schedule
    z = np.asarray(z)
    n_window, n_images, n_latents = z.shape
    if n_latents != fanouts.n_latents:
        raise ValueError(f"z has {n_latents} neurons, the fan-outs {fanouts.n_latents}")
    events = np.asarray(input_events)
    if events.shape != (n_window - 1, n_images, fanouts.n_inputs):
        raise ValueError(f"input_events must be [T, N, M] = {(n_window - 1, n_images, fanouts.n_inputs)}, got {events.shape}")
    last_steps = np.asarray(last_steps, dtype=np.int64)
    decode = readout_mask(last_steps, n_window - 1, schedule)  # [T+1, N]
    names = ("spikes", "events", "input_events", "ff", "lateral", "readout", "binary", "updates")
    totals = {name: np.zeros(n_window) for name in names}
    for t in range(n_window):
        counts = z[t].astype(np.int64)  # [N, K]
        fired = counts != 0  # [N, K]
        totals["spikes"][t] = counts.sum()
        totals["events"][t] = fired.sum()
        totals["lateral"][t] = (fired @ fanouts.lateral).sum()
        totals["binary"][t] = (counts @ fanouts.lateral).sum()
        totals["updates"][t] = n_latents * np.count_nonzero(last_steps >= t)
        if t < n_window - 1:
            sent = events[t] != 0  # [N, M]
            totals["input_events"][t] = sent.sum()
            totals["ff"][t] = (sent @ fanouts.feedforward).sum()
            totals["binary"][t] += (np.abs(events[t].astype(np.int64)) @ fanouts.feedforward).sum()
        if schedule.mode is not ReadoutMode.AVERAGE:
            decoded = decode[t]  # [N]
            totals["readout"][t] = (fired[decoded] @ fanouts.readout).sum()
            totals["binary"][t] += (counts[decoded] @ fanouts.readout).sum()
    if schedule.mode is ReadoutMode.AVERAGE:  # one decode of the windowed count sum at each image's last step
        averaged = readout_counts(z, last_steps, schedule)  # [N, K]
        for image, step in enumerate(last_steps):
            totals["readout"][step] += (averaged[image] != 0) @ fanouts.readout
            totals["binary"][step] += (averaged[image] != 0) @ fanouts.readout
    return _per_image_counts(totals, n_images)


def _per_image_counts(totals: dict[str, np.ndarray], n_images: int) -> OperationCounts:
    """OperationCounts per image from per-step totals over the batch ([T+1] each)."""
    per_image = {name: values / n_images for name, values in totals.items()}  # [T+1] each
    return OperationCounts(
        spikes=per_image["spikes"],
        events=per_image["events"],
        input_events=per_image["input_events"],
        synops_feedforward=per_image["ff"],
        synops_lateral=per_image["lateral"],
        synops_readout=per_image["readout"],
        binary_synops=per_image["binary"],
        neuron_updates=per_image["updates"],
    )
