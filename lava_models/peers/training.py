"""Training the lava-dl peers with slayer on the iP-VAE's task: reconstruct MNIST training images (the same
``ipvae.data.get_dataset('mnist', 'train')`` images), loss = mean squared error of lava-dl's readout of the
output (the sigma at the last step, or the spike rate) plus an optional L1 penalty on the hidden activity.

The sigma-delta net trains on the image held for ``SIGMA_DELTA_TRAIN_STEPS`` step(s): on a still image its
deltas are all sent in the first step, so one step is the whole computation. The CUBA net trains at its own T
through slayer's surrogate gradients.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ipvae.lava.peers.nets import SIGMA_DELTA, CubaConfig, SigmaDeltaConfig, build, held, reconstruction

SIGMA_DELTA_TRAIN_STEPS = 1


@dataclass(frozen=True)
class TrainOptions:
    """Epochs over the training images, Adam's step size, batch size, seed."""

    epochs: int = 1
    learning_rate: float = 1e-3
    batch_size: int = 100
    seed: int = 0


def loss_terms(config: SigmaDeltaConfig | CubaConfig, model: torch.nn.Module,
               batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(reconstruction MSE, mean |hidden activity|) of a batch [B, M]."""
    n_steps = SIGMA_DELTA_TRAIN_STEPS if config.kind == SIGMA_DELTA else config.steps
    _, hidden, output = model(held(batch, n_steps))  # [B, H, T], [B, M, T]
    recon = reconstruction(config, output)  # [B, M]
    return torch.mean((recon - batch) ** 2), hidden.abs().mean()


def train(config: SigmaDeltaConfig | CubaConfig, images: torch.Tensor, options: TrainOptions,
          log=None) -> torch.nn.Module:
    """A trained peer (eval mode). images: [N, M] float in [0, 1]."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(options.seed)
        model = build(config)
        optimizer = torch.optim.Adam(model.parameters(), lr=options.learning_rate)
        penalty = getattr(config, "activity_l1", 0.0)
        model.train()
        for epoch in range(options.epochs):
            order = torch.randperm(images.shape[0])
            total, batches = 0.0, 0
            for first in range(0, images.shape[0], options.batch_size):
                batch = images[order[first : first + options.batch_size]]  # [B, M]
                mse, activity = loss_terms(config, model, batch)
                loss = mse + penalty * activity
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total, batches = total + float(mse), batches + 1
            if log is not None:
                log(f"  {config.name}: epoch {epoch + 1}/{options.epochs}, train MSE/pixel {total / batches:.4f}")
    return model.eval()
