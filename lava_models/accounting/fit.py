"""A resource plan of an export against Loihi 2's per-core limits.

A PLAN, NOT A MEASUREMENT: nothing here ran on Loihi 2. It counts what the export needs (synapses,
neuron state, sampler-table memory), assigns the neuron groups to neuro-cores so each core stays within
its memory and neuron limits, and turns per-operation times into timesteps per second. The command
`ipvae plan model.h5 --target loihi2` (ipvae.lava.plan_command) reads the export and prints this plan.

Mapping assumptions (each stated in the report):
- synapses live in the core of their postsynaptic neuron (Loihi's synaptic memory is per destination core);
  feed-forward and lateral synapses therefore sit with the Poisson neurons, the decoder's with the M
  readout accumulators;
- a dense synapse costs its weight bits (no index); a pruned (sparse) group costs weight + index bits per
  kept synapse, and the cheaper of the two encodings is used per group;
- every core that hosts Poisson neurons holds its own copy of the sampler table (cdf);
- the input image enters from the embedded x86 cores as graded spikes (no neuro-core).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from ipvae.errors import IpvaeError

BITS_PER_BYTE = 8
KIB = 1024


@dataclass(frozen=True)
class Figure:
    """A published number or an assumption, with where it comes from."""

    value: float
    source: str
    assumption: bool


LOIHI2_BRIEF = "Intel Labs, 'Taking Neuromorphic Computing to the Next Level with Loihi 2', technology brief, 2021"
ORCHARD_2021 = "Orchard et al., 'Efficient neuromorphic signal processing with Loihi 2', IEEE SiPS 2021"
DAVIES_2018_TIMES = "Davies et al., IEEE Micro 38(1), 2018, Table 2 (Loihi 1 operation times)"


@dataclass(frozen=True)
class ChipLimits:
    """Per-chip and per-core limits of a neuromorphic target."""

    name: str
    neuro_cores: Figure
    neurons_per_chip: Figure
    synapses_per_chip: Figure
    neurons_per_core: Figure
    memory_per_core_bytes: Figure
    synaptic_op_seconds: Figure
    neuron_update_seconds: Figure
    barrier_seconds: Figure


LOIHI2 = ChipLimits(
    name="loihi2",
    neuro_cores=Figure(128, LOIHI2_BRIEF + "; " + ORCHARD_2021, False),
    neurons_per_chip=Figure(1_000_000, LOIHI2_BRIEF, False),
    synapses_per_chip=Figure(120_000_000, LOIHI2_BRIEF, False),
    # recalled from the brief's table (8,192 neurons per core, up from Loihi's 1,024); not re-checked here
    neurons_per_core=Figure(8192, LOIHI2_BRIEF + " (8,192 per core, not re-checked)", True),
    # The brief gives one flexible memory per neuro-core shared by synapses, neuron state and programs;
    # we take 192 KB. Not checked against the brief's text here: treat as an assumption.
    memory_per_core_bytes=Figure(192 * KIB, LOIHI2_BRIEF + " (192 KB per core, not re-checked)", True),
    # Operation times: Loihi 1 figures of the order Davies 2018 lists; Loihi 2 is claimed faster. Assumptions.
    synaptic_op_seconds=Figure(3.5e-9, DAVIES_2018_TIMES + ", synaptic spike op; assumed for Loihi 2", True),
    # one figure per neuron update, whatever the update computes: the leak's three integer ops (subtract,
    # add-and-shift, subtract; docs/fixed_point.md 6.1) are inside it and do not change the plan
    neuron_update_seconds=Figure(10e-9, "assumed order of a microcoded neuron update (not published in this form)", True),
    barrier_seconds=Figure(1e-6, "assumed per-timestep barrier synchronisation across the chip (not published in this form)", True),
)
TARGETS = {"loihi2": LOIHI2}


@dataclass(frozen=True)
class StorageFormat:
    """Bits of stored state per unit (assumptions of the plan, named in the report)."""

    index_bits: int = 16  # sparse synapse: weight + a 16-bit target index (assumption)
    # u, bias, u_prior, held drive (24-bit values stored in 32-bit words). The leak needs no word of its own:
    # it pulls u toward the stored u_prior, and its shift n is one constant of the whole population.
    neuron_state_words: int = 4
    neuron_word_bits: int = 32
    readout_state_bits: int = 32  # one accumulator per pixel


@dataclass(frozen=True)
class GroupPlan:
    """One population and the synapses it receives, spread over ``cores`` neuro-cores."""

    name: str
    neurons: int
    synapses_in: int
    synapse_bytes: int
    state_bytes: int
    table_bytes_per_core: int
    cores: int
    encoding: str

    @property
    def bytes_per_core(self) -> float:
        return (self.synapse_bytes + self.state_bytes) / self.cores + self.table_bytes_per_core


def synapse_bytes(kept: int, rows: int, cols: int, weight_bits: int, storage: StorageFormat) -> tuple[int, str]:
    """The cheaper of a dense encoding (all rows x cols weights) and a sparse one (kept x (weight + index))."""
    dense = math.ceil(rows * cols * weight_bits / BITS_PER_BYTE)
    sparse = math.ceil(kept * (weight_bits + storage.index_bits) / BITS_PER_BYTE)
    return (dense, "dense") if dense <= sparse else (sparse, "sparse")


def cores_needed(neurons: int, fixed_bytes: int, table_bytes: int, limits: ChipLimits) -> int:
    """Fewest cores such that each holds at most neurons_per_core neurons and its memory share fits."""
    budget = limits.memory_per_core_bytes.value - table_bytes
    if budget <= 0:
        raise IpvaeError(f"the sampler table ({table_bytes} B) alone exceeds a core's memory on {limits.name}")
    by_memory = math.ceil(fixed_bytes / budget)
    by_neurons = math.ceil(neurons / limits.neurons_per_core.value)
    return max(1, by_memory, by_neurons)


def plan_groups(model, limits: ChipLimits, storage: StorageFormat = StorageFormat()) -> list[GroupPlan]:
    """Poisson neurons (feed-forward + lateral synapses, sampler table) and readout accumulators (decoder)."""
    n_latents, n_inputs = model.n_latents, model.n_inputs
    weight_bits = model.spec.weight_bits
    ff_kept = int(np.count_nonzero(model.ff.mantissa))
    rec_kept = int(np.count_nonzero(model.lateral_synapses()))  # the self-inhibition included
    dec_kept = int(np.count_nonzero(model.decoder.mantissa))
    ff_bytes, ff_encoding = synapse_bytes(ff_kept, n_latents, n_inputs, weight_bits, storage)
    rec_bytes, rec_encoding = synapse_bytes(rec_kept, n_latents, n_latents, weight_bits, storage)
    dec_bytes, dec_encoding = synapse_bytes(dec_kept, n_inputs, n_latents, model.spec.decoder_bits, storage)
    table_bytes = int(model.cdf.nbytes)
    neuron_state = n_latents * storage.neuron_state_words * storage.neuron_word_bits // BITS_PER_BYTE
    readout_state = n_inputs * storage.readout_state_bits // BITS_PER_BYTE
    poisson_cores = cores_needed(n_latents, ff_bytes + rec_bytes + neuron_state, table_bytes, limits)
    readout_cores = cores_needed(n_inputs, dec_bytes + readout_state, 0, limits)
    return [
        GroupPlan("poisson neurons (feed-forward + lateral synapses)", n_latents, ff_kept + rec_kept, ff_bytes + rec_bytes,
                  neuron_state, table_bytes, poisson_cores, f"ff {ff_encoding}, lateral {rec_encoding}"),
        GroupPlan("readout accumulators (decoder synapses)", n_inputs, dec_kept, dec_bytes, readout_state, 0,
                  readout_cores, dec_encoding),
    ]


def steps_per_second(model, groups: list[GroupPlan], limits: ChipLimits, events_per_step: dict[str, float]) -> float:
    """Timesteps per second if the busiest core bounds a step: its synaptic ops and neuron updates in series,
    plus one barrier. ``events_per_step``: presynaptic events per step of the input and of the neurons."""
    ff_fanout = np.count_nonzero(model.ff.mantissa, axis=0).mean() if model.n_inputs else 0.0
    rec_fanout = np.count_nonzero(model.lateral_synapses(), axis=0).mean()
    dec_fanout = np.count_nonzero(model.decoder.mantissa, axis=0).mean()
    poisson, readout = groups
    poisson_synops = events_per_step["input"] * ff_fanout + events_per_step["neurons"] * rec_fanout
    readout_synops = events_per_step["neurons"] * dec_fanout
    busiest = max(
        poisson_synops / poisson.cores * limits.synaptic_op_seconds.value
        + poisson.neurons / poisson.cores * limits.neuron_update_seconds.value,
        readout_synops / readout.cores * limits.synaptic_op_seconds.value
        + readout.neurons / readout.cores * limits.neuron_update_seconds.value,
    )
    return 1.0 / (busiest + limits.barrier_seconds.value)


def fit_report(model, limits: ChipLimits = LOIHI2, storage: StorageFormat = StorageFormat(),
               measured_events: dict[str, float] | None = None) -> dict:
    """The plan as plain data: groups, chip totals against the limits, and timesteps per second."""
    groups = plan_groups(model, limits, storage)
    total_cores = sum(group.cores for group in groups)
    total_neurons = sum(group.neurons for group in groups)
    total_synapses = sum(group.synapses_in for group in groups)
    worst_case = {"input": float(model.n_inputs), "neurons": float(model.n_latents)}  # every unit sends every step
    rates = {"worst case (every input and neuron sends an event every step)": steps_per_second(model, groups, limits, worst_case)}
    if measured_events is not None:
        rates["measured activity (integer reference)"] = steps_per_second(model, groups, limits, measured_events)
    checks = {
        "neuro_cores": (total_cores, limits.neuro_cores.value),
        "neurons": (total_neurons, limits.neurons_per_chip.value),
        "synapses": (total_synapses, limits.synapses_per_chip.value),
    }
    return {
        "label": "PLAN, NOT A MEASUREMENT: resource counts of the export against published per-core limits; "
                 "nothing ran on Loihi 2, and the timing figures are assumptions",
        "target": limits.name,
        "fits_one_chip": all(used <= limit for used, limit in checks.values()),
        "chip_totals": {name: {"used": used, "limit": limit} for name, (used, limit) in checks.items()},
        "groups": [{**asdict(group), "bytes_per_core": group.bytes_per_core} for group in groups],
        "input": f"{model.n_inputs} pixels sent as graded spikes from the embedded x86 cores (no neuro-core)",
        "sampler_table_bytes": int(model.cdf.nbytes),
        "memory_per_core_bytes": limits.memory_per_core_bytes.value,
        "timesteps_per_second": rates,
        "figures": {name: asdict(value) for name, value in vars(limits).items() if isinstance(value, Figure)},
        "storage_assumptions": asdict(storage),
    }


def format_report(report: dict) -> str:
    lines = [report["label"], f"target: {report['target']}   fits one chip: {report['fits_one_chip']}"]
    for name, value in report["chip_totals"].items():
        lines.append(f"  {name:<12} {value['used']:>12,.0f} of {value['limit']:>12,.0f}")
    for group in report["groups"]:
        lines.append(f"  {group['name']}: {group['neurons']} neurons on {group['cores']} core(s), "
                     f"{group['synapses_in']:,} synapses ({group['encoding']}), {group['bytes_per_core'] / KIB:,.1f} KiB per core "
                     f"of {report['memory_per_core_bytes'] / KIB:,.0f}")
    lines.append(f"  sampler table: {report['sampler_table_bytes']:,} B per Poisson core;  {report['input']}")
    for name, rate in report["timesteps_per_second"].items():
        lines.append(f"  timesteps per second, {name}: {rate:,.0f}")
    lines.append("figures (value, source, assumption?):")
    for name, figure in report["figures"].items():
        lines.append(f"  {name}: {figure['value']:g}  [{'ASSUMPTION' if figure['assumption'] else 'published'}] {figure['source']}")
    return "\n".join(lines)
