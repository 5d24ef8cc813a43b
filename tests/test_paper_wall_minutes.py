"""The report's wall minutes per experiment come from the parts' own compute times (parts/seconds/KEY.json),
summed over every invocation and half, so a final invocation that only reassembles cached parts no longer
shows 0.0 for an experiment that trained for an hour."""

from __future__ import annotations

import time

from ipvae.paper.budget import TINY
from ipvae.paper.context import Context
from ipvae.paper.report import _budget_section
from ipvae.paper.zoo import MODELS

PART_WORK_SECONDS = 0.05  # each computed part waits at least this long (a lower bound on its recorded time)


def slow_part(value: int) -> dict:
    time.sleep(PART_WORK_SECONDS)
    return {"value": value}


def test_part_seconds_sum_every_computed_part_and_ignore_cached_reads(tmp_path):
    first = Context(results_dir=tmp_path, budget=TINY, models=MODELS, device="test")
    assert first.part_seconds("demo") is None  # nothing recorded yet
    first.cached("demo", "a", lambda: slow_part(1))
    second = Context(results_dir=tmp_path, budget=TINY, models=MODELS, device="test")  # another invocation / half
    second.cached("demo", "b", lambda: slow_part(2))
    assert second.cached("demo", "a", lambda: slow_part(99)) == {"value": 1}  # read back, not recomputed
    total = second.part_seconds("demo")
    assert 2 * PART_WORK_SECONDS <= total < 2 * PART_WORK_SECONDS + 5.0


def test_the_report_shows_part_minutes_beside_the_last_invocation():
    budget = {"name": "tiny"}
    results = {"mnist_like": {"budget": budget, "seconds": 0.6, "part_seconds": 1800.0},
               "old": {"budget": budget, "seconds": 1.2}}
    text = "\n".join(_budget_section(results))
    assert "| mnist_like | 30.0 | 0.0 |" in text
    assert "| old | - | 0.0 |" in text
