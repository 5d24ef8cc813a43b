"""A peer's export loaded by lava-dl's ``netx.hdf5.Network`` and run on the Lava CPU simulator (fixed_pt).

The way lava-dl's PilotNet SDNN tutorial runs (and ``docs/energy.md`` describes): the input layer is the
encoder, computed on the host by the exported slayer Input block itself (the delta encoder of the SDNN, the LIF
rate encoder of the CUBA net); ``netx.hdf5.Network(file, skip_layers=1, ...)`` builds the Dense blocks from the
file; a ``lava.proc.io.source.RingBuffer`` sends the encoder's messages into the network and ``RingBuffer`` sinks
record the hidden block's output (to count its events) and the output block's.

Many images run through one compiled graph, each held for a window of W timesteps, and every layer's state is
cleared at the end of each window so that every image starts from rest:
- CUBA: netx's own reset (``reset_interval=W``; LIFReset neurons), each layer one step after the one before it,
  as the synaptic delay of each Dense block (modelled by slayer's ``delay_shift``) shifts its window by a step;
- SDNN: netx ignores reset for sigma-delta neurons, so ``lava.proc.io.reset.Reset`` processes (lava's own, the
  kind lava-dl's tests attach to a layer's state) clear each neuron's state Vars at the window's last step.

Payload units (lava-dl's fixed point): the SDNN input block sends graded deltas with 6 fractional bits shifted
up by ``spike_exp`` = 6 more (a delta of 1.0 is 2^12); the output sigma holds 2^18 per unit (the tutorial's
decoder divides by 1 << 18). CUBA spikes are binary.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ipvae.lava.peers.lava_dl import netx
from ipvae.lava.peers.nets import MANTISSA_SCALE, SIGMA_DELTA, held

SPIKE_EXP = 6  # netx's default graded-spike exponent
SIGMA_DELTA_INPUT_MESSAGE_BITS = 24  # graded input deltas: 24-bit messages
SIGMA_OUTPUT_SCALE = float(1 << 18)  # output sigma units per 1.0 (weights x 2^6, payloads x 2^12)
BINARY_INPUT_MESSAGE_BITS = 0
SIGMA_DELTA_STATE_VARS = ("sigma", "act", "residue")
CHUNK_IMAGES = 250  # images per compiled run: bounds the sinks' [units, steps] buffers


@dataclass(frozen=True, eq=False)
class LavaRun:
    """What the Lava graph sent, per image and step: input messages [N, M, W] (payload integers), hidden
    messages [N, H, W], output sink [N, M, W] (SDNN: the sigma, decoded to float; CUBA: spikes); the Dense
    blocks' integer weights as Lava holds them [out, in]; the netx class used."""

    inputs: np.ndarray
    hidden: np.ndarray
    output: np.ndarray
    weights: tuple[np.ndarray, ...]
    loaded_with: str


def lava_reconstruction(kind: str, output: np.ndarray) -> np.ndarray:
    """The reconstruction [N, M] read from the output sink [N, M, W] the way lava-dl intends: the sigma at the
    window's last step (SDNN); the spike rate over the window (CUBA), whose first step holds the previous image's
    last spikes (the output block's window lags the hidden one by the synaptic delay; slayer's output never
    spikes at step 0), so it is left out."""
    if kind == SIGMA_DELTA:
        return output[..., -1]
    return output[..., 1:].sum(axis=-1) / output.shape[-1]


def encode(model: torch.nn.Module, images: np.ndarray, n_steps: int) -> np.ndarray:
    """The input block's messages on the host, [N, M, T]: slayer's own Input block (the exported layer/0)
    applied to each image held for T steps; graded deltas as Lava payload integers, or binary spikes (those of
    the last step dropped: they could only act after the window)."""
    with torch.no_grad():
        sent = model.blocks[0](held(torch.as_tensor(images, dtype=torch.float32), n_steps)).numpy()  # [N, M, T]
    if model.config.kind == SIGMA_DELTA:
        return np.round(sent * MANTISSA_SCALE).astype(np.int64) << SPIKE_EXP
    spikes = sent.astype(np.int64)
    spikes[..., -1] = 0  # the window's last input spikes would reach the hidden block after the window (synaptic
    # delay): slayer never sees them, and on Lava they would spill into the next image's window
    return spikes


def run_on_lava(path: str | Path, model: torch.nn.Module, images: np.ndarray, n_steps: int) -> LavaRun:
    """Run images [N, M] through the export at ``path`` (written from ``model``), each held for n_steps."""
    messages = encode(model, images, n_steps)  # [N, M, W]
    parts = [_run_chunk(path, model.config.kind, messages[first : first + CHUNK_IMAGES], n_steps)
             for first in range(0, len(images), CHUNK_IMAGES)]
    return LavaRun(
        inputs=messages,
        hidden=np.concatenate([part[0] for part in parts]),
        output=np.concatenate([part[1] for part in parts]),
        weights=parts[0][2],
        loaded_with=f"{netx.hdf5.Network.__module__}.{netx.hdf5.Network.__name__}",
    )


def _run_chunk(path, kind: str, messages: np.ndarray, n_steps: int):
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc import io

    n_images, n_inputs, _ = messages.shape
    total = n_images * n_steps
    if kind == SIGMA_DELTA:
        network = netx.hdf5.Network(net_config=str(path), skip_layers=1,
                                    input_message_bits=SIGMA_DELTA_INPUT_MESSAGE_BITS)
        resets = [_window_reset(getattr(layer.neuron, name), n_steps)
                  for layer in network.layers for name in SIGMA_DELTA_STATE_VARS if hasattr(layer.neuron, name)]
    else:
        network = netx.hdf5.Network(net_config=str(path), skip_layers=1, input_message_bits=BINARY_INPUT_MESSAGE_BITS,
                                    reset_interval=n_steps)
        resets = []
    hidden_layer, output_layer = network.layers
    source = io.source.RingBuffer(data=messages.transpose(1, 0, 2).reshape(n_inputs, total))  # [M, N * W]
    hidden_sink = io.sink.RingBuffer(shape=hidden_layer.out.shape, buffer=total)
    output_sink = io.sink.RingBuffer(shape=network.out.shape, buffer=total)
    source.s_out.connect(network.inp)
    hidden_layer.out.connect(hidden_sink.a_in)
    network.out.connect(output_sink.a_in)
    try:
        network.run(condition=RunSteps(num_steps=total), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
        hidden = hidden_sink.data.get()  # [H, N * W]
        output = output_sink.data.get()  # [M, N * W]
        weights = tuple(np.asarray(layer.synapse.weights.get()) for layer in network.layers)
    finally:
        network.stop()
    del resets
    hidden = hidden.reshape(hidden.shape[0], n_images, n_steps).transpose(1, 0, 2)  # [N, H, W]
    output = output.reshape(output.shape[0], n_images, n_steps).transpose(1, 0, 2)  # [N, M, W]
    if kind == SIGMA_DELTA:
        output = _as_signed_24(output) / SIGMA_OUTPUT_SCALE
    return hidden, output, weights


def _window_reset(var, n_steps: int):
    """A lava Reset process that clears ``var`` after the last step of every window of n_steps."""
    from lava.proc import io

    reset = io.reset.Reset(interval=n_steps, offset=n_steps - 1)
    reset.connect_var(var)
    return reset


def _as_signed_24(values: np.ndarray) -> np.ndarray:
    """A sink's record of a 24-bit state as a signed integer (the tutorial's fixed-point decoder)."""
    return (values.astype(np.int64) << 40) >> 40
