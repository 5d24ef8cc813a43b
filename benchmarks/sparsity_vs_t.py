"""Does the code get sparser or denser with t, and where does it settle? (docs/sparsity.md)

    .venv/bin/python benchmarks/sparsity_vs_t.py [RUN_DIR] [--n-images 300] [--steps 1000]
        [--sets mnist fashion_mnist rotated letters] [--variants shipped authors dense_start ...]
        [--quick] [--out benchmarks/results/sparsity]

Float model, exact Poisson draws (torch, seed 0), the same images for every variant. For each set and
variant: zeros (fraction of zero counts) and R^2 of Phi z_t (1 - SSE / SST per image, averaged) at
t = 16 / 64 / 256 / 1000, each the mean over the steps t-7..t (one step's draws are noisier than the
effects measured), and the per-step zeros curve. Variants change inference only (the shipped weights):

    shipped       the model as deployed: u_0 = u_prior, leak 2^-8 toward u_prior, hard clamp at u_max, cap 31
    authors       the authors' public update (train/inference/authors_poisson.py) on the same weights: u_0 =
                  u_prior (their learned u_init), soft ceiling u_max on du and on u, floor u_min, no leak, no cap
    dense_side    the candidate fix: u_0 = -2 for every neuron (the dense side of the fixed point), leak 2^-8
                  toward u_prior - 4; as weights (``as_weights``): u_prior := -2, b := b + 2^-8 (-2 - u_prior + 4) / lr
    dense_start   shipped dynamics started from u_0 = DENSE_START_U for every neuron (zeros exp(-1) = .37 at t = 0)
    leak_6        leak 2^-6 toward u_prior (the export's leak_shift 6)
    target_4      leak 2^-8 toward u_prior - 4 (= the bias b + 2^-8 * 4 / lr: an integer bias in the export)
    authors_dense the authors' update from u_0 = DENSE_START_U
    authors_lr1   the authors' update with the step size 1.0 (their initial lr; the shipped lr is 0.136), from u_prior
                  (these two are probes, not in the default list)
    stop          shipped dynamics with the event-driven stopping rule (ipvae.export.events, window 16,
                  eps 1/16): a stopped image keeps its last code, so t beyond its stop reads that code

Sets: benchmarks/fidelity_novel.py's ``novel_set`` (MNIST test, Fashion-MNIST test, MNIST test digits rotated
by uniform angles 0..180, letters from the Hershey test fonts). Writes sparsity.json (atomically) and prints
the table (sparsity.txt). ``--integer``: also the 8-bit export of the run (``ipvae export``'s default settings) on
the integer reference, row "8-bit export". ``--write-weights DIR``: write a copy of the run with the dense_side
variant as weights (``as_weights``: u_prior and b only; any ``ipvae`` command then runs it) and stop. ``--quick``: 100 images of MNIST and
Fashion-MNIST, shipped, dense_start and dense_side, to t = 256 (about 10 s of CPU).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fidelity_novel import DEFAULT_SETS, novel_set
from ipvae.errors import IpvaeError
from ipvae.export.events import EventOptions, converged, is_check_step
from ipvae.export.fidelity import r2_per_image
from ipvae.export.pipeline import ExportSettings, build_integer_model
from ipvae.export.quantize import quantize_input
from ipvae.export.reference import run_reference
from ipvae.export.source import load_source
from ipvae.fileio import atomic_path, prepare_output_dir, write_json
from ipvae.train.checkpoint import load_run, save_run
from ipvae.train.inference import InferenceParams, authors_poisson
from ipvae.train.inference import poisson as toolkit_poisson

DEFAULT_RUN = Path("pretrained/mnist_k512")
DEFAULT_OUT = Path("benchmarks/results/sparsity")
CHECKPOINTS = (16, 64, 256, 1000)
STEP_WINDOW = 8  # a figure at t: the mean over steps t-7..t
BATCH = 100
DENSE_START_U = 0.0  # rate 1 per neuron: zeros exp(-1) = .37 at t = 0
STOP_WINDOW, STOP_EPS = 16, 1.0 / 16.0
DENSE_SIDE_START_U, DENSE_SIDE_TARGET_OFFSET = -2.0, 4.0  # the candidate fix (docs/sparsity.md)
AUTHORS_LR_SCALE = 7.37  # the shipped lr 0.1357 times this is 1.0, the authors' initial step size
HOLD_TOLERANCE = 0.01  # zeros at t = 1000 may be this far below those at t = 64 (issue 22)
R2_TOLERANCE = 0.01  # "R^2 kept": within this of the shipped model's at the same t
MAX_IMAGES = 10_000


@dataclass(frozen=True)
class Variant:
    """An inference-time change of the shipped model (module docstring)."""

    name: str
    authors: bool = False  # the authors' update (authors_poisson) instead of the toolkit's
    start_u: float | None = None  # u_0 for every neuron (None: u_prior)
    leak: float | None = None  # None: the model's own
    target_offset: float = 0.0  # the leak pulls toward u_prior - target_offset (a bias shift)
    stop: bool = False  # the event-driven stopping rule
    lr_scale: float = 1.0  # the step size lr times this (a probe of the approach, not deployable as such)


VARIANTS = {
    "shipped": Variant("shipped"),
    "authors": Variant("authors", authors=True),
    "dense_start": Variant("dense_start", start_u=DENSE_START_U),
    "leak_6": Variant("leak_6", leak=2.0**-6),
    "target_4": Variant("target_4", target_offset=4.0),
    "stop": Variant("stop", stop=True),
    "dense_side": Variant("dense_side", start_u=DENSE_SIDE_START_U, target_offset=DENSE_SIDE_TARGET_OFFSET),
    "authors_dense": Variant("authors_dense", authors=True, start_u=DENSE_START_U),
    "authors_lr1": Variant("authors_lr1", authors=True, lr_scale=AUTHORS_LR_SCALE),
}
DEFAULT_VARIANTS = ("shipped", "authors", "dense_start", "leak_6", "target_4", "stop", "dense_side")
QUICK = dict(n_images=100, n_steps=256, sets=("mnist", "fashion_mnist"), variants=("shipped", "dense_start", "dense_side"))


def variant_params(params: InferenceParams, variant: Variant) -> InferenceParams:
    """The dynamics' parameters under a variant. A leak toward u_prior - d is the leak toward u_prior plus
    the constant a d per step, i.e. the bias b + a d / lr (the initial state stays u_prior)."""
    leak = params.leak if variant.leak is None else variant.leak
    bias = params.bias + leak * variant.target_offset / params.step_size  # [K]
    return dataclasses.replace(params, leak=leak, bias=bias, step_size=params.step_size * variant.lr_scale)


def as_weights(params: InferenceParams, variant: Variant) -> tuple[torch.Tensor, torch.Tensor]:
    """(u_prior', b') [K] such that the shipped dynamics (start at u_prior', leak toward u_prior') run the
    variant's start and leak target exactly (``toolkit_poisson.moved_start``): no new format."""
    if variant.authors or variant.stop or variant.lr_scale != 1.0 or variant.leak is not None:
        raise ValueError(f"variant {variant.name!r} is not a change of u_prior and b alone")
    return toolkit_poisson.moved_start(params, variant.start_u, variant.target_offset)


def simulate(params: InferenceParams, variant: Variant, x: torch.Tensor, n_steps: int, seed: int) -> dict:
    """One run of x [N, M] for t = 1..n_steps. Returns zeros [T] per step, R^2 per checkpoint window
    (mean over images), per-neuron non-zero fractions [K] at each checkpoint window, and the stop steps."""
    dynamics = authors_poisson if variant.authors else toolkit_poisson
    params = variant_params(params, variant)
    generator = torch.Generator().manual_seed(seed)
    lateral = (params.phi * params.precision[:, None]).T @ params.phi  # [K, K] W = Phi^T D Phi
    windows = {t: range(max(t - STEP_WINDOW + 1, 1), t + 1) for t in CHECKPOINTS if t <= n_steps}
    scored = set().union(*windows.values())
    zeros = np.zeros(n_steps)
    r2_sum = {t: 0.0 for t in windows}
    active_sum = {t: torch.zeros(params.phi.shape[1], dtype=torch.float64) for t in windows}
    potential = {t: [] for t in windows}  # [N, K] pieces: u averaged over the window
    stop_steps = []
    for start in range(0, x.shape[0], BATCH):
        batch = x[start:start + BATCH]  # [B, M]
        feedforward = (batch * params.precision) @ params.phi  # [B, K] Phi^T D x
        state = dynamics.initial_state(params, batch.shape[0])
        if variant.start_u is not None:
            state = type(state)(u=torch.full_like(state.u, variant.start_u))
        z = dynamics.draw(state, params, 0.0, generator).z  # [B, K] z_0
        stopper = Stopper(batch.shape[0], z.shape[1]) if variant.stop else None
        held = z
        window_u = {t: torch.zeros_like(state.u) for t in windows}  # [B, K]
        for t in range(1, n_steps + 1):
            state = dynamics.update(state, None, feedforward - z @ lateral, params)
            z = dynamics.draw(state, params, 0.0, generator).z  # [B, K]
            if stopper is not None:
                held = stopper.step(t, z, held)  # [B, K] the code read out at t: frozen once stopped
            else:
                held = z
            zeros[t - 1] += float((held == 0).sum())
            if t in scored:
                recon = held @ params.phi.T  # [B, M]
                r2 = 1.0 - (batch - recon).square().sum(-1) / (batch - batch.mean(-1, keepdim=True)).square().sum(-1)
                for checkpoint, steps in windows.items():
                    if t in steps:
                        r2_sum[checkpoint] += float(r2.sum()) / len(steps)
                        active_sum[checkpoint] += (held > 0).double().sum(0) / len(steps)
                        window_u[checkpoint] += state.u / len(steps)
        for checkpoint in windows:
            potential[checkpoint].append(window_u[checkpoint])
        if stopper is not None:
            stop_steps.extend(stopper.last_step.tolist())
    n_images, n_latents = x.shape[0], params.phi.shape[1]
    zeros_curve = zeros / (n_images * n_latents)
    return {
        "zeros_curve": zeros_curve,
        "zeros": {t: float(zeros_curve[[step - 1 for step in steps]].mean()) for t, steps in windows.items()},
        "r2": {t: r2_sum[t] / n_images for t in windows},
        "active_per_neuron": {t: (active_sum[t] / n_images).numpy() for t in windows},
        "potential": {t: torch.cat(potential[t]).numpy() for t in windows},  # [N, K]
        "stop_steps": stop_steps,
    }


def simulate_integer(run_dir: Path, x: torch.Tensor, n_steps: int) -> dict:
    """The 8-bit export's zeros and R^2 per checkpoint window (integer reference, default export settings)."""
    model, _ = build_integer_model(load_source(run_dir), ExportSettings())
    phi = model.decoder_phi.astype(np.float64)  # [M, K]
    windows = {t: range(max(t - STEP_WINDOW + 1, 1), t + 1) for t in CHECKPOINTS if t <= n_steps}
    zeros, r2 = {t: 0.0 for t in windows}, {t: 0.0 for t in windows}
    images = x.double().numpy()
    for start in range(0, len(images), BATCH):
        batch = images[start:start + BATCH]  # [B, M]
        payload = quantize_input(batch, model.input_scale, model.spec.input_bits)
        z = run_reference(model, payload, n_steps, image_offset=start, with_recon=False).z  # [T+1, B, K]
        for t, steps in windows.items():
            for step in steps:
                zeros[t] += float((z[step] == 0).mean(axis=-1).sum()) / len(steps)
                r2[t] += float(r2_per_image(batch, z[step].astype(np.float64) @ phi.T).sum()) / len(steps)
    return {"zeros": {t: v / len(images) for t, v in zeros.items()}, "r2": {t: v / len(images) for t, v in r2.items()}}


def write_variant_weights(loaded, variant: Variant, target: Path) -> None:
    """A copy of the run with the variant as u_prior and b (``as_weights``); the config is unchanged."""
    model = loaded.model
    with torch.no_grad():
        u_prior, bias = as_weights(model.inference_params(), variant)
        model.u_prior.copy_(u_prior)
        model.log_b.copy_(bias.log())
    save_run(target, loaded.config, model)


class Stopper:
    """The event-driven stopping rule (ipvae.export.events: windowed counts, relative L1 change <= eps) on
    float counts; a stopped image's code read out at later t is its code at the stop step."""

    def __init__(self, batch_size: int, n_latents: int) -> None:
        self.options = EventOptions.from_real(stop_window=STOP_WINDOW, stop_eps=STOP_EPS)
        self.active = np.ones(batch_size, dtype=bool)
        self.last_step = np.full(batch_size, -1, dtype=np.int64)
        self.window = np.zeros((batch_size, n_latents), dtype=np.int64)
        self.previous = np.zeros_like(self.window)

    def step(self, t: int, z: torch.Tensor, held: torch.Tensor) -> torch.Tensor:
        frozen = torch.from_numpy(~self.active)[:, None]  # [B, 1]
        out = torch.where(frozen, held, z)  # [B, K]
        self.window += out.numpy().astype(np.int64) * self.active[:, None]
        if t % self.options.stop_window == 0:
            if is_check_step(t, self.options):
                newly = converged(self.window, self.previous, self.options.stop_tolerance) & self.active
                self.last_step[newly] = t
                self.active &= ~newly
            self.previous, self.window = self.window, np.zeros_like(self.window)
        return out


def mechanism(params: InferenceParams, shipped: dict, dense: dict, late: int, early: int) -> dict:
    """Where the fixed point lies and who turns on late, from the shipped run and the dense-start run.

    Same fixed point: the per-(image, neuron) potentials at t = ``late`` of the two starts (correlation, mean
    absolute difference). Late recruits: (image, neuron) pairs with P(z > 0) < .1 at t = ``early`` and > .3 at
    t = ``late`` (P(z > 0) = 1 - exp(-exp(u)), u averaged over the window), their share of the growth of the
    non-zero probability, their mean climb of u per step, and the local restoring rate
    lr W_kk exp(u) + a at t = ``late`` (1 / steps) of late recruits against units already active at ``early``.
    """
    u_early, u_late, u_dense = shipped["potential"][early], shipped["potential"][late], dense["potential"][late]
    active_early, active_late = _nonzero_probability(u_early), _nonzero_probability(u_late)
    recruits = (active_early < 0.1) & (active_late > 0.3)  # [N, K]
    settled = active_early > 0.3  # [N, K]
    lateral_diagonal = ((params.phi * params.precision[:, None]) * params.phi).sum(0).numpy()  # [K] W_kk
    restoring = float(params.step_size) * lateral_diagonal[None, :] * np.exp(u_late) + params.leak  # [N, K]
    growth = active_late - active_early  # [N, K]
    return {
        "u_correlation_sparse_vs_dense_start": float(np.corrcoef(u_late.ravel(), u_dense.ravel())[0, 1]),
        "u_mean_abs_difference_sparse_vs_dense_start": float(np.abs(u_late - u_dense).mean()),
        "late_recruit_fraction": float(recruits.mean()),
        "late_recruit_share_of_growth": float(growth[recruits].sum() / growth.sum()),
        "late_recruit_u": [float(u_early[recruits].mean()), float(u_late[recruits].mean())],
        "late_recruit_climb_per_step": float(((u_late - u_early)[recruits]).mean() / (late - early)),
        "restoring_rate_late_recruits": float(np.median(restoring[recruits])),
        "restoring_rate_settled": float(np.median(restoring[settled])),
    }


def model_facts(params: InferenceParams) -> dict:
    """The numbers that set the approach: where u starts, how far one step moves it, the leak."""
    lateral_diagonal = ((params.phi * params.precision[:, None]) * params.phi).sum(0)  # [K] W_kk
    step_size = float(params.step_size)
    return {
        "step_size": step_size,
        "leak": params.leak,
        "u_prior_median": float(params.u_prior.median()),
        "zeros_at_u_prior": float(torch.exp(-params.u_prior.exp()).mean()),
        "self_inhibition_per_spike_median": float((step_size * lateral_diagonal).median()),  # lr W_kk
        "bias_range": [float(params.bias.min()), float(params.bias.max())],
    }


def _nonzero_probability(u: np.ndarray) -> np.ndarray:
    return -np.expm1(-np.exp(u))


def verdicts(results: dict, early: int, late: int) -> dict:
    """Per set and variant: zeros hold (zeros(late) >= zeros(early) - HOLD_TOLERANCE) and R^2 kept (within
    R2_TOLERANCE of the shipped model's at early and at late; None without a shipped row)."""
    out = {}
    for set_name, rows in results.items():
        shipped = rows.get("shipped")
        out[set_name] = {}
        for name, row in rows.items():
            holds = row["zeros"][late] >= row["zeros"][early] - HOLD_TOLERANCE
            kept = None if shipped is None else all(
                row["r2"][t] >= shipped["r2"][t] - R2_TOLERANCE for t in (early, late))
            out[set_name][name] = {"zeros_hold": bool(holds), "r2_kept": kept}
    return out


def table(results: dict, verdict: dict) -> str:
    lines = []
    for set_name, rows in results.items():
        steps = list(next(iter(rows.values()))["zeros"])
        header = " / ".join(str(t) for t in steps)
        lines.append(f"\n{set_name}: zeros and R^2 at t = {header}")
        for name, row in rows.items():
            zeros = " ".join(f"{row['zeros'][t]:.3f}" for t in steps)
            r2 = " ".join(f"{row['r2'][t]:.3f}" for t in steps)
            v = verdict[set_name][name]
            kept = "-" if v["r2_kept"] is None else ("kept" if v["r2_kept"] else "LOST")
            lines.append(f"  {name:12s} zeros {zeros}   R^2 {r2}   zeros {'hold' if v['zeros_hold'] else 'FALL'}, R^2 {kept}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", nargs="?", type=Path, default=DEFAULT_RUN)
    parser.add_argument("--n-images", type=int, default=300)
    parser.add_argument("--steps", type=int, default=max(CHECKPOINTS), help="T (>= 64)")
    parser.add_argument("--sets", nargs="+", choices=DEFAULT_SETS, default=list(DEFAULT_SETS))
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(DEFAULT_VARIANTS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="100 images, MNIST and Fashion-MNIST, 3 variants, T = 256")
    parser.add_argument("--integer", action="store_true", help="also the 8-bit export on the integer reference")
    parser.add_argument("--write-weights", type=Path, metavar="DIR", help="write the dense_side variant as weights and stop")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    if args.quick:
        args.n_images, args.steps = QUICK["n_images"], QUICK["n_steps"]
        args.sets, args.variants = list(QUICK["sets"]), list(QUICK["variants"])
    if not 1 <= args.n_images <= MAX_IMAGES:
        parser.error(f"--n-images must be in 1..{MAX_IMAGES}")
    if not 64 <= args.steps <= max(CHECKPOINTS):
        parser.error(f"--steps must be in 64..{max(CHECKPOINTS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(1)
    try:
        out_dir = prepare_output_dir(args.out)
        loaded = load_run(args.run_dir)
        if loaded.config.model.family != "poisson" or loaded.config.model.kind != "iterative":
            raise IpvaeError(f"{args.run_dir} is not an iterative Poisson model")
        if args.write_weights is not None:
            write_variant_weights(loaded, VARIANTS["dense_side"], prepare_output_dir(args.write_weights))
            print(f"wrote {args.write_weights} (dense_side as u_prior and b)")
            return 0
        with torch.no_grad():
            params = loaded.model.inference_params()
            params = dataclasses.replace(params, **{f.name: getattr(params, f.name).detach()
                                                    for f in dataclasses.fields(params)
                                                    if isinstance(getattr(params, f.name), torch.Tensor)})
        images = {name: torch.from_numpy(novel_set(name, args.n_images)).float() for name in args.sets}
    except IpvaeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    late = max(t for t in CHECKPOINTS if t <= args.steps)
    early = 64
    started = time.time()
    results, curves, mechanisms = {}, {}, {}
    with torch.no_grad():
        for set_name, x in images.items():
            runs = {name: simulate(params, VARIANTS[name], x, args.steps, args.seed) for name in args.variants}
            results[set_name] = {name: {"zeros": r["zeros"], "r2": r["r2"],
                                        **({"median_stop_step": float(np.median(r["stop_steps"]))} if r["stop_steps"] else {})}
                                 for name, r in runs.items()}
            if args.integer:
                results[set_name]["8-bit export"] = simulate_integer(args.run_dir, x, args.steps)
            curves[set_name] = {name: np.round(r["zeros_curve"], 4).tolist() for name, r in runs.items()}
            if "shipped" in runs and "dense_start" in runs:
                mechanisms[set_name] = mechanism(params, runs["shipped"], runs["dense_start"], late, early)
    verdict = verdicts(results, early, late)
    report = {
        "run_dir": str(args.run_dir), "n_images": args.n_images, "steps": args.steps, "seed": args.seed,
        "checkpoint_window": STEP_WINDOW, "variants": {name: dataclasses.asdict(VARIANTS[name]) for name in args.variants},
        "n_images_per_set": {name: int(x.shape[0]) for name, x in images.items()},
        "results": results, "verdicts": verdict, "mechanism": mechanisms, "zeros_curves": curves,
        "model": model_facts(params), "seconds": round(time.time() - started, 1),
    }
    name = "sparsity_quick.json" if args.quick else "sparsity.json"
    write_json(out_dir / name, report)
    text = table(results, verdict)
    facts = report["model"]
    text += (f"\nmodel: lr {facts['step_size']:.4f}, leak {facts['leak']:.5f}, u_prior median {facts['u_prior_median']:.2f} "
             f"(zeros {facts['zeros_at_u_prior']:.3f} at t = 0), lr W_kk median {facts['self_inhibition_per_spike_median']:.4f}, "
             f"b in [{facts['bias_range'][0]:.3f}, {facts['bias_range'][1]:.3f}]")
    for set_name, m in mechanisms.items():
        text += (f"\n{set_name} mechanism: u(t={late}) sparse vs dense start: corr {m['u_correlation_sparse_vs_dense_start']:.4f}, "
              f"mean |diff| {m['u_mean_abs_difference_sparse_vs_dense_start']:.3f}; late recruits {m['late_recruit_fraction']:.3f} "
              f"of pairs, {m['late_recruit_share_of_growth']:.2f} of the growth, u {m['late_recruit_u'][0]:.2f} -> "
              f"{m['late_recruit_u'][1]:.2f} ({m['late_recruit_climb_per_step']:.4f} per step)")
    with atomic_path(out_dir / name.replace(".json", ".txt")) as temporary:
        temporary.write_text(text.lstrip("\n") + "\n")
    print(text)
    print(f"\nwrote {out_dir / name} ({report['seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
