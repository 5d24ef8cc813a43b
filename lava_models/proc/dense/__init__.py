"""BatchDense: a dense synapse matrix applied to B images side by side (one message per timestep)."""
