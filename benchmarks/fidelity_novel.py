"""Where the 8-bit export loses R^2 on images the model never saw, and over long windows.

    .venv/bin/python benchmarks/fidelity_novel.py [RUN_DIR] [--n-images 100] [--steps 64 256 1000]
        [--sets mnist fashion_mnist rotated letters] [--attribution] [--out out/bench/fidelity_novel]

For each set: R^2 of Phi z_t of the float-u reference (run_float_reference, the model's clamp, the integer
sampler's uniforms: a paired comparison) and of the integer reference of the two export layouts (ipvae export
--layout): per-neuron (the default: per-neuron feed-forward exponents, the self-inhibition apart) and shared (one
exponent per matrix, format version 1's layout), at each check step t (mean over the steps t-7..t and over
images, to shrink the sampling noise). One T = max(steps) run gives every t (step t does not depend on T). With
--attribution, integer variants change one factor at a time from the high-precision limit (16-bit weights and
inputs, F = 20, G = 10): 8-bit ff or rec mantissas (at the exponents the shared layout chose), 8-bit inputs,
F = 12 (which also brings the leak's dead zone and the bias rounding), G = 5 (sampler bins). Sets: mnist (test
split), fashion_mnist (test; skipped without the package), rotated (MNIST test digits rotated by a uniform angle
in 0..180, seed 0), letters (the Hershey test fonts).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from pathlib import Path

import numpy as np

from ipvae.errors import DatasetUnavailable
from ipvae.export.fidelity import r2_per_image
from ipvae.export.pipeline import ExportSettings, build_integer_model
from ipvae.export.quantize import LAYOUT_SHARED, quantize, quantize_input, requantize_at, spec_for, synapse_targets
from ipvae.export.reference import run_float_reference, run_reference
from ipvae.export.source import load_source
from ipvae.export.spec import symmetric_max

DEFAULT_RUN = Path("pretrained/mnist_k512")
DEFAULT_SETS = ("mnist", "fashion_mnist", "rotated", "letters")
STEP_WINDOW = 8  # R^2 at t: the mean over steps t-7..t
BATCH = 50
HIGH_PRECISION = dict(weight_bits=16, input_bits=16, u_frac_bits=20, sampler_frac_bits=10)
LAVA_BITS = 8
MAX_ANGLE = 180.0


def novel_set(name: str, n_images: int) -> np.ndarray:
    """Images [N, 784] float64 of a named set (module docstring)."""
    import torch

    from ipvae.data import get_dataset, rotated_mnist
    from ipvae.data.glyphs import hershey_glyphs

    if name in ("mnist", "fashion_mnist"):
        x = get_dataset(name, "test", limit=n_images)[0]
    elif name == "rotated":
        angles = torch.from_numpy(np.random.default_rng(0).uniform(0.0, MAX_ANGLE, n_images))
        x = rotated_mnist(angles, "test", n_images)[0]
    elif name == "letters":
        glyphs = hershey_glyphs("test")[0].numpy()
        x = glyphs[np.sort(np.random.default_rng(0).permutation(len(glyphs))[:n_images])]
    else:
        raise ValueError(f"unknown set {name!r}; known: {', '.join(DEFAULT_SETS)}")
    return np.asarray(x, dtype=np.float64)


def r2_steps_integer(model, x: np.ndarray, n_steps: int) -> np.ndarray:
    """R^2 [T+1, N] of Phi z_t of the integer reference."""
    phi = model.decoder_phi.astype(np.float64)
    out = []
    for start in range(0, len(x), BATCH):
        batch = x[start:start + BATCH]
        payload = quantize_input(batch, model.input_scale, model.spec.input_bits)
        z = run_reference(model, payload, n_steps, image_offset=start, with_recon=False).z
        out.append(np.stack([r2_per_image(batch, z[t].astype(np.float64) @ phi.T) for t in range(n_steps + 1)]))
    return np.concatenate(out, axis=1)


def r2_steps_float(params, x: np.ndarray, n_steps: int, seed: int) -> np.ndarray:
    """R^2 [T+1, N] of Phi z_t of the float-u reference (the integer sampler's uniforms, the model's clamp)."""
    out = []
    for start in range(0, len(x), BATCH):
        batch = x[start:start + BATCH]
        z = run_float_reference(params, batch, n_steps, seed=seed, image_offset=start).z
        out.append(np.stack([r2_per_image(batch, z[t].astype(np.float64) @ params.phi.T) for t in range(n_steps + 1)]))
    return np.concatenate(out, axis=1)


def at_step(r2: np.ndarray, t: int) -> float:
    return float(r2[max(t - STEP_WINDOW + 1, 0):t + 1].mean())


def attribution_models(params, shared, n_steps: int) -> dict:
    """High-precision limit and one factor degraded at a time (at the shared layout's exponents)."""
    def high_precision(**overrides):
        fields = {**HIGH_PRECISION, **overrides}
        spec = spec_for(params, seed=shared.spec.seed, **fields)
        scale = shared.input_scale * symmetric_max(LAVA_BITS) / symmetric_max(fields["input_bits"])
        return quantize(params, spec, scale, n_steps, layout=LAYOUT_SHARED)

    hp = high_precision()
    ff_target, rec_target = synapse_targets(params, hp.spec, hp.input_scale)
    u_shift = hp.spec.u_frac_bits - shared.spec.u_frac_bits  # the shared exponents in the hp model's u-LSBs
    input_shift = math.log2(shared.input_scale / hp.input_scale)
    ff_8 = requantize_at(ff_target, LAVA_BITS, shared.ff.exponent + u_shift - int(round(input_shift)))
    rec_8 = requantize_at(rec_target, LAVA_BITS, shared.rec.exponent + u_shift)
    return {
        "high precision (16-bit w/x, F=20, G=10)": hp,
        f"  8-bit ff mantissas (e_ff {shared.ff.exponent})": dataclasses.replace(hp, ff=ff_8),
        f"  8-bit rec mantissas (e_rec {shared.rec.exponent})": dataclasses.replace(hp, rec=rec_8),
        "  8-bit inputs": high_precision(input_bits=LAVA_BITS),
        "  F = 12 (u LSB, leak dead zone, bias)": high_precision(u_frac_bits=shared.spec.u_frac_bits),
        "  G = 5 (sampler bins)": high_precision(sampler_frac_bits=shared.spec.sampler_frac_bits),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", nargs="?", type=Path, default=DEFAULT_RUN)
    parser.add_argument("--n-images", type=int, default=100)
    parser.add_argument("--steps", type=int, nargs="+", default=[64, 256, 1000])
    parser.add_argument("--sets", nargs="+", default=list(DEFAULT_SETS))
    parser.add_argument("--calibration-data", help="export calibration images (ipvae export --calibration-data)")
    parser.add_argument("--attribution", action="store_true", help="also the one-factor-at-a-time integer variants")
    parser.add_argument("--out", type=Path, default=Path("out/bench/fidelity_novel"))
    args = parser.parse_args(argv)
    if not (args.run_dir / "config.json").is_file():
        print(f"fidelity_novel: no run at {args.run_dir}", file=sys.stderr)
        return 2
    source = load_source(args.run_dir)
    n_steps = max(args.steps)
    shipped, _ = build_integer_model(source, ExportSettings(calibration_data=args.calibration_data))
    shared, _ = build_integer_model(source, ExportSettings(calibration_data=args.calibration_data, layout=LAYOUT_SHARED))
    models = {"8-bit export, per-neuron layout (default)": shipped, "8-bit export, shared layout": shared}
    if args.attribution:
        models.update(attribution_models(source.params, shared, n_steps))
    report = {"run_dir": str(args.run_dir), "n_images": args.n_images, "steps": args.steps, "window": STEP_WINDOW,
              "calibration_data": args.calibration_data, "sets": {}}
    for name in args.sets:
        try:
            x = novel_set(name, args.n_images)
        except DatasetUnavailable as error:
            print(f"{name}: skipped ({error})")
            continue
        float_r2 = r2_steps_float(source.params, x, n_steps, shipped.spec.seed)
        rows = {"float-u": {t: at_step(float_r2, t) for t in args.steps}}
        for label, model in models.items():
            r2 = r2_steps_integer(model, x, n_steps)
            rows[label] = {t: at_step(r2, t) for t in args.steps}
        report["sets"][name] = rows
        print(f"\n{name} ({len(x)} images): R^2 at t (and float-u minus it)")
        for label, values in rows.items():
            cells = "  ".join(f"t={t}: {values[t]:.4f} ({rows['float-u'][t] - values[t]:+.4f})" for t in args.steps)
            print(f"  {label:<56}{cells}", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "fidelity_novel.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out / 'fidelity_novel.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
