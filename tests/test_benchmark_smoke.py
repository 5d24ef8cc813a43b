"""The training benchmark runs end to end with tiny arguments and writes its JSON."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_train_speed_benchmark_tiny(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "train_speed.py"), "--latents", "16", "--steps", "2", "--batch", "10",
         "--batches-per-repeat", "1", "--repeats", "2", "--warmup", "1", "--out", str(tmp_path)],
        capture_output=True, text=True, cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "train_speed.json").read_text())
    assert report["latents"] == 16 and report["t_train"] == 2
    expected_flops = 3 * 2 * 2 * 10 * 16 * 784 * 2
    assert report["matmul_gflop_per_batch"] * 1e9 == expected_flops
    assert report["matmul_peak_gflop_per_second"] > 0
    for path in ("reference", "fast"):
        assert len(report["paths"][path]["seconds_per_batch_all"]) == 2
        assert report["paths"][path]["samples_per_second"] > 0
    assert "speed-up" in result.stdout


def _run_benchmark(script: str, *args: str):
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args], capture_output=True,
                            text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def test_quantization_benchmark_tiny(tmp_path):
    _run_benchmark("quantization.py", "pretrained/mnist_k512", "--n-images", "20", "--n-steps", "4", "--bits", "8",
                   "16", "--calibration", "50", "--out", str(tmp_path))
    report = json.loads(next(tmp_path.glob("*.json")).read_text())
    text = json.dumps(report)
    assert "8" in text and "16" in text
    assert list(tmp_path.glob("*.png")), "the benchmark writes its figure"


def test_lava_speed_and_energy_benchmarks_tiny(tmp_path):
    _run_benchmark("lava_speed.py", "pretrained/mnist_k512", "--images", "2", "--steps", "3", "--repeats", "1",
                   "--out", str(tmp_path))
    _run_benchmark("energy.py", "pretrained/mnist_k512", "--images", "3", "--steps", "3", "--pareto-steps", "2", "3",
                   "--pareto-pruning", "0", "0.5", "--pareto-stopping", "--out", str(tmp_path))
    speed = json.loads((tmp_path / "lava_speed.json").read_text())
    energy = json.loads((tmp_path / "energy.json").read_text())
    assert speed["n_latents"] == 512
    groups = ("feedforward", "lateral", "readout")
    # per-inference means of integer counts: equal up to float rounding of the averages
    assert energy["synops_per_inference"] == pytest.approx(sum(energy[f"synops_{g}_per_inference"] for g in groups), rel=1e-12)
    # closed forms of the counting conventions (docs/energy.md): (T+1) K neuron updates and (2T+1) M K dense MACs
    assert energy["neuron_updates_per_inference"] == (3 + 1) * 512
    assert energy["dense_macs_per_inference"] == (2 * 3 + 1) * 784 * 512
    assert energy["events_per_inference"] <= energy["spikes_per_inference"]
    assert len(energy["pareto"]["spiking"]) == 2 * 2 and (tmp_path / "energy_pareto.png").is_file()
    for key in ("energy_ratio_vs_conventional_with_memory", "energy_ratio_vs_conventional_arithmetic"):
        assert energy[key] > 0
    assert energy["targets"]["applies"] is False  # no T = 64 point in this tiny run


def test_pruning_benchmark_tiny(tmp_path):
    _run_benchmark("pruning.py", "pretrained/mnist_k512", "--images", "3", "--steps", "2", "--fractions", "0.5",
                   "--out", str(tmp_path))
    report = json.loads((tmp_path / "pruning.json").read_text())
    lateral = report["schedules"]["lateral"]
    assert [p["fraction"] for p in lateral] == [0.0, 0.5]
    # half of the prunable lateral synapses go; the self-inhibition (the neuron's own, largest weight) is kept
    prunable = lateral[0]["synapses_lateral"] - lateral[0]["synapses_self_inhibition"]
    assert lateral[1]["synapses_self_inhibition"] == lateral[0]["synapses_self_inhibition"]
    assert lateral[1]["synapses_lateral"] == lateral[0]["synapses_lateral"] - round(0.5 * prunable)
    assert lateral[1]["synops_lateral_per_inference"] < lateral[0]["synops_lateral_per_inference"]
    assert (tmp_path / "pruning.png").is_file()




def test_baseline_costs_benchmark_tiny(tmp_path):
    _run_benchmark("baseline_costs.py", "--n-inputs", "16", "--latents", "8", "--steps", "1", "3", "--out", str(tmp_path))
    report = json.loads((tmp_path / "baseline_costs.json").read_text())
    rows = {row["model"]: row for row in report["models"]}
    assert rows["lca"]["params"] == 16 * 8 and rows["lca"]["macs_per_inference"]["3"] == 2 * 3 * 16 * 8
    assert rows["amortized_poisson_linear"]["macs_per_inference"]["1"] == 16 * 8 + 16 * 8


def test_gap_to_the_10x_target_closed_form():
    import importlib.util

    spec = importlib.util.spec_from_file_location("energy_benchmark", Path(__file__).parents[1] / "benchmarks" / "energy.py")
    energy = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(energy)
    synop_nj = 23.6e-3  # Davies 2018's synaptic op, 23.6 pJ
    # 1000 lateral synops = 23.6 nJ of a 33.6 nJ estimate: the other groups cost 10 nJ; K = 10, T = 2 reads
    # 1000 / (2 * 100) = 5 times the whole lateral matrix per step (a fan-out above K is impossible; fine here)
    point = {"synops_lateral_per_inference": 1000.0, "energy_estimate_nj": 1000 * synop_nj + 10.0, "steps": 2}
    gap = energy.gap_to_target(point, conventional_nj=200.0, n_latents=10)  # budget 20 nJ: 10 left for lateral
    assert gap["spiking_budget_nj"] == pytest.approx(20.0)
    assert gap["other_groups_nj"] == pytest.approx(10.0)
    assert gap["lateral_reduction_needed"] == pytest.approx(23.6 / 10.0)
    assert gap["lateral_matrix_fraction_read_per_step"] == pytest.approx(5.0)
    assert gap["lateral_matrix_fraction_per_step_needed"] == pytest.approx(5.0 / 2.36)
    assert energy.gap_to_target(point, conventional_nj=50.0, n_latents=10)["lateral_reduction_needed"] is None


def test_energy_benchmark_stopping_points_price_the_dense_loop_with_the_same_rule(tmp_path):
    from ipvae.lava.pipeline import models_for_benchmark
    from ipvae.lava.accounting.pricing import NonZeros, conventional_baselines

    _run_benchmark("energy.py", "pretrained/mnist_k512", "--images", "3", "--steps", "2", "--pareto-steps", "64",
                   "--pareto-pruning", "0", "--pareto-stopping", "2:100", "4:0.25", "--out", str(tmp_path))
    energy = json.loads((tmp_path / "energy.json").read_text())
    stopped = [p for p in energy["pareto"]["spiking"] if "stop_window" in p]
    assert [(p["stop_window"], p["stop_eps"]) for p in stopped] == [(2, 100.0), (4, 0.25)]
    for point in stopped:
        assert point["steps"] == 64 and 0 <= point["mean_last_step"] <= 64
        mean_steps = max(1, round(point["mean_last_step"]))
        nonzeros = NonZeros.from_integer_model(models_for_benchmark("pretrained/mnist_k512", seed=0).integer)
        priced = conventional_baselines(784, 512, mean_steps, nonzeros=nonzeros)  # again here, at the rule's mean steps
        cheapest = min(priced[key]["with_memory_nj"] for key in ("dense_lateral_int8", "dense_iterative_int8", "sparse_lateral_int8"))
        assert point["dense_same_rule"]["with_memory_nj"][0] == pytest.approx(cheapest, rel=1e-12)
    # eps 100 lets every image stop at the earliest step the rule can: far fewer steps than the window
    assert stopped[0]["mean_last_step"] < 16
    assert energy["targets"]["applies"] is True and "to_reach_10x" in energy["targets"]


def test_energy_benchmark_refuses_a_malformed_stopping_rule(tmp_path):
    result = subprocess.run([sys.executable, "benchmarks/energy.py", "--pareto-stopping", "8", "--out", str(tmp_path)],
                            capture_output=True, text=True, cwd=Path(__file__).parents[1])
    assert result.returncode == 2 and "WINDOW:EPS" in result.stderr
