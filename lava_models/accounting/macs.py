"""Multiply-accumulates and weights of a PyTorch network, layer by layer, counted with forward hooks.

Any ``torch.nn.Module`` (the paper's conv P-VAE in ``ipvae.lava.accounting.pvae_architecture``, or a trained baseline
module) gives its dense MAC count for one input: ``count_macs(module, (1, 1, 28, 28))``. Counted layers:
``nn.Linear`` (in x out MACs per leading position) and ``nn.Conv1d/2d/3d`` (output elements x in/groups x
kernel volume). Element-wise work (activations, norms, pooling, squeeze-excitation gating, additions, and the
iP-VAE's leak toward the prior potential) is not counted: it is small beside the weight layers and
conventional-hardware MAC counts leave it out too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BYTES_FP32 = 4
BYTES_INT8 = 1


@dataclass(frozen=True)
class LayerMacs:
    """One weight layer's dense work for one forward pass: MACs, weights (bias excluded) and biases."""

    name: str
    kind: str
    macs: int
    weights: int
    biases: int


@dataclass(frozen=True)
class MacReport:
    """Per-layer MACs of one forward pass (batch 1) and the totals."""

    layers: tuple[LayerMacs, ...]

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    @property
    def weights(self) -> int:
        return sum(layer.weights for layer in self.layers)

    def weight_bytes(self, bytes_per_weight: int) -> np.ndarray:
        """Bytes of each layer's weight set at a given width, [n_layers]."""
        return np.array([layer.weights * bytes_per_weight for layer in self.layers], dtype=np.int64)

    def as_dict(self) -> dict:
        return {
            "macs": self.macs,
            "weights": self.weights,
            "layers": [{"name": l.name, "kind": l.kind, "macs": l.macs, "weights": l.weights} for l in self.layers],
        }


def _layer_macs(module, output) -> int:
    import torch.nn as nn

    if isinstance(module, nn.Linear):
        positions = output.numel() // module.out_features  # leading dims (batch 1 => 1 for a vector)
        return positions * module.in_features * module.out_features
    kernel_volume = int(np.prod(module.kernel_size))
    return output.numel() * (module.in_channels // module.groups) * kernel_volume


def count_macs(module, input_shape: tuple[int, ...], forward=None) -> MacReport:
    """Dense MACs of ``module`` on one zero input of ``input_shape`` (include the batch dimension, 1).

    ``forward`` (default: the module itself) is what is called on the input, e.g. ``model.encode`` to
    count an encoder only. A layer called several times is counted at every call (a weight reused is
    still a MAC each time); layers never called are not counted.
    """
    import torch
    import torch.nn as nn

    counted = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
    names = {child: name for name, child in module.named_modules()}
    rows: list[LayerMacs] = []

    def hook(layer, _inputs, output):
        bias = 0 if layer.bias is None else layer.bias.numel()
        rows.append(LayerMacs(names[layer], type(layer).__name__, _layer_macs(layer, output), layer.weight.numel(), bias))

    handles = [child.register_forward_hook(hook) for child in module.modules() if isinstance(child, counted)]
    try:
        with torch.no_grad():
            (module if forward is None else forward)(torch.zeros(input_shape))
    finally:
        for handle in handles:
            handle.remove()
    return MacReport(tuple(rows))
