"""The lava-dl peers as slayer networks: a sigma-delta (SDNN) and a CUBA-LIF autoencoder 784-H-784.

Both are built from lava-dl's own blocks (``lava.lib.dl.slayer.block``) and written by the blocks' own
``export_hdf5`` under ``layer/<i>`` (the layout ``lava.lib.dl.netx.hdf5.Network`` reads):

- ``SigmaDeltaAutoencoder``: ``sigma_delta.Input`` (the delta encoder of the held image: 8-bit quantized
  pixels, a pixel is sent when its change reaches the input threshold), ``sigma_delta.Dense`` 784 -> H (ReLU,
  graded deltas above the delta threshold), ``sigma_delta.Output`` H -> 784 (a Sigma unit: accumulates the
  graded deltas it receives; that sum is the reconstruction). The network is linear in its output, like the
  iP-VAE's decoder Phi z.
- ``CubaAutoencoder``: ``cuba.Input`` (LIF units driven by the pixel value: a rate encoder), ``cuba.Dense``
  784 -> H and ``cuba.Dense`` H -> 784, binary spikes; the reconstruction is the output rate over the window
  (spikes / T).

Sizes: 784-256-784 has 2 x 784 x 256 = 401,408 weights (no biases), the iP-VAE K = 512 has 403,217 parameters.
Tensors are slayer's [N, C, T] (images, channels, timesteps).
"""

from __future__ import annotations

from dataclasses import dataclass

import h5py
import numpy as np
import torch

from ipvae.lava.peers.lava_dl import slayer

N_PIXELS = 784
MANTISSA_SCALE = 64  # slayer's neuron scale (w_scale, 1 << 6): thresholds and weights are stored in 1/64 units
INPUT_DELTA_THRESHOLD = 1.0 / MANTISSA_SCALE  # smallest non-zero threshold mantissa: every changed pixel is sent
SIGMA_DELTA = "sigma_delta"
CUBA = "cuba"


@dataclass(frozen=True)
class SigmaDeltaConfig:
    """A sigma-delta autoencoder: hidden size, the hidden delta threshold (float units; its mantissa
    round(threshold * 64) is what the export stores) and the L1 activity penalty on the hidden deltas."""

    hidden: int = 256
    threshold: float = 4.0 / MANTISSA_SCALE
    activity_l1: float = 0.0
    kind: str = SIGMA_DELTA

    @property
    def name(self) -> str:
        mantissa = round(self.threshold * MANTISSA_SCALE)
        penalty = f", L1 {self.activity_l1:g}" if self.activity_l1 else ""
        return f"lava-dl SDNN 784-{self.hidden}-784, delta threshold {mantissa}/64{penalty}"


@dataclass(frozen=True)
class CubaConfig:
    """A CUBA-LIF autoencoder: hidden size, window T (timesteps the image is held) and the LIF parameters
    (slayer's float units; decays as fractions per step)."""

    hidden: int = 256
    steps: int = 16
    threshold: float = 0.5
    current_decay: float = 1.0  # the current is this step's synaptic input alone (netx's LIF and slayer agree
    # bit for bit here; with slower current decays they differed in 40-60 % of the hidden spikes, lava-dl 0.6.0)
    voltage_decay: float = 0.03
    input_threshold: float = 0.5  # the encoder's LIF threshold
    tau_grad: float = 0.03  # slayer's surrogate gradient: width and height of the spike function's derivative
    scale_grad: float = 3.0
    kind: str = CUBA

    @property
    def name(self) -> str:
        return f"lava-dl CUBA-LIF 784-{self.hidden}-784, T = {self.steps}"


def _sigma_delta_params(threshold: float) -> dict:
    return {"threshold": threshold, "activation": torch.nn.functional.relu, "tau_grad": 1.0, "scale_grad": 1.0,
            "requires_grad": False}


def _cuba_params(threshold: float, config: CubaConfig) -> dict:
    return {"threshold": threshold, "current_decay": config.current_decay, "voltage_decay": config.voltage_decay,
            "tau_grad": config.tau_grad, "scale_grad": config.scale_grad, "requires_grad": False}


class SigmaDeltaAutoencoder(torch.nn.Module):
    """Input (delta encoder) -> Dense 784 -> H (ReLU sigma-delta) -> Output H -> 784 (sigma)."""

    def __init__(self, config: SigmaDeltaConfig) -> None:
        super().__init__()
        self.config = config
        self.blocks = torch.nn.ModuleList([
            slayer.block.sigma_delta.Input(_sigma_delta_params(INPUT_DELTA_THRESHOLD)),
            slayer.block.sigma_delta.Dense(_sigma_delta_params(config.threshold), N_PIXELS, config.hidden,
                                           weight_scale=1, weight_norm=False),
            slayer.block.sigma_delta.Output(_sigma_delta_params(config.threshold), config.hidden, N_PIXELS),
        ])

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """images [N, M, T] (the image held for T steps) -> (input deltas [N, M, T], hidden deltas [N, H, T],
        output sigma [N, M, T]: the running sum, the reconstruction at every step)."""
        sent = self.blocks[0](images)
        hidden = self.blocks[1](sent)
        return sent, hidden, self.blocks[2](hidden)


class CubaAutoencoder(torch.nn.Module):
    """Input (LIF rate encoder) -> Dense 784 -> H (CUBA-LIF) -> Dense H -> 784 (CUBA-LIF); binary spikes."""

    def __init__(self, config: CubaConfig) -> None:
        super().__init__()
        self.config = config
        self.blocks = torch.nn.ModuleList([
            slayer.block.cuba.Input(_cuba_params(config.input_threshold, config)),
            slayer.block.cuba.Dense(_cuba_params(config.threshold, config), N_PIXELS, config.hidden,
                                    weight_scale=1, weight_norm=False),
            slayer.block.cuba.Dense(_cuba_params(config.threshold, config), config.hidden, N_PIXELS,
                                    weight_scale=1, weight_norm=False),
        ])

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """images [N, M, T] -> (input spikes [N, M, T], hidden spikes [N, H, T], output spikes [N, M, T])."""
        sent = self.blocks[0](images)
        hidden = self.blocks[1](sent)
        return sent, hidden, self.blocks[2](hidden)


def build(config: SigmaDeltaConfig | CubaConfig) -> torch.nn.Module:
    return SigmaDeltaAutoencoder(config) if config.kind == SIGMA_DELTA else CubaAutoencoder(config)


def window_steps(config: SigmaDeltaConfig | CubaConfig, sigma_delta_steps: int) -> int:
    """Timesteps one image is held: the CUBA net's T; for the SDNN the caller's window (its state settles
    within the pipeline's depth, so a short window suffices on a still image)."""
    return sigma_delta_steps if config.kind == SIGMA_DELTA else config.steps


def held(images: torch.Tensor, n_steps: int) -> torch.Tensor:
    """[N, M] -> [N, M, T]: the image held for T timesteps."""
    return images[:, :, None].expand(-1, -1, n_steps).contiguous()


def reconstruction(config: SigmaDeltaConfig | CubaConfig, output: torch.Tensor) -> torch.Tensor:
    """How lava-dl reads each output, [N, M, T] -> [N, M]: the sigma's value at the last step (SDNN), the
    spike rate over the window (CUBA)."""
    if config.kind == SIGMA_DELTA:
        return output[..., -1]
    return output.sum(dim=-1) / output.shape[-1]


def with_threshold(model: SigmaDeltaAutoencoder, threshold: float) -> SigmaDeltaAutoencoder:
    """The same weights with another hidden delta threshold (the threshold sweep, no retraining)."""
    config = SigmaDeltaConfig(model.config.hidden, threshold, model.config.activity_l1)
    other = SigmaDeltaAutoencoder(config)
    for mine, theirs in zip(other.blocks[1:], model.blocks[1:]):
        mine.synapse.weight.data.copy_(theirs.synapse.weight.data)
    with torch.no_grad():
        other(held(torch.zeros(1, N_PIXELS), 1))  # slayer learns each block's shape on its first forward pass
    return other.eval()


def export_hdf5(model: torch.nn.Module, path) -> None:
    """Each block writes itself with its own ``export_hdf5`` under ``layer/<i>`` (the netx layout); the file is
    written to a temporary name and renamed (ipvae.fileio's rule for every output)."""
    from ipvae.fileio import atomic_path

    with atomic_path(path) as temporary:
        with h5py.File(temporary, "w") as handle:
            layers = handle.create_group("layer")
            for index, block in enumerate(model.blocks):
                block.export_hdf5(layers.create_group(str(index)))


def n_weights(model: torch.nn.Module) -> int:
    return int(sum(block.synapse.weight.numel() for block in model.blocks[1:]))


def quantized_weights(model: torch.nn.Module) -> list[np.ndarray]:
    """The 8-bit weights the export writes (mantissas in 1/64 units), [out, in] per Dense block."""
    return [block.synapse.pre_hook_fx(block.synapse.weight, descale=True).reshape(block.synapse.weight.shape[:2])
            .detach().numpy() for block in model.blocks[1:]]
