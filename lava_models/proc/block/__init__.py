"""The iP-VAE layer block: feed-forward and lateral ``Dense`` synapses into one PoissonNeuron population."""
