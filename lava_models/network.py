"""Build the iP-VAE process graph: FrameSource -> PoissonDenseBlock (ff Dense, rec Dense, PoissonNeuron) -> StateTap.

``build_fixed_network`` takes the integer model of an export file (``ipvae.export.hdf5.read_model(path).model``)
and builds the bit-accurate graph of docs/fixed_point.md; ``build_float_network`` takes the float
parameters (``ipvae.export.integer_model.FloatParams``) and builds the same graph with float arithmetic.
Neither starts Lava: ``ipvae.lava.runner.LavaSimulation`` compiles and runs the graph.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ipvae.export.events import EventOptions
from ipvae.export.integer_model import FloatParams, IntegerModel
from ipvae.export.quantize import quantize_input
from ipvae.errors import IpvaeError

DEFAULT_BATCH = 8  # images side by side in one population (one Lava timestep advances all of them)
FIXED_PT = "fixed_pt"
FLOATING_PT = "floating_pt"
MODES = (FIXED_PT, FLOATING_PT)
FLOAT_MESSAGE_BITS = 24  # payload width the float graph's neuron declares (its models ignore it)
DEFAULT_FLOAT_SAMPLER_BITS = (12, 5)  # (F, G): unused by the float model, recorded for completeness


class NetworkBuildError(IpvaeError):
    """A model that cannot be mapped to the Lava graph (e.g. mantissas wider than Lava's 8-bit synapse)."""


@dataclass(frozen=True, eq=False)
class LavaNetwork:
    """A built (not yet compiled) process graph and what the host needs to drive it.

    encode: host-side float pixels [..., M] -> the payloads the FrameSource encodes (int32 for
    fixed_pt: ipvae.export.quantize.quantize_input; float64 for floating_pt).
    decoder_phi: float32 [M, K], recon_t = Phi z_t (computed on the host: the readout is not in the graph).
    batch: images side by side; options: the event-driven options (sigma-delta threshold, stopping rule).
    """

    mode: str
    n_steps: int
    n_inputs: int
    n_latents: int
    max_spike_count: int
    image_offset: int
    batch: int
    options: EventOptions
    source: object  # ipvae.lava.proc.io.process.FrameSource
    block: object  # ipvae.lava.proc.block.process.PoissonDenseBlock
    tap: object  # ipvae.lava.proc.io.process.StateTap
    encode: Callable[[np.ndarray], np.ndarray]
    decoder_phi: np.ndarray

    @property
    def window(self) -> int:
        """Lava timesteps per image: T + 1."""
        return self.n_steps + 1


def _check_steps(n_steps: int) -> int:
    if isinstance(n_steps, bool) or int(n_steps) != n_steps or n_steps < 1:
        raise IpvaeError(f"the number of steps must be a positive integer, got {n_steps}")
    return int(n_steps)


def _check_offset(image_offset: int) -> int:
    if int(image_offset) < 0:
        raise IpvaeError(f"image_offset must be non-negative, got {image_offset}")
    return int(image_offset)


def check_batch(batch: int) -> int:
    if isinstance(batch, bool) or int(batch) != batch or batch < 1:
        raise IpvaeError(f"the batch (images side by side) must be a positive integer, got {batch}")
    return int(batch)


def _wire(mode: str, n_steps: int, image_offset: int, batch: int, options: EventOptions, synapse: dict,
          synapse_rec: dict, neuron: dict, encode: Callable, decoder_phi: np.ndarray, threshold) -> LavaNetwork:
    """Create the Processes and connect source -> block -> tap."""
    from ipvae.lava.proc.block.process import PoissonDenseBlock
    from ipvae.lava.proc.io.process import FrameSource, StateTap

    n_latents, n_inputs = synapse["weights"].shape
    stop = dict(stop_window=options.stop_window, stop_tolerance=options.stop_tolerance)
    block = PoissonDenseBlock(synapse=dict(synapse, batch=batch), synapse_rec=dict(synapse_rec, batch=batch),
                              neuron=dict(neuron, shape=(batch, n_latents), **stop))
    source = FrameSource(shape=(batch, n_inputs), n_steps=n_steps, threshold=threshold)
    tap = StateTap(shape=(batch, n_latents), n_steps=n_steps)
    source.s_out.connect(block.inp)
    block.out.connect(tap.s_in)
    block.u_out.connect(tap.u_in)
    return LavaNetwork(
        mode=mode,
        n_steps=n_steps,
        n_inputs=n_inputs,
        n_latents=n_latents,
        max_spike_count=neuron["max_spike_count"],
        image_offset=image_offset,
        batch=batch,
        options=options,
        source=source,
        block=block,
        tap=tap,
        encode=encode,
        decoder_phi=np.asarray(decoder_phi, dtype=np.float32),
    )


def build_fixed_network(model: IntegerModel, n_steps: int | None = None, *, image_offset: int = 0,
                        batch: int = DEFAULT_BATCH, options: EventOptions = EventOptions()) -> LavaNetwork:
    """The bit-accurate graph of an integer model (docs/fixed_point.md, sections 6 and 11)."""
    spec = model.spec
    n_steps = _check_steps(model.n_steps if n_steps is None else n_steps)
    image_offset = _check_offset(image_offset)
    batch = check_batch(batch)
    if not spec.lava_compatible:
        raise NetworkBuildError(
            f"{spec.weight_bits}-bit weight mantissas do not fit Lava's 8-bit Dense synapse "
            "(this export is for the integer reference only; re-export with --weight-bits 8 or fewer)"
        )
    synapse = dict(weights=model.ff.mantissa.astype(np.int32), exponent=0)  # row sums: e_ff applies in the neuron
    synapse_rec = dict(weights=model.rec.mantissa.astype(np.int32), exponent=model.rec.exponent)
    neuron = dict(
        u_prior=model.u_prior.astype(np.int32),
        bias=model.bias.astype(np.int32),
        u_min=int(spec.u_min_int),
        u_max=int(spec.u_max_int),
        n_steps=n_steps,
        max_spike_count=int(spec.max_spike_count),
        seed=int(spec.seed),
        image_offset=image_offset,
        cdf=model.cdf,
        u_frac_bits=int(spec.u_frac_bits),
        sampler_frac_bits=int(spec.sampler_frac_bits),
        num_message_bits=int(spec.spike_message_bits),
        ff_exponent=model.ff.row_exponents,  # [K]: applied to each neuron's drive register
        leak_shift=int(model.leak_shift),
        neuron=model.neuron,
    )
    if model.self_inhibition is not None:  # the lateral diagonal held apart: each neuron's own last count
        neuron.update(self_weight=model.self_inhibition.mantissa.astype(np.int64),
                      self_exponent=int(model.self_inhibition.exponent))
    input_scale, input_bits = model.input_scale, spec.input_bits

    def encode(x: np.ndarray) -> np.ndarray:
        return quantize_input(x, input_scale, input_bits)  # int32 payloads

    return _wire(FIXED_PT, n_steps, image_offset, batch, options, synapse, synapse_rec, neuron, encode,
                 model.decoder_phi, options.input_threshold)


def build_float_network(params: FloatParams, n_steps: int, *, seed: int, image_offset: int = 0,
                        batch: int = DEFAULT_BATCH, options: EventOptions = EventOptions()) -> LavaNetwork:
    """The float graph: synapses A = lr Phi^T D and -L = -lr Phi^T D Phi, bias -lr b, the leak of the float model
    (docs/fixed_point.md, section 1).

    options.input_threshold is in the float input's units here (pixels)."""
    n_steps = _check_steps(n_steps)
    image_offset = _check_offset(image_offset)
    batch = check_batch(batch)
    arrays = (params.phi, params.precision, params.bias, params.u_prior)
    if not all(np.all(np.isfinite(array)) for array in arrays) or not np.isfinite(params.step_size):
        raise NetworkBuildError("the float parameters contain NaN or Inf")
    if not 0.0 <= params.leak < 1.0:
        raise NetworkBuildError(f"the leak must be in [0, 1), got {params.leak}")
    frac_bits, sampler_bits = DEFAULT_FLOAT_SAMPLER_BITS
    synapse = dict(weights=params.feedforward())  # [K, M]
    synapse_rec = dict(weights=-params.lateral())  # [K, K]
    neuron = dict(
        u_prior=params.u_prior.astype(np.float64),
        bias=-params.drive(),
        u_min=float(params.u_min),
        u_max=float(params.u_max),
        hard_upper_clamp=bool(params.hard_upper_clamp),
        leak=float(params.leak),
        neuron=params.neuron,
        n_steps=n_steps,
        max_spike_count=int(params.max_spike_count),
        seed=int(seed),
        image_offset=image_offset,
        cdf=None,
        u_frac_bits=frac_bits,
        sampler_frac_bits=sampler_bits,
        num_message_bits=FLOAT_MESSAGE_BITS,
    )

    def encode(x: np.ndarray) -> np.ndarray:
        return np.asarray(x, dtype=np.float64)

    return _wire(FLOATING_PT, n_steps, image_offset, batch, options, synapse, synapse_rec, neuron, encode,
                 params.phi, options.input_threshold)
