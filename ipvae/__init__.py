"""iP-VAE neuromorphic toolkit: the `ipvae` command line and shared error types."""

__version__ = "0.1.0"
