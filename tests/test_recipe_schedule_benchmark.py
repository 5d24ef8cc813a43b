"""benchmarks/time_to_quality.py in its --quick form: the default recipe trains in slices, each slice is
evaluated, and the report has the targets, the machine and every evaluation (what a real run measures)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def _benchmark():
    spec = importlib.util.spec_from_file_location("time_to_quality", REPO_ROOT / "benchmarks" / "time_to_quality.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quick_time_to_quality_reports_a_curve_per_slice_and_the_machine(tmp_path, capsys):
    benchmark = _benchmark()
    out = tmp_path / "ttq.json"
    assert benchmark.main(["--quick", "--runs", "1", "--run-root", str(tmp_path / "runs"), "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    run = report["runs"][0]
    steps_per_epoch = 200 // 50
    assert [point["step"] for point in run["curve"]] == [2, 4, 6, 8]  # every 2 steps of 2 epochs
    assert run["steps"] == 2 * steps_per_epoch
    assert all(0.0 <= point["zeros"] <= 1.0 and point["r2"] <= 1.0 for point in run["curve"])
    config = json.loads((tmp_path / "runs" / "seed0" / "config.json").read_text())
    assert config["model"]["hard_upper_clamp"] and config["train"]["phases"]  # the default recipe
    # the targets are far out of reach of 16 neurons trained 8 steps: the run says so rather than inventing a time
    assert run["reached"] is False and report["median_minutes_to_quality"] is None
    assert report["machine"]["logical_cpus"] >= 1 and report["machine"]["cpu"]
    assert "median minutes" in capsys.readouterr().out
