"""Run directory -> integer model -> HDF5 file (what `ipvae export` does)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ipvae.export.hdf5 import ExportMetadata, write_model
from ipvae.export.integer_model import IntegerModel
from ipvae.export.calibration import calibration_probes, choose_exponents_by_reconstruction, load_calibration_data
from ipvae.export.quantize import (
    EXPONENT_RULE_MAX_ABS,
    EXPONENT_RULE_PER_NEURON,
    EXPONENT_RULE_RECONSTRUCTION,
    LAYOUT_PER_NEURON,
    LAYOUT_SHARED,
    LAYOUTS,
    calibrate_input_scale,
    leak_shift_for,
    quantize,
    spec_for,
)
from ipvae.export.source import SourceRun, load_images, load_source
from ipvae.export.spec import symmetric_max
from ipvae.errors import IpvaeError

CALIBRATION_SPLIT = "train"
DEFAULT_CALIBRATION_IMAGES = 1000


@dataclass(frozen=True)
class ExportSettings:
    """Quantization settings; input_max, when set, replaces the calibration batch (s_x = input_max / qmax).

    layout: "per-neuron" (per-neuron feed-forward exponents, the self-inhibition apart; format version 2's
    layout, the default) or "shared" (one exponent per matrix, searched on the calibration images)."""

    weight_bits: int = 8
    input_bits: int = 8
    u_frac_bits: int = 12
    sampler_frac_bits: int = 5
    decoder_bits: int = 8
    seed: int = 0
    calibration_images: int = DEFAULT_CALIBRATION_IMAGES
    calibration_data: str | None = None  # a data set name or the user's files (default: the run's training set)
    input_max: float | None = None
    n_steps: int | None = None
    layout: str = LAYOUT_PER_NEURON


def build_integer_model(source: SourceRun, settings: ExportSettings) -> tuple[IntegerModel, ExportMetadata]:
    """Quantize a loaded run; returns the model and its provenance (not yet written)."""
    leak_shift_for(source.params.leak)  # refuse an unexportable leak before the calibration runs
    if settings.layout not in LAYOUTS:
        raise IpvaeError(f"unknown layout {settings.layout!r}; expected one of {', '.join(LAYOUTS)}")
    searched = settings.layout == LAYOUT_SHARED  # the shared layout's exponents are searched on calibration images
    spec = spec_for(
        source.params,
        weight_bits=settings.weight_bits,
        input_bits=settings.input_bits,
        u_frac_bits=settings.u_frac_bits,
        sampler_frac_bits=settings.sampler_frac_bits,
        decoder_bits=settings.decoder_bits,
        seed=settings.seed,
    )
    if settings.input_max is not None:
        if not settings.input_max > 0:
            raise IpvaeError(f"--input-max must be positive, got {settings.input_max}")
        input_max = float(settings.input_max)
        input_scale = input_max / symmetric_max(spec.input_bits)
        calibration, n_images = "fixed --input-max", 0
        probes = None
    else:
        if settings.calibration_images < 1:
            raise IpvaeError(f"--calibration must be at least 1 image, got {settings.calibration_images}")
        if settings.calibration_data is not None:
            chosen = load_calibration_data(settings.calibration_data, source.params.n_inputs, settings.calibration_images)
            images = chosen.x  # [N, M]
        else:
            images = load_images(
                source.data, CALIBRATION_SPLIT, settings.calibration_images, data_dir=source.data_dir,
                seed=source.data_seed, train=source.train,
            )  # [N, M]
        if images.shape[1] != source.params.n_inputs:
            raise IpvaeError(f"calibration images have {images.shape[1]} pixels, the model {source.params.n_inputs}")
        input_scale = calibrate_input_scale(images, spec.input_bits)
        input_max = input_scale * symmetric_max(spec.input_bits)
        calibration, n_images = f"{source.data}:{CALIBRATION_SPLIT}[:{settings.calibration_images}]", len(images)
        if settings.calibration_data is not None:
            calibration = chosen.description
    n_steps = settings.n_steps if settings.n_steps is not None else source.n_steps
    if settings.input_max is None and searched:
        probes = calibration_probes(source.params, images, input_scale, spec.input_bits, n_steps, seed=spec.seed)
    else:
        probes = None
    model = quantize(
        source.params, spec, input_scale, n_steps, layout=settings.layout,
        ff_probes=None if probes is None else probes.ff,
        rec_probes=None if probes is None else probes.rec,
    )
    if probes is not None:
        model = choose_exponents_by_reconstruction(model, source.params, images, n_steps).model
        rule = EXPONENT_RULE_RECONSTRUCTION
    else:
        rule = EXPONENT_RULE_PER_NEURON if settings.layout == LAYOUT_PER_NEURON else EXPONENT_RULE_MAX_ABS
    metadata = ExportMetadata(
        source=str(source.run_dir),
        source_checkpoint_sha256=source.checkpoint_sha256,
        calibration=calibration,
        calibration_images=n_images,
        input_max=input_max,
        float_step_size=source.params.step_size,
        exponent_rule=rule,
    )
    return model, metadata


def export_run(run_dir: str | Path, output: str | Path, settings: ExportSettings) -> tuple[IntegerModel, ExportMetadata]:
    """Load, quantize and write atomically; returns the model and the metadata as stored."""
    import dataclasses
    import json

    from ipvae.data import saved_preparation

    source = load_source(run_dir)
    model, metadata = build_integer_model(source, settings)
    preparation = saved_preparation(run_dir, source.train)  # how new images are prepared: travels with the file
    if preparation is not None and preparation.n_inputs == model.n_inputs:
        metadata = dataclasses.replace(metadata, input_preparation=json.dumps(preparation.to_dict()))
    return model, write_model(output, model, metadata)
