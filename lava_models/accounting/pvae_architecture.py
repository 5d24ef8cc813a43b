"""The amortized conv P-VAE the iP-VAE paper compares against, rebuilt layer by layer to count its MACs.

Not a trainable baseline (those are ipvae.train.baselines): an untrained ``nn.Module`` with the same weight layers,
shapes and strides as the authors' MNIST configuration, so ``ipvae.lava.accounting.macs.count_macs`` can price one
forward pass by the MACs it really performs instead of one MAC per parameter.

Reconstruction (read from the authors' public PoissonVAE code: its MNIST logs name ``conv`` encoder and
decoder, 32 base channels, squeeze-excitation, no batch norm, swish; the layer recipe below is our own
description of it). Checked against the paper: the parameter count of this network is the published
6.79 M (tests/sim_tests/test_pricing.py). Weight normalisation and activations carry no MACs.

Encoder, 1 x 28 x 28 -> 512 log-rates:
  stem 3x3 conv 1 -> C (valid, 26 x 26); a residual cell at C; then three stages, each a down cell
  (3x3 stride-2 conv C -> 2C, 3x3 conv 2C -> 2C, 1x1 stride-2 skip conv) and a residual cell at 2C
  (two 3x3 convs); spatial 26 -> 13 -> 7 -> 4, channels 32 -> 64 -> 128 -> 256; a 4x4 valid conv
  (256 -> 256, to 1 x 1) added to the average pool; a residual MLP (256 -> 2048 -> 256); a linear
  256 -> K. Every cell ends with squeeze-excitation (C -> max(C/16, 4) -> C).
Decoder, K -> 1 x 28 x 28: linear K -> 256 x 2 x 2; a residual cell at 256 (one 3x3 conv); four
  stages, each an up cell (nearest x2, 3x3 conv C -> C/2; skip: nearest x2, 1x1 conv C -> C/2) and a
  residual cell at C/2 (one 3x3 conv); 2 -> 4 -> 8 -> 16 (resized to 14) -> 28; 1x1 conv 16 -> 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

CHANNEL_MULTIPLIER = 2
SE_REDUCTION = 16
SE_MIN_HIDDEN = 4
MLP_EXPANSION = 8
MNIST_SIDE = 28
DECODER_SEED_SIDE = 2
DECODER_RESIZE_AFTER_STAGE = 2  # the decoder resizes 16 x 16 to 14 x 14 after its third up stage
DECODER_RESIZE_SIDE = 14


@dataclass(frozen=True)
class ConvPvaeConfig:
    """Sizes of the paper's MNIST conv P-VAE."""

    n_latents: int = 512
    base_channels: int = 32
    encoder_stages: int = 3
    decoder_stages: int = 4
    encoder_convs_per_cell: int = 2
    decoder_convs_per_cell: int = 1


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        hidden = max(channels // SE_REDUCTION, SE_MIN_HIDDEN)
        self.squeeze = nn.Linear(channels, hidden)
        self.excite = nn.Linear(hidden, channels)

    def forward(self, x):  # x [B, C, H, W]
        gate = torch.sigmoid(self.excite(F.relu(self.squeeze(x.mean(dim=(2, 3))))))  # [B, C]
        return x * gate[:, :, None, None]


class Cell(nn.Module):
    """Residual cell: skip(x) + SE(convs(x)); stride 2 halves the side, ``upsample`` doubles it first."""

    def __init__(self, c_in: int, c_out: int, n_convs: int, *, stride: int = 1, upsample: bool = False):
        super().__init__()
        self.upsample = upsample
        convs = [nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1)]
        convs += [nn.Conv2d(c_out, c_out, 3, padding=1) for _ in range(n_convs - 1)]
        self.convs = nn.ModuleList(convs)
        self.skip = nn.Identity() if c_in == c_out and stride == 1 else nn.Conv2d(c_in, c_out, 1, stride=stride)
        self.se = SqueezeExcite(c_out)

    def forward(self, x):  # x [B, C_in, H, W]
        if self.upsample:
            x = F.interpolate(x, scale_factor=CHANNEL_MULTIPLIER, mode="nearest")
        h = x
        for conv in self.convs:
            h = conv(F.silu(h))
        return self.skip(x) + self.se(h)  # [B, C_out, H', W']


class ConvPvae(nn.Module):
    """Encoder and decoder of the conv P-VAE; ``forward`` encodes and decodes one batch (MAC counting)."""

    def __init__(self, config: ConvPvaeConfig = ConvPvaeConfig()):
        super().__init__()
        channels = config.base_channels
        self.stem = nn.Conv2d(1, channels, 3)
        encoder = [Cell(channels, channels, config.encoder_convs_per_cell)]
        for _ in range(config.encoder_stages):
            wider = channels * CHANNEL_MULTIPLIER
            encoder += [Cell(channels, wider, config.encoder_convs_per_cell, stride=2),
                        Cell(wider, wider, config.encoder_convs_per_cell)]
            channels = wider
        self.encoder_cells = nn.Sequential(*encoder)
        self.pool_conv = nn.Conv2d(channels, channels, 4)
        self.mlp_in = nn.Linear(channels, channels * MLP_EXPANSION)
        self.mlp_out = nn.Linear(channels * MLP_EXPANSION, channels)
        self.mlp_norm = nn.LayerNorm(channels)
        self.to_latents = nn.Linear(channels, config.n_latents)

        self.decoder_channels = channels
        self.from_latents = nn.Linear(config.n_latents, channels * DECODER_SEED_SIDE**2)
        decoder = [Cell(channels, channels, config.decoder_convs_per_cell)]
        for stage in range(config.decoder_stages):
            narrower = channels // CHANNEL_MULTIPLIER
            decoder += [Cell(channels, narrower, config.decoder_convs_per_cell, upsample=True),
                        Cell(narrower, narrower, config.decoder_convs_per_cell)]
            if stage == DECODER_RESIZE_AFTER_STAGE:
                decoder.append(nn.Upsample(size=DECODER_RESIZE_SIDE))
            channels = narrower
        self.decoder_cells = nn.Sequential(*decoder)
        self.to_pixels = nn.Conv2d(channels, 1, 1)

    def encode(self, x):  # x [B, 1, 28, 28] -> [B, K]
        h = self.encoder_cells(self.stem(x))  # [B, 256, 4, 4]
        h = h.mean(dim=(2, 3)) + self.pool_conv(F.silu(h)).flatten(1)  # [B, 256]
        h = self.mlp_norm(h + self.mlp_out(F.relu(self.mlp_in(h))))  # [B, 256]
        return self.to_latents(h)  # [B, K]

    def decode(self, z):  # z [B, K] -> [B, 1, 28, 28]
        h = self.from_latents(z).view(-1, self.decoder_channels, DECODER_SEED_SIDE, DECODER_SEED_SIDE)
        return self.to_pixels(self.decoder_cells(h))

    def forward(self, x):
        return self.decode(self.encode(x))


def conv_pvae_input_shape() -> tuple[int, int, int, int]:
    """One MNIST image, batch 1."""
    return (1, 1, MNIST_SIDE, MNIST_SIDE)
