"""The training benchmark runs end to end with tiny arguments and writes its JSON."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_train_speed_benchmark_tiny(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "train_speed.py"), "--latents", "16", "--steps", "2", "--batch", "10",
         "--batches-per-repeat", "1", "--repeats", "2", "--warmup", "1", "--out", str(tmp_path)],
        capture_output=True, text=True, cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "train_speed.json").read_text())
    assert report["latents"] == 16 and report["t_train"] == 2 and len(report["seconds_per_batch_all"]) == 2
    expected_flops = 3 * 2 * 2 * 10 * 16 * 784 * 2
    assert report["matmul_gflop_per_batch"] * 1e9 == expected_flops
    assert report["samples_per_second"] > 0
