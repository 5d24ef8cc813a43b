"""The Poisson neuron of the iterative Poisson VAE (Process in ``process.py``, models in ``models.py``)."""
