"""benchmarks/event_driven.py runs end to end with tiny arguments and writes its JSON."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_event_driven_benchmark_tiny(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "event_driven.py"), "pretrained/mnist_k512", "--images", "2",
         "--steps", "8", "--out", str(tmp_path)],
        capture_output=True, text=True, cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((tmp_path / "event_driven.json").read_text())
    static = {row["setting"]: row for row in report["static_stopping"]}
    resend = static["re-send input + decode every step (today)"]
    event = static["event-driven: input once, decode at the end"]
    # same spikes, so the same lateral traffic and R^2; the input is charged once instead of T + 1 times
    assert event["synops_lateral_per_inference"] == resend["synops_lateral_per_inference"]
    assert event["readout_r2"] == resend["readout_r2"]
    assert event["synops_feedforward_per_inference"] * (8 + 1) == resend["synops_feedforward_per_inference"]
    thresholds = [row for row in report["rotating_threshold"] if row["setting"].startswith("sigma-delta")]
    events = [row["input_events_per_inference"] for row in thresholds]
    assert events == sorted(events, reverse=True)  # a larger threshold never sends more
    assert "| setting |" in result.stdout
