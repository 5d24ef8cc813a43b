"""What every experiment receives: where results go, the budget, the models, the device label."""

from __future__ import annotations

import json
import time
import os
import platform
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ipvae.paper.budget import Budget
from ipvae.paper.zoo import ModelEntry
from ipvae.fileio import write_json

PARTS_DIR = "parts"
SECONDS_DIR = "seconds"  # parts/seconds/KEY.json: {"seconds": wall seconds the part took to compute}
PART_SECONDS = "part_seconds"  # an experiment result's sum of its parts' seconds


def device_label() -> str:
    """'CPU <model name>, N cores, torch T threads' (or the CUDA device when torch uses one)."""
    import torch

    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"CPU {name}, {os.cpu_count()} cores, torch {torch.get_num_threads()} threads"


@dataclass(frozen=True)
class Context:
    results_dir: Path
    budget: Budget
    models: tuple[ModelEntry, ...]
    device: str
    user_datasets: tuple[tuple[str, Path], ...] = ()
    log: Callable[[str], None] = print

    def experiment_dir(self, name: str) -> Path:
        path = self.results_dir / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def cached(self, experiment: str, key: str, compute: Callable[[], dict]) -> dict:
        """The JSON part ``key`` of an experiment: read if a previous (interrupted) run wrote it, else computed."""
        path = self.experiment_dir(experiment) / PARTS_DIR / f"{key}.json"
        if path.is_file():
            return json.loads(path.read_text())
        started = time.perf_counter()
        value = compute()
        write_json(path, value)
        write_json(path.parent / SECONDS_DIR / f"{key}.json", {"seconds": time.perf_counter() - started})
        return value

    def part_seconds(self, experiment: str) -> float | None:
        """Wall seconds spent computing the experiment's parts, summed over every invocation and side-by-side
        half that wrote one (None when no part recorded its time: results written before this was kept)."""
        files = sorted((self.experiment_dir(experiment) / PARTS_DIR / SECONDS_DIR).glob("*.json"))
        if not files:
            return None
        return float(sum(json.loads(path.read_text())["seconds"] for path in files))
