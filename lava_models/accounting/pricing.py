"""Prices of operations and of the conventional baselines (docs/energy.md, "A fair account").

Every number here is an estimate: published per-operation energies times exact operation counts.

- ``LOIHI_TABLE``: the spiking deployment's synaptic op / neuron update / spike message (Davies 2018);
  its synaptic-op figure includes the synaptic memory read.
- Conventional processor, Horowitz ISSCC 2014 (45 nm, 0.9 V): arithmetic per MAC (fp32, int8) and the
  energy of one 64-bit read from an 8 KB, 32 KB or 1 MB SRAM, or from DRAM.
- A baseline is a ``Workload``: its MACs per inference and the weight sets it reads (each with how many
  times per inference the whole set is read). ``price`` charges the MACs (arithmetic only) and,
  separately, the weight reads, each set from the smallest memory level that holds it ("with memory").
  Activations, instructions and control are not charged: the conventional figures stay lower bounds.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

from ipvae.lava.accounting.macs import BYTES_FP32, BYTES_INT8, MacReport

PICO = 1e-12
NANO = 1e-9
NANOJOULES_PER_PICOJOULE = 1e-3
BITS_PER_BYTE = 8
ACCESS_BITS = 64  # Horowitz's memory figures are per 64-bit access

DAVIES_2018 = "Davies et al., 'Loihi: a neuromorphic manycore processor with on-chip learning', IEEE Micro 38(1), 2018, Table 2"
HOROWITZ_2014 = "Horowitz, 'Computing's energy problem (and what we can do about it)', ISSCC 2014, 45 nm, 0.9 V"

# Amortized P-VAE of the paper (convolutional, MNIST): 6.79M parameters; ipvae.lava.accounting.pvae_architecture rebuilds it.
AMORTIZED_VAE_PARAMS = 6_790_000


@dataclass(frozen=True)
class OpCost:
    """Energy of one operation, in picojoules, with where the number comes from."""

    name: str
    picojoules: float
    source: str


@dataclass(frozen=True)
class EnergyTable:
    """A named per-operation energy table of a neuromorphic chip (every entry an estimate with its source)."""

    name: str
    synaptic_op: OpCost
    neuron_update: OpCost
    spike_message: OpCost


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


@dataclass(frozen=True)
class MemoryLevel:
    """One level of a conventional memory hierarchy: capacity and energy of one 64-bit read."""

    name: str
    capacity_bytes: float
    access: OpCost


HOROWITZ_MEMORY = (
    MemoryLevel("SRAM 8 KB", 8 * 1024, OpCost("64-bit read, 8 KB cache", 10.0, HOROWITZ_2014)),
    MemoryLevel("SRAM 32 KB", 32 * 1024, OpCost("64-bit read, 32 KB cache", 20.0, HOROWITZ_2014)),
    MemoryLevel("SRAM 1 MB", 1024 * 1024, OpCost("64-bit read, 1 MB cache", 100.0, HOROWITZ_2014)),
    # Horowitz gives 1.3-2.6 nJ for DRAM; we charge the lower figure (favours the conventional baseline).
    MemoryLevel("DRAM", math.inf, OpCost("64-bit DRAM read (lower of 1.3-2.6 nJ)", 1300.0, HOROWITZ_2014)),
)

# Sensitivity: a processor whose last-level SRAM holds any weight set at Horowitz's 1 MB price (optimistic
# for large sets: a bigger SRAM costs more per access). Reported beside the Horowitz hierarchy, never instead.
ON_CHIP_ONLY_MEMORY = HOROWITZ_MEMORY[:2] + (
    MemoryLevel("SRAM (1 MB figure, any size)", math.inf, HOROWITZ_MEMORY[2].access),
)


@dataclass(frozen=True)
class Precision:
    """A conventional number format: the price of a MAC and the bytes of a stored weight."""

    name: str
    mac: OpCost
    bytes_per_weight: int


FP32 = Precision("fp32", CONVENTIONAL_TABLE.fp32_mac, BYTES_FP32)
INT8 = Precision("int8", CONVENTIONAL_TABLE.int8_mac, BYTES_INT8)
PRECISIONS = (FP32, INT8)


@dataclass(frozen=True)
class WeightSet:
    """A weight matrix (or conv kernel) a baseline reads: its size and how often per inference it is read whole.

    index_bytes_per_weight: bytes of position stored beside each weight (0: dense; a sparse CSR matrix
    stores a column index per non-zero, its row pointers are not charged).
    """

    name: str
    n_weights: int
    reads_per_inference: int
    index_bytes_per_weight: int = 0


SPARSE_INDEX_BYTES = 2  # a 16-bit column index per stored non-zero (K, M < 65,536)


@dataclass(frozen=True)
class NonZeros:
    """Non-zero weights of a deployed iP-VAE per matrix: A = lr Phi^T D [K, M], L [K, K], decoder Phi [M, K]."""

    feedforward: int
    lateral: int
    decoder: int

    @classmethod
    def from_integer_model(cls, model) -> "NonZeros":
        import numpy as np

        return cls(int(np.count_nonzero(model.ff.mantissa)), int(np.count_nonzero(model.lateral_synapses())),
                   int(np.count_nonzero(model.decoder.mantissa)))


@dataclass(frozen=True)
class Workload:
    """A conventional baseline: MACs per inference and the weight sets it reads."""

    name: str
    macs: int
    weight_sets: tuple[WeightSet, ...]
    description: str


@dataclass(frozen=True)
class PricedWorkload:
    """A workload at one precision: arithmetic energy, weight-read energy and where each set lives."""

    workload: str
    precision: str
    macs: int
    arithmetic_nj: float
    memory_nj: float
    placement: dict[str, str]
    weight_bytes: int

    @property
    def with_memory_nj(self) -> float:
        return self.arithmetic_nj + self.memory_nj


def memory_level_for(n_bytes: float, levels: tuple[MemoryLevel, ...] = HOROWITZ_MEMORY) -> MemoryLevel:
    """The smallest level that holds ``n_bytes`` (a set that fits nowhere smaller lives in DRAM)."""
    return next(level for level in levels if n_bytes <= level.capacity_bytes)


def weight_read_picojoules(n_bytes: int, reads: int, levels: tuple[MemoryLevel, ...] = HOROWITZ_MEMORY) -> tuple[float, MemoryLevel]:
    """Energy of reading a set of ``n_bytes`` whole ``reads`` times, in 64-bit accesses, and its level."""
    level = memory_level_for(n_bytes, levels)
    accesses = math.ceil(n_bytes * BITS_PER_BYTE / ACCESS_BITS)
    return reads * accesses * level.access.picojoules, level


def price(workload: Workload, precision: Precision, levels: tuple[MemoryLevel, ...] = HOROWITZ_MEMORY) -> PricedWorkload:
    """Arithmetic (MACs x MAC price) and weight reads (each set from its own level) of one inference."""
    memory_pj, placement, total_bytes = 0.0, {}, 0
    for weights in workload.weight_sets:
        n_bytes = weights.n_weights * (precision.bytes_per_weight + weights.index_bytes_per_weight)
        energy, level = weight_read_picojoules(n_bytes, weights.reads_per_inference, levels)
        memory_pj += energy
        placement[weights.name] = level.name
        total_bytes += n_bytes
    return PricedWorkload(
        workload=workload.name,
        precision=precision.name,
        macs=workload.macs,
        arithmetic_nj=workload.macs * precision.mac.picojoules * NANOJOULES_PER_PICOJOULE,
        memory_nj=memory_pj * NANOJOULES_PER_PICOJOULE,
        placement=placement,
        weight_bytes=total_bytes,
    )


def dense_iterative_workload(n_inputs: int, n_latents: int, n_steps: int) -> Workload:
    """The float iP-VAE loop as the paper writes it: recon_t = Phi z_t (t = 0..T) and the drive
    Phi^T D (x - recon_t) (t = 1..T): (2T + 1) M K MACs, Phi read whole for every product. The element-wise
    update (bias, clamp, the leak of ModelConfig.leak: K ops per step each) is not charged (ipvae.lava.accounting.macs)."""
    products = 2 * n_steps + 1
    return Workload(
        name="dense_iterative",
        macs=products * n_inputs * n_latents,
        weight_sets=(WeightSet("Phi [M, K]", n_inputs * n_latents, products),),
        description="float iP-VAE, T steps of decode + drive, (2T+1) M K MACs",
    )


def dense_lateral_workload(n_inputs: int, n_latents: int, n_steps: int) -> Workload:
    """The same dynamics in lateral form, the cheapest dense schedule: the drive A x once (K M),
    the lateral term L z_t for t = 0..T-1 (T K^2) and one decode Phi z_T at the end (M K)."""
    return Workload(
        name="dense_lateral",
        macs=2 * n_inputs * n_latents + n_steps * n_latents * n_latents,
        weight_sets=(
            WeightSet("A = lr Phi^T D [K, M]", n_latents * n_inputs, 1),
            WeightSet("L = lr Phi^T D Phi [K, K]", n_latents * n_latents, n_steps),
            WeightSet("Phi [M, K] (final decode)", n_inputs * n_latents, 1),
        ),
        description="float iP-VAE, drive once + T lateral products + one decode, 2 M K + T K^2 MACs",
    )


def sparse_lateral_workload(n_steps: int, nonzeros: NonZeros) -> Workload:
    """The lateral schedule with every matrix stored sparse (CSR: value + 16-bit index per non-zero) and
    multiplied by dense activations: nnz(A) + T nnz(L) + nnz(Phi) MACs, each matrix read whole per product.

    The conventional counterpart of a pruned or L1-trained model: it gets the weight sparsity the chip gets.
    It does not skip zero activations (that is the event-driven chip's own advantage; a processor gathering
    only the columns of active units would pay index and control work these tables do not price).
    """
    return Workload(
        name="sparse_lateral",
        macs=nonzeros.feedforward + n_steps * nonzeros.lateral + nonzeros.decoder,
        weight_sets=(
            WeightSet("A, non-zeros", nonzeros.feedforward, 1, SPARSE_INDEX_BYTES),
            WeightSet("L, non-zeros", nonzeros.lateral, n_steps, SPARSE_INDEX_BYTES),
            WeightSet("Phi, non-zeros (final decode)", nonzeros.decoder, 1, SPARSE_INDEX_BYTES),
        ),
        description="iP-VAE, lateral schedule, weights stored sparse (value + 16-bit index), nnz(A) + T nnz(L) + nnz(Phi) MACs",
    )


def amortized_workload(report: MacReport, name: str = "amortized_vae") -> Workload:
    """One forward pass of a network whose layers ``count_macs`` measured; each layer's weights read once
    (a conv kernel is assumed held on chip across its output positions: favours the baseline)."""
    return Workload(
        name=name,
        macs=report.macs,
        weight_sets=tuple(WeightSet(layer.name, layer.weights, 1) for layer in report.layers),
        description=f"one forward pass, {report.macs:,} MACs from its layers, {report.weights:,} weights",
    )


@functools.lru_cache(maxsize=1)
def paper_amortized_pvae_macs() -> MacReport:
    """MACs of the paper's conv P-VAE (encoder + decoder, one MNIST image), counted layer by layer.

    Building the network draws its (irrelevant) initial weights; ``fork_rng`` keeps torch's global
    generator untouched for the caller.
    """
    import torch

    from ipvae.lava.accounting.macs import count_macs
    from ipvae.lava.accounting.pvae_architecture import ConvPvae, conv_pvae_input_shape

    with torch.random.fork_rng(devices=[]):
        return count_macs(ConvPvae(), conv_pvae_input_shape())


def conventional_baselines(n_inputs: int, n_latents: int, n_steps: int, amortized: MacReport | None = None,
                           nonzeros: NonZeros | None = None) -> dict:
    """Every conventional baseline at fp32 and int8, arithmetic-only and with weight reads (nJ per inference).

    ``amortized``: the amortized VAE's layer MACs (default: the paper's conv P-VAE rebuilt; the trained
    amortized baseline (ipvae.train.baselines.amortized) can pass ``count_macs(its_module, shape)`` instead). ``nonzeros``: the deployed model's
    non-zero weights; with them the sparse-weight schedule (``sparse_lateral``) is priced too.
    """
    amortized = paper_amortized_pvae_macs() if amortized is None else amortized
    workloads = (
        dense_iterative_workload(n_inputs, n_latents, n_steps),
        dense_lateral_workload(n_inputs, n_latents, n_steps),
        *((sparse_lateral_workload(n_steps, nonzeros),) if nonzeros is not None else ()),
        amortized_workload(amortized),
    )
    priced = {}
    for workload in workloads:
        for precision in PRECISIONS:
            result = price(workload, precision)
            on_chip = price(workload, precision, ON_CHIP_ONLY_MEMORY)
            priced[f"{workload.name}_{precision.name}"] = {
                "macs": result.macs,
                "arithmetic_nj": result.arithmetic_nj,
                "with_memory_nj": result.with_memory_nj,
                "with_on_chip_sram_only_nj": on_chip.with_memory_nj,
                "weight_read_nj": result.memory_nj,
                "weight_bytes": result.weight_bytes,
                "placement": _placement_summary(result.placement),
                "what": workload.description,
            }
    return priced


def _placement_summary(placement: dict[str, str]) -> dict[str, str] | dict[str, int]:
    """Per set for a few sets; for a network's many layers, how many layers live in each level."""
    if len(placement) <= 4:
        return dict(placement)
    levels: dict[str, int] = {}
    for level in placement.values():
        levels[level] = levels.get(level, 0) + 1
    return {f"layers in {level}": count for level, count in levels.items()}


ITERATIVE_BASELINES = ("dense_iterative", "dense_lateral", "sparse_lateral")
DENSE_BASELINES = ("dense_iterative", "dense_lateral")
SMALLEST_ENERGY_NJ = 1e-30  # guards the ratios against a run with no work at all
AMORTIZED_BASELINE = "amortized_vae"


def baseline_summary(n_inputs: int, n_latents: int, n_steps: int, spiking_nj: float,
                     nonzeros: NonZeros | None = None) -> dict:
    """The flat keys ``ipvae run`` reports: per-baseline energies and the two headline ratios.

    ``energy_ratio_vs_conventional_*`` = the cheapest conventional implementation of the same iterative
    inference (dense in either schedule or, given ``nonzeros``, with sparse weights; fp32 or int8) / the
    spiking estimate; ``energy_ratio_vs_dense_conventional_with_memory`` leaves the sparse one out; the
    amortized VAE has its own ratios.
    """
    priced = conventional_baselines(n_inputs, n_latents, n_steps, nonzeros=nonzeros)
    iterative = [value for key, value in priced.items() if key.rsplit("_", 1)[0] in ITERATIVE_BASELINES]
    dense = [value for key, value in priced.items() if key.rsplit("_", 1)[0] in DENSE_BASELINES]
    amortized = [value for key, value in priced.items() if key.rsplit("_", 1)[0] == AMORTIZED_BASELINE]
    paper_form = priced["dense_iterative_fp32"]
    spiking = max(spiking_nj, SMALLEST_ENERGY_NJ)
    summary = {
        # kept for continuity with earlier outputs: the paper-form loop, arithmetic only
        "dense_macs_per_inference": float(paper_form["macs"]),
        "dense_fp32_energy_nj": float(paper_form["arithmetic_nj"]),
        "dense_int8_energy_nj": float(priced["dense_iterative_int8"]["arithmetic_nj"]),
        "amortized_vae_macs_per_inference": float(priced["amortized_vae_fp32"]["macs"]),
        "amortized_vae_fp32_energy_nj": float(priced["amortized_vae_fp32"]["arithmetic_nj"]),
        "conventional_cheapest_arithmetic_nj": float(min(v["arithmetic_nj"] for v in iterative)),
        "conventional_cheapest_with_memory_nj": float(min(v["with_memory_nj"] for v in iterative)),
        "amortized_vae_cheapest_with_memory_nj": float(min(v["with_memory_nj"] for v in amortized)),
    }
    for key, value in priced.items():
        summary[f"{key}_arithmetic_nj"] = float(value["arithmetic_nj"])
        summary[f"{key}_with_memory_nj"] = float(value["with_memory_nj"])
    summary["energy_ratio_vs_conventional_arithmetic"] = summary["conventional_cheapest_arithmetic_nj"] / spiking
    summary["energy_ratio_vs_conventional_with_memory"] = summary["conventional_cheapest_with_memory_nj"] / spiking
    summary["energy_ratio_vs_dense_conventional_with_memory"] = min(v["with_memory_nj"] for v in dense) / spiking
    summary["energy_ratio_vs_amortized_vae_with_memory"] = summary["amortized_vae_cheapest_with_memory_nj"] / spiking
    summary["energy_ratio_dense_fp32_over_estimate"] = summary["dense_fp32_energy_nj"] / spiking
    return summary


def table_as_dict(table: EnergyTable = LOIHI_TABLE, conventional: ConventionalTable = CONVENTIONAL_TABLE,
                  levels: tuple[MemoryLevel, ...] = HOROWITZ_MEMORY) -> dict:
    """The per-operation tables as plain data (for JSON outputs)."""
    entries = {
        "synaptic_op": table.synaptic_op,
        "neuron_update": table.neuron_update,
        "spike_message": table.spike_message,
        "fp32_mac": conventional.fp32_mac,
        "int8_mac": conventional.int8_mac,
    }
    entries.update({f"read64_{level.name.replace(' ', '_')}": level.access for level in levels})
    return {
        "name": table.name,
        "label": "estimate: published per-operation energies, not a measurement",
        "ops_pj": {key: {"pj": op.picojoules, "what": op.name, "source": op.source} for key, op in entries.items()},
    }
