"""Run an experiment: its result JSON, figures and Markdown in RESULTS/NAME/ (resumable through parts)."""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from pathlib import Path

from ipvae.paper.context import PART_SECONDS, Context
from ipvae.paper.experiments import EXPERIMENTS
from ipvae.errors import IpvaeError
from ipvae.fileio import atomic_path, write_json

MANIFEST = "manifest.json"


def check_results_dir(results_dir: Path, budget_name: str) -> None:
    """A results directory holds one budget: refuse to mix another budget's models and parts into it."""
    manifest = results_dir / MANIFEST
    if manifest.is_file():
        recorded = json.loads(manifest.read_text()).get("budget")
        if recorded != budget_name:
            raise IpvaeError(f"{results_dir} holds results of the {recorded!r} budget; use another --out for {budget_name!r}")
    else:
        write_json(manifest, {"budget": budget_name, "started_utc": datetime.now(timezone.utc).isoformat()})


WRITTEN_UTC = "written_utc"  # when an experiment's result JSON was written (survives a copy or a git checkout)


def wall_span_seconds(results_dir: Path, result_files: list[Path]) -> float | None:
    """Seconds from the directory's first experiment start (the manifest) to its last result written: the wall
    clock of everything that produced the results, side-by-side halves and resumed parts included. The times are
    the ones recorded in the files; the file's mtime only for results written before they were recorded."""
    manifest = Path(results_dir) / MANIFEST
    if not manifest.is_file() or not result_files:
        return None
    recorded = json.loads(manifest.read_text()).get("started_utc")
    started = datetime.fromisoformat(recorded).timestamp() if recorded else manifest.stat().st_mtime
    return max(_written_at(path) for path in result_files) - started


def _written_at(result_file: Path) -> float:
    recorded = json.loads(result_file.read_text()).get(WRITTEN_UTC)
    return datetime.fromisoformat(recorded).timestamp() if recorded else result_file.stat().st_mtime


def run_experiment(ctx: Context, name: str) -> dict:
    if name not in EXPERIMENTS:
        raise IpvaeError(f"unknown experiment {name!r}; expected one of {', '.join(EXPERIMENTS)}")
    check_results_dir(ctx.results_dir, ctx.budget.name)
    module = EXPERIMENTS[name]
    started = time.perf_counter()
    result = module.run(ctx)
    result["seconds"] = time.perf_counter() - started
    out = ctx.experiment_dir(name)
    result[PART_SECONDS] = ctx.part_seconds(name)
    result[WRITTEN_UTC] = datetime.now(timezone.utc).isoformat()
    write_json(out / f"{name}.json", result)
    with atomic_path(out / f"{name}.md") as temporary:
        temporary.write_text(f"# {module.TITLE}\n\n{module.markdown(result, '')}\n")
    ctx.log(f"{name}: wrote {out / (name + '.json')} ({result['seconds']:.0f} s)")
    return result
