"""Pricing of the conventional baselines: MAC counts against hand counts and torch's FLOP counter,
the rebuilt conv P-VAE against the paper's parameter count, memory placement and prices in closed form."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

from ipvae.lava.accounting.macs import count_macs
from ipvae.lava.accounting.pricing import (
    CONVENTIONAL_TABLE,
    FP32,
    HOROWITZ_MEMORY,
    INT8,
    WeightSet,
    Workload,
    baseline_summary,
    conventional_baselines,
    dense_iterative_workload,
    dense_lateral_workload,
    memory_level_for,
    price,
)
from ipvae.lava.accounting.pvae_architecture import ConvPvae, ConvPvaeConfig, conv_pvae_input_shape

PAPER_CONV_PVAE_PARAMS_MILLIONS = 6.79  # the paper's MNIST table (two decimals)
PAPER_CONV_GVAE_PARAMS_MILLIONS = 6.93  # same table: the Gaussian twin (2K encoder outputs)
KIB = 1024


def test_linear_and_conv_macs_equal_hand_counts():
    net = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.Conv2d(4, 6, 3, stride=2, groups=2), nn.Flatten(), nn.Linear(6 * 2 * 2, 5))
    report = count_macs(net, (1, 2, 6, 6))
    conv1 = (4 * 6 * 6) * (2 * 3 * 3)  # out elements x (in / groups) x kernel
    conv2 = (6 * 2 * 2) * (2 * 3 * 3)  # 6 -> side (6 - 3) // 2 + 1 = 2, groups 2: 2 input channels per output
    linear = 24 * 5
    assert [layer.macs for layer in report.layers] == [conv1, conv2, linear]
    assert report.weights == 4 * 2 * 9 + 6 * 2 * 9 + 24 * 5


def test_a_layer_called_twice_is_counted_twice_and_sequence_positions_multiply():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = nn.Linear(5, 5)

        def forward(self, x):  # x [1, 7, 5]: 7 positions
            return self.layer(self.layer(x))

    report = count_macs(Twice(), (1, 7, 5))
    assert report.macs == 2 * 7 * 5 * 5


def test_conv_pvae_macs_match_torch_flop_counter():
    """A second implementation: torch's FlopCounterMode counts 2 FLOPs per MAC of matmuls and convolutions."""
    from torch.utils.flop_counter import FlopCounterMode

    model = ConvPvae()
    report = count_macs(model, conv_pvae_input_shape())
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.zeros(conv_pvae_input_shape()))
    assert 2 * report.macs == counter.get_total_flops()


def test_rebuilt_conv_pvae_has_the_papers_parameter_count():
    def millions(model: nn.Module) -> float:
        return round(sum(p.numel() for p in model.parameters()) / 1e6, 2)

    assert millions(ConvPvae()) == PAPER_CONV_PVAE_PARAMS_MILLIONS
    # the Gaussian twin outputs mean and log-scale (2K); the authors' per-conv weight-norm scalars
    # (one per output channel) then tip it over 6.925 M. Both published sizes follow from one reconstruction.
    gaussian = ConvPvae(ConvPvaeConfig(n_latents=512))
    gaussian.to_latents = nn.Linear(256, 2 * 512)
    norm_scalars = sum(m.out_channels for m in gaussian.modules() if isinstance(m, nn.Conv2d))
    total = sum(p.numel() for p in gaussian.parameters()) + norm_scalars
    assert round(total / 1e6, 2) == PAPER_CONV_GVAE_PARAMS_MILLIONS


def test_encoder_only_counts_fewer_macs_than_the_whole_network():
    model = ConvPvae()
    encoder = count_macs(model, conv_pvae_input_shape(), forward=model.encode)
    whole = count_macs(model, conv_pvae_input_shape())
    assert 0 < encoder.macs < whole.macs
    assert all(not layer.name.startswith(("from_latents", "decoder", "to_pixels")) for layer in encoder.layers)


@pytest.mark.parametrize("n_bytes, level", [(1, "SRAM 8 KB"), (8 * KIB, "SRAM 8 KB"), (8 * KIB + 1, "SRAM 32 KB"),
                                            (32 * KIB, "SRAM 32 KB"), (KIB * KIB, "SRAM 1 MB"), (KIB * KIB + 1, "DRAM")])
def test_a_weight_set_lives_in_the_smallest_level_that_holds_it(n_bytes, level):
    assert memory_level_for(n_bytes).name == level


def test_price_closed_form():
    workload = Workload("toy", macs=1000, weight_sets=(WeightSet("a", 1024, 3), WeightSet("b", 300_000, 1)), description="")
    fp32 = price(workload, FP32)
    # a: 4 KiB -> 8 KB SRAM, 512 accesses of 64 bits, 3 times; b: 1.2 MB -> DRAM, 150,000 accesses
    expected_memory_pj = 3 * 512 * 10.0 + 150_000 * 1300.0
    assert fp32.placement == {"a": "SRAM 8 KB", "b": "DRAM"}
    assert fp32.memory_nj == pytest.approx(expected_memory_pj * 1e-3)
    assert fp32.arithmetic_nj == pytest.approx(1000 * 4.6e-3)
    int8 = price(workload, INT8)  # a: 1 KiB -> 8 KB (128 accesses); b: 300 KB -> 1 MB SRAM (37,500 accesses)
    assert int8.memory_nj == pytest.approx((3 * 128 * 10.0 + 37_500 * 100.0) * 1e-3)
    assert int8.arithmetic_nj == pytest.approx(1000 * CONVENTIONAL_TABLE.int8_mac.picojoules * 1e-3)


def test_dense_workloads_closed_forms():
    m, k, t = 784, 512, 32
    assert dense_iterative_workload(m, k, t).macs == (2 * t + 1) * m * k
    lateral = dense_lateral_workload(m, k, t)
    assert lateral.macs == 2 * m * k + t * k * k
    assert sum(s.n_weights * s.reads_per_inference for s in lateral.weight_sets) == lateral.macs  # one read per MAC


def test_summary_ratios_use_the_cheapest_iterative_baseline():
    m, k, t, spiking = 784, 512, 16, 1000.0
    summary = baseline_summary(m, k, t, spiking)
    priced = conventional_baselines(m, k, t)
    iterative = [v for key, v in priced.items() if key.startswith("dense_")]
    assert summary["energy_ratio_vs_conventional_arithmetic"] == pytest.approx(min(v["arithmetic_nj"] for v in iterative) / spiking)
    assert summary["energy_ratio_vs_conventional_with_memory"] == pytest.approx(min(v["with_memory_nj"] for v in iterative) / spiking)
    assert summary["dense_macs_per_inference"] == (2 * t + 1) * m * k
    for value in priced.values():
        assert value["with_memory_nj"] > value["arithmetic_nj"] > 0
    assert HOROWITZ_MEMORY[-1].capacity_bytes == math.inf


def test_on_chip_sensitivity_never_costs_more_than_the_horowitz_hierarchy():
    for value in conventional_baselines(784, 512, 8).values():
        assert value["arithmetic_nj"] < value["with_on_chip_sram_only_nj"] <= value["with_memory_nj"]


def test_pricing_the_amortized_vae_leaves_torchs_global_generator_alone():
    from ipvae.lava.accounting.pricing import paper_amortized_pvae_macs

    paper_amortized_pvae_macs.cache_clear()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    paper_amortized_pvae_macs()
    assert torch.equal(torch.rand(3), expected)


def test_sparse_lateral_workload_closed_form_and_its_place_in_the_summary():
    from ipvae.lava.accounting.pricing import NonZeros, SPARSE_INDEX_BYTES, sparse_lateral_workload

    m, k, t = 784, 512, 16
    nonzeros = NonZeros(feedforward=60_000, lateral=4_000, decoder=400_000)
    workload = sparse_lateral_workload(t, nonzeros)
    assert workload.macs == 60_000 + t * 4_000 + 400_000
    int8 = price(workload, INT8)
    # L: 4,000 x (1 + 2) bytes = 12,000 B -> 32 KB SRAM, 1,500 64-bit reads, T times; A: 180,000 B and
    # Phi: 1.2 MB -> 1 MB SRAM (22,500 reads) and DRAM (150,000 reads), once each
    assert SPARSE_INDEX_BYTES == 2 and int8.placement == {"A, non-zeros": "SRAM 1 MB", "L, non-zeros": "SRAM 32 KB",
                                                          "Phi, non-zeros (final decode)": "DRAM"}
    assert int8.memory_nj == pytest.approx((22_500 * 100.0 + t * 1_500 * 20.0 + 150_000 * 1300.0) * 1e-3)
    spiking = 100.0
    summary = baseline_summary(m, k, t, spiking, nonzeros=nonzeros)
    priced = conventional_baselines(m, k, t, nonzeros=nonzeros)
    every = [v["with_memory_nj"] for key, v in priced.items() if not key.startswith("amortized")]
    dense = [v["with_memory_nj"] for key, v in priced.items() if key.startswith("dense_")]
    assert summary["energy_ratio_vs_conventional_with_memory"] == pytest.approx(min(every) / spiking)
    assert summary["energy_ratio_vs_dense_conventional_with_memory"] == pytest.approx(min(dense) / spiking)
    assert "sparse_lateral_int8" in priced and "sparse_lateral_int8" not in conventional_baselines(m, k, t)
