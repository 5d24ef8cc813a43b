"""`ipvae paper NAME|all|report` (alias `ipvae bench`): run the paper's experiments and generate the results report."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ipvae.errors import IpvaeError
from ipvae.paper.experiments import NAMES

DEFAULT_OUT = {"full": "runs/bench", "long": "runs/bench-long", "quick": "runs/bench-quick", "paper": "runs/bench-paper",
               "tiny": "runs/bench-tiny"}
# the headline report is the long budget's; the 3-seed full budget gives the spread beside it
DEFAULT_REPORT = {"long": "docs/results.md", "full": "docs/results-spread.md", "quick": "docs/results-quick.md"}


def register(subparsers) -> None:
    parser = subparsers.add_parser("paper", aliases=["bench"],
                                   help="run the paper's experiments (JSON + PNG + Markdown) or the report (alias: bench)")
    parser.add_argument("name", help=f"an experiment ({', '.join(NAMES)}), 'all' (the six) or 'report'")
    parser.add_argument("--quick", action="store_true", help="the smoke budget (minutes, one seed; not results)")
    parser.add_argument("--budget", choices=list(DEFAULT_OUT),
                        help="full (default: 1 epoch, 3 seeds), long (10 epochs, 1 seed), quick, paper (400 epochs) "
                             "or tiny (seconds; for tests only)")
    parser.add_argument("--out", help="results directory (default runs/bench, runs/bench-quick with --quick)")
    parser.add_argument("--models", nargs="+", help="model names (default: every entry of ipvae.paper.zoo.MODELS)")
    parser.add_argument("--dataset", action="append", default=[], metavar="NAME=PATH",
                        help="novel: also test on a user's 28x28 set (.npy or a folder of PNGs); repeatable")
    parser.add_argument("--report", help="report: the Markdown file to write (default by budget: long "
                                         "docs/results.md, full docs/results-spread.md, quick docs/results-quick.md, "
                                         "any other docs/results-NAME.md)")
    parser.add_argument("--headline", metavar="MARKDOWN",
                        help="report: also rewrite the headline-results block of this Markdown file (between its "
                             "markers; not at a smoke budget), e.g. README.md as 'make results' does")
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.set_defaults(func=run_bench)


def _user_datasets(specs: list[str]) -> tuple[tuple[str, Path], ...]:
    parsed = []
    for spec in specs:
        name, separator, path = spec.partition("=")
        if not separator or not name or not path:
            raise IpvaeError(f"--dataset expects NAME=PATH, got {spec!r}")
        if not Path(path).exists():
            raise IpvaeError(f"--dataset {name}: {path} does not exist")
        parsed.append((name, Path(path)))
    return tuple(parsed)


def run_bench(args) -> int:
    import torch

    from ipvae.paper.budget import get_budget
    from ipvae.paper.context import Context, device_label
    from ipvae.paper.report import write_report
    from ipvae.paper.runner import run_experiment
    from ipvae.paper.zoo import select_models

    if args.quick and args.budget not in (None, "quick"):
        raise IpvaeError("--quick and --budget disagree")
    budget_name = "quick" if args.quick else (args.budget or "full")
    results_dir = Path(args.out or DEFAULT_OUT[budget_name])
    if args.name == "report":
        default = DEFAULT_REPORT.get(budget_name, f"docs/results-{budget_name}.md")
        headline = Path(args.headline) if args.headline else None
        if headline is not None and not headline.is_file():
            raise IpvaeError(f"--headline {headline}: no such file")
        out = write_report(results_dir, Path(args.report or default), readme=headline)
        print(f"wrote {out}")
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    ctx = Context(results_dir=results_dir, budget=get_budget(budget_name), models=select_models(args.models),
                  device=device_label(), user_datasets=_user_datasets(args.dataset))
    names = list(NAMES) if args.name == "all" else [args.name]
    started = time.perf_counter()
    for name in names:
        run_experiment(ctx, name)
    ctx.log(f"{', '.join(names)}: {(time.perf_counter() - started) / 60:.1f} minutes ({ctx.device}, budget {budget_name})")
    return 0
