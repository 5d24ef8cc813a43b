"""`ipvae train` and `ipvae eval`."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
from pathlib import Path

from ipvae.errors import IpvaeError, one_line, shown
from ipvae.fileio import prepare_output_dir, remove_stale_temporaries, run_dir_lock, write_json
from ipvae.limits import check_memory, evaluation_bytes, images_bytes, read_json_file, training_bytes
from ipvae.images import is_file_source, load_file_inputs, square_side
from ipvae.train.config import DEVICES, FAMILIES
from ipvae.train.registry import kinds

EVAL_FILE = "eval.json"
RANK_VARIABLE = "RANK"  # torchrun's; rank 0 alone writes (and locks) the run directory
DEFAULT_EVAL_BATCH = 500  # EvalSettings.batch_size
DESCRIPTION_LIMIT = 600  # characters of the "input: ..." line (it names the files read)
CURVES_FILE = "curves.json"


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def non_negative_int(text: str) -> int:
    value = int(text) if text.lstrip("-").isdigit() else -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative number, got {text!r}") from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"expected a non-negative number, got {text!r}")
    return value


def finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def fraction_below_one(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}")
    return value


# CLI flag -> (section, field); one table for both the parser and the config overrides.
_TRAIN_OVERRIDES = {
    "data": ("train", "data"),
    "data_dir": ("train", "data_dir"),
    "train_limit": ("train", "train_limit"),
    "epochs": ("train", "epochs"),
    "batch_size": ("train", "batch_size"),
    "t_train": ("train", "t_train"),
    "learning_rate": ("train", "learning_rate"),
    "beta": ("train", "beta"),
    "seed": ("train", "seed"),
    "threads": ("train", "num_threads"),
    "device": ("train", "device"),
    "kind": ("model", "kind"),
    "family": ("model", "family"),
    "encoder": ("model", "encoder"),
    "sparse_algorithm": ("model", "sparse_algorithm"),
    "sparsity": ("model", "sparsity"),
    "n_latents": ("model", "n_latents"),
    "max_spike_count": ("model", "max_spike_count"),
    "leak": ("model", "leak"),
    "prepare": ("train", "prepare"),
    "image_shape": ("train", "image_shape"),
    "patches": ("train", "patch_size"),
    "val_fraction": ("train", "val_fraction"),
    "val_data": ("train", "val_data"),
    "init_from": ("train", "init_from"),
    "init_start_u": ("train", "init_start_u"),
    "init_leak_target_offset": ("train", "init_leak_target_offset"),
}


def register(subparsers) -> None:
    train_parser = subparsers.add_parser("train", help="train an iP-VAE (or iG/iG_relu-VAE, or a baseline: --kind) into a run directory")
    train_parser.add_argument("--out", required=True, help="run directory (model.safetensors, config.json, ...)")
    train_parser.add_argument("--config", help="JSON file with 'model' and/or 'train' sections (partial is fine)")
    train_parser.add_argument("--resume", action="store_true",
                              help="continue the run in --out (bit-identical to not stopping); --epochs may change its length")
    train_parser.add_argument("--max-steps", type=positive_int,
                              help="stop with a checkpoint after this many optimisation steps in total (train in slices)")
    train_parser.add_argument("--data", help="dataset name (mnist, fashion_mnist, natural_patches, bars), or your own "
                                             "images: a folder or quoted glob of PNG/JPEG (any H x W; colour is "
                                             "converted to grey), or a .npy/.npz array [N, H, W] or [N, M]")
    train_parser.add_argument("--recipe", choices=("stable", "plain"),
                              help="stable (default without --config): the shipped model's stability measures as one "
                                   "schedule (hard clamp of u at 4, leak 2^-8, count cap 31, warm-start training and "
                                   "the lateral L1 penalty in the second half); plain: the dataclass defaults "
                                   "(default with --config)")
    train_parser.add_argument("--prepare", choices=("plain", "mnist"),
                              help="your own images: plain (default: grayscale, scaled to [0, 1], own size) or mnist "
                                   "(cropped, fit in 20x20, centred in 28x28); 'ipvae run --data' prepares new "
                                   "images the same way")
    train_parser.add_argument("--image-shape", type=positive_int, nargs=2, metavar=("H", "W"),
                              help="the image size of an [N, M] array whose M is not a square")
    train_parser.add_argument("--patches", type=positive_int, metavar="P",
                              help="cut whitened P x P patches from your images (as natural_patches; --train-limit "
                                   "patches, default 20000)")
    train_parser.add_argument("--val-fraction", type=fraction_below_one,
                              help="share of your images held out for validation (default 0.1, seeded by --seed)")
    train_parser.add_argument("--val-data", help="validation images (folder, glob or array) instead of a carved share")
    train_parser.add_argument("--data-dir", help="directory with IDX files instead of the bundled MNIST")
    train_parser.add_argument("--train-limit", type=positive_int, help="use only the first N training images")
    train_parser.add_argument("--epochs", type=positive_int)
    train_parser.add_argument("--batch-size", type=positive_int)
    train_parser.add_argument("--t-train", type=positive_int, help="unrolled inference steps per batch")
    train_parser.add_argument("--learning-rate", type=positive_float)
    train_parser.add_argument("--beta", type=positive_float, help="final KL weight")
    train_parser.add_argument("--seed", type=non_negative_int)
    train_parser.add_argument("--threads", type=positive_int, help="torch CPU threads")
    train_parser.add_argument("--device", choices=DEVICES,
                              help="train on the CPU (default) or the GPU (a single process; torchrun picks per rank)")
    train_parser.add_argument("--kind", choices=kinds(), help="model: the iterative VAE (default) or a baseline")
    train_parser.add_argument("--family", choices=FAMILIES, help="posterior family (iterative and amortized VAEs)")
    train_parser.add_argument("--encoder", help="encoder of the amortized VAE (linear, mlp or conv)")
    train_parser.add_argument("--sparse-algorithm", help="sparse coding inference (lca, ista or fista)")
    train_parser.add_argument("--sparsity", type=non_negative_float, help="lambda of sparse / predictive coding")
    train_parser.add_argument("--n-latents", type=positive_int)
    train_parser.add_argument("--max-spike-count", type=positive_int)
    train_parser.add_argument("--leak", type=non_negative_float,
                              help="fraction of u - u_prior removed per inference step (iP-VAE; 2**-n to export, "
                                   "e.g. 0.00390625; default 0, the paper's dynamics)")
    train_parser.add_argument("--init-from", metavar="RUN",
                              help="start from this run's weights (same architecture), with a fresh optimizer: "
                                   "a fine-tune")
    train_parser.add_argument("--init-start-u", type=finite_float, metavar="U",
                              help="with --init-from (iP-VAE with a leak): start inference at u = U for every neuron, "
                                   "with the bias that keeps the leak's target (pretrained/mnist_k512.stage6.json "
                                   "uses -2.5): the dense side of the fixed point, so the code does not get denser "
                                   "with t (docs/sparsity.md)")
    train_parser.add_argument("--init-leak-target-offset", type=finite_float, metavar="D",
                              help="with --init-from: the leak pulls toward init_from's u_prior - D (stage 6: 4.5)")
    train_parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                              help="progress bar (default: only on a terminal)")
    train_parser.set_defaults(func=run_train)

    eval_parser = subparsers.add_parser("eval", help="evaluate a run directory (JSON metrics, curves, plots)")
    eval_parser.add_argument("run_dir")
    eval_parser.add_argument("--data", default=None,
                             help="dataset (default: the one it was trained on), or your own images: a PNG/JPEG "
                                  "file, a folder or a quoted glob (prepared like MNIST), or an [N, M] .npy/.npz")
    eval_parser.add_argument("--data-dir")
    eval_parser.add_argument("--t-test", type=positive_int, default=64, help="inference steps")
    eval_parser.add_argument("--limit", type=positive_int, help="evaluate only the first N test images")
    eval_parser.add_argument("--probe-train", type=non_negative_int, default=10_000,
                             help="training images for the logistic-regression probe (0: no probe)")
    eval_parser.add_argument("--curves", type=positive_int, default=0,
                             help="also record per-step curves up to this step (e.g. 1000)")
    eval_parser.add_argument("--seed", type=non_negative_int, default=0)
    eval_parser.add_argument("--out", help="write eval.json, curves.json and PNG plots here")
    eval_parser.add_argument("--json", action="store_true", help="print one JSON object (default: a table)")
    eval_parser.set_defaults(func=run_eval)


def build_config(args) -> "RunConfig":
    from ipvae.train.config import ModelConfig, RunConfig, TrainConfig, replace
    from ipvae.data import image_shape

    recipe = getattr(args, "recipe", None) or ("plain" if args.config else "stable")
    sections = _recipe_sections(recipe, args)
    if args.config:
        try:
            loaded = read_json_file(args.config)
        except FileNotFoundError:
            raise IpvaeError(f"config file {shown(args.config)} does not exist") from None
        except (OSError, ValueError) as error:
            raise IpvaeError(f"config file {shown(args.config)} is not valid JSON ({shown(error, 100)})") from None
        if not isinstance(loaded, dict) or not all(isinstance(loaded.get(name, {}), dict) for name in sections):
            raise IpvaeError(f"config file {shown(args.config)} must be an object with 'model' and/or 'train' objects")
        unknown = sorted(set(loaded) - set(sections))
        if unknown:
            raise IpvaeError(f"config file {shown(args.config)} has unknown section(s) {shown(unknown[:5])}; use 'model' and 'train'")
        for name in sections:
            sections[name].update(loaded.get(name, {}))
    for flag, (section, field) in _TRAIN_OVERRIDES.items():
        value = getattr(args, flag)
        if value is not None:
            sections[section][field] = value
    try:
        train_config = replace(TrainConfig(), **sections["train"])
        height, width = _input_shape(train_config)
        sections["model"].setdefault("n_inputs", height * width)
        model_config = ModelConfig.from_dict({name: value for name, value in sections["model"].items() if value is not None})
        config = RunConfig(model=model_config, train=train_config)
        check_config_limits(config)
    except (TypeError, ValueError) as error:
        raise IpvaeError(f"invalid configuration: {error}") from None
    return config


def _recipe_sections(recipe: str, args) -> dict:
    """The starting sections of a new run's config: the recipe's (ipvae.train.config.recipe_sections: whitened
    inputs get a weaker lateral L1); the stable recipe is for the iterative Poisson model, so another --kind or
    --family starts from the plain defaults."""
    from ipvae.train.config import recipe_sections

    iterative_poisson = (args.kind or "iterative") == "iterative" and (args.family or "poisson") == "poisson"
    return recipe_sections(recipe if iterative_poisson else "plain", args.data, args.patches)


def _input_shape(train_config) -> tuple[int, int]:
    """(H, W) of the run's inputs: a named set's, or what the user's own images become (read here, so a bad
    folder is one line before anything is written)."""
    from ipvae.data import image_shape, run_preparation

    if is_file_source(train_config.data):
        return run_preparation(train_config).shape
    return image_shape(train_config.data)


def check_config_limits(config) -> None:
    from ipvae.train.validation import check_config_limits as check

    check(config)


def check_training_memory(config) -> None:
    """Refuse, before anything is allocated, a training run whose images, weights and unrolled graph cannot fit."""
    model, train = config.model, config.train
    needed = training_bytes(train.train_limit or 0, model.n_inputs, model.n_latents, train.batch_size, train.t_train)
    check_memory(needed, f"training with --t-train {train.t_train} --batch-size {train.batch_size} "
                         f"--n-latents {model.n_latents} ({model.n_inputs} inputs"
                         + (f", --train-limit {train.train_limit})" if train.train_limit else ")"))


def run_train(args) -> int:
    from ipvae.train.checkpoint import load_config, save_config
    from ipvae.train.config import RunConfig, replace
    from ipvae.train.trainer import train

    if args.resume:
        config = load_config(args.out)
        changed = sorted(flag for flag in (*_TRAIN_OVERRIDES, "recipe") if flag != "epochs" and getattr(args, flag) is not None)
        if changed or args.config:
            raise IpvaeError(f"--resume continues the saved config; only --epochs may change (got {changed or '--config'})")
        if args.epochs is not None:
            config = RunConfig(model=config.model, train=replace(config.train, epochs=args.epochs))
            check_config_limits(config)
    else:
        config = build_config(args)
        if is_file_source(config.train.data):
            import sys

            from ipvae.data import run_description

            print(f"input: {run_description(config.train)}", file=sys.stderr)  # once the images are accepted
    check_training_memory(config)
    with contextlib.ExitStack() as held:
        if os.environ.get(RANK_VARIABLE, "0") == "0":  # one writer per run directory (torchrun: rank 0 writes)
            held.enter_context(run_dir_lock(args.out))
            if args.resume:
                remove_stale_temporaries(args.out)  # a killed writer's: no live one exists while we hold the lock
            elif (Path(args.out) / "model.safetensors").exists():
                raise IpvaeError(f"{shown(args.out)} already holds a model; use --resume to continue it or another --out")
            else:
                save_config(args.out, config)  # before weights or train state: a run directory always has its config
        result = train(config, args.out, resume=args.resume, show_progress=args.progress, max_steps=args.max_steps)
    if result.rank == 0:
        print(json.dumps({"run_dir": str(result.run_dir), "steps": result.steps, "seconds": round(result.seconds, 1),
                          **result.last_epoch_metrics}))
    return 0


def run_eval(args) -> int:
    from ipvae.train.checkpoint import load_config, load_run
    from ipvae.data import image_shape, saved_preparation
    from ipvae.train.evaluate import EvalSettings, evaluate_run
    from ipvae.train.plots import plot_curves, plot_dictionary

    saved = load_config(args.run_dir).model
    n_images, n_steps = args.limit or 0, max(args.t_test, args.curves)
    check_memory(evaluation_bytes(n_images, n_steps, saved.n_latents, saved.n_inputs, DEFAULT_EVAL_BATCH)
                 + images_bytes(args.probe_train, saved.n_inputs),
                 f"--t-test {args.t_test}" + (f" --curves {args.curves}" if args.curves else "")
                 + (f" --limit {args.limit}" if args.limit else "") + f" --probe-train {args.probe_train} "
                 f"({saved.n_latents} neurons, {saved.n_inputs} pixels)")
    run = load_run(args.run_dir)
    data = args.data or run.config.train.data
    n_inputs = run.config.model.n_inputs
    from_files = is_file_source(data)
    preparation = saved_preparation(args.run_dir, run.config.train)
    if preparation is not None and preparation.n_inputs != n_inputs:
        preparation = None
    if from_files:
        height, width = preparation.shape if preparation is not None else (square_side(n_inputs),) * 2
    else:  # a named set has its own size, whatever the run was trained on
        height, width = image_shape(data)
    if not from_files and height * width != n_inputs:
        raise IpvaeError(
            f"data set {data!r} has {height}x{width} = {height * width} pixels per image, but {args.run_dir} was "
            f"trained on {n_inputs} ({run.config.train.data!r}); pick a data set of that size"
        )
    if args.out:
        prepare_output_dir(args.out)
    settings = EvalSettings(t_test=args.t_test, seed=args.seed, curve_steps=args.curves)
    if args.data is None and from_files:
        report = _evaluate_held_out(run, settings, args.limit)
    elif from_files:
        report = _evaluate_files(run.model, data, n_inputs, settings, args.limit, preparation)
    else:
        report = evaluate_run(
            run.model, data, settings, data_dir=args.data_dir, test_limit=args.limit, probe_train_limit=args.probe_train
        )
    if args.out:
        out = Path(args.out)
        write_json(out / EVAL_FILE, report.metrics)
        t_train = run.config.train.t_train
        if args.curves:
            write_json(out / CURVES_FILE, {k: v.tolist() for k, v in report.curves.items()})
            plot_curves(report.curves, t_train, out / "curves.png", title=f"{args.run_dir} on {data}")
        plot_dictionary(run.model.phi.detach().numpy(), (height, width), out / "dictionary.png")
    if args.json:
        print(json.dumps(report.metrics))
    else:
        print(format_table(report.metrics))
    return 0


def _evaluate_held_out(run, settings, limit: int | None):
    """The evaluation metrics on the validation split of a run trained on the user's own images."""
    from ipvae.data import run_split
    from ipvae.train.evaluate import EvalReport, run_inference

    x = run_split(run.config.train, "test", limit=limit)  # [V, M]
    if x.shape[0] == 0:
        raise IpvaeError(f"the run trained on {shown(run.config.train.data)} without a validation split; "
                         "give images to evaluate with --data")
    metrics, curves, _ = run_inference(run.model, x, settings)
    report = {"data": f"{run.config.train.data} (validation)", "images": int(x.shape[0]), "t_test": settings.t_test,
              **metrics, "params": run.model.n_params}
    return EvalReport(metrics=report, curves=curves)


def _evaluate_files(model, data: str, n_inputs: int, settings, limit: int | None, preparation=None):
    """The evaluation metrics on the user's own images (ipvae.images; unlabelled, so no probe), prepared as the
    run's inputs were (``preparation``; None: by the model's size)."""
    import sys

    import torch

    from ipvae.train.evaluate import EvalReport, run_inference

    loaded = load_file_inputs(data, n_inputs, preparation)
    if loaded.x.ndim != 2:
        raise IpvaeError(f"{data}: 'ipvae eval' takes still images; run frame sequences with 'ipvae run'")
    x = torch.from_numpy(loaded.x[:limit]).float()  # [N, M]
    if not torch.isfinite(x).all():
        raise IpvaeError(f"{data}: the inputs contain NaN or Inf")
    print(one_line(f"input: {loaded.description}", DESCRIPTION_LIMIT), file=sys.stderr)  # once the inputs are accepted
    metrics, curves, _ = run_inference(model, x, settings)
    report = {"data": data, "images": int(x.shape[0]), "t_test": settings.t_test, **metrics, "params": model.n_params}
    return EvalReport(metrics=report, curves=curves)


def format_table(metrics: dict) -> str:
    width = max(len(key) for key in metrics)
    lines = []
    for key, value in metrics.items():
        shown = f"{value:.4f}" if isinstance(value, float) else str(value)
        lines.append(f"{key:<{width}}  {shown}")
    return "\n".join(lines)
