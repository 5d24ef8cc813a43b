"""The accounting of a spiking run, apart from the Lava graph: nothing in this package imports Lava.

- ``energy``: spike counts, synaptic operations and the documented energy proxies of a run's spikes.
- ``pricing``: per-operation prices and the conventional baselines (arithmetic and weight reads).
- ``macs``: layer-by-layer MACs of a PyTorch network; ``pvae_architecture``: the paper's conv P-VAE rebuilt.
- ``neurobench_metrics``: a run in NeuroBench's definitions.
- ``metrics``: reconstruction quality of spike counts (R^2, MSE, zeros) per step.
- ``pruning``: magnitude pruning of an export's synapses.
- ``fit``: the Loihi 2 resource plan behind ``ipvae plan`` (a plan, not a measurement).
- ``figures``: PNG figures of a run.

Everything here takes arrays and integer models (ipvae.export) and returns counts, prices and plans; what
runs the spikes lives one floor up (ipvae.lava.pipeline, ipvae.lava.runner). tests/test_namespace.py checks
from the source that no module here reaches Lava, directly or through another module.
"""
