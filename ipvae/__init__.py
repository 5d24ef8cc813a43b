"""iP-VAE neuromorphic toolkit: train an iterative Poisson VAE, export it to integers, run it on Lava.

The everyday steps (see :mod:`ipvae.api` and README.md, "Python API"):

    ipvae.load_run(run_dir)                      a trained run (config + PyTorch model)
    ipvae.export_model(run_dir, "model.h5")      quantize + write the HDF5 export; returns the integer model
    ipvae.load_export("model.h5")                the validated integer model of an export file
    ipvae.load_inputs("mnist" | "imgs/", model)  inputs (data set name, your PNG/JPEG files, .npy/.npz)
    ipvae.run(model, x, backend="lava")          spiking inference; counts, reconstruction, spikes/energy table

They are imported on first use, so ``import ipvae`` (and ``ipvae.errors`` beneath the stages) stays light.
"""

__version__ = "0.1.0"

PUBLIC_API = ("load_run", "export_model", "load_export", "load_inputs", "run", "SpikingRun")
__all__ = ["__version__", *PUBLIC_API]


def __getattr__(name: str):
    """PEP 562: resolve the public functions from ipvae.api on first access."""
    if name in PUBLIC_API:
        from ipvae import api

        return getattr(api, name)
    raise AttributeError(f"module 'ipvae' has no attribute {name!r}")
