"""The iterative Poisson VAE on Lava: Processes, ProcessModels, network builder, runner, energy proxies.

Layout (Lava finds a Process's ProcessModels by importing every module in the Process's folder, so
each ``proc/<name>/`` folder holds exactly one ``process.py`` and its ``models.py``):

- ``proc/poisson``: the :class:`PoissonNeuron` Process and its ``floating_pt`` / ``fixed_pt`` models.
- ``proc/io``: :class:`FrameSource` (host -> graph, graded input spikes) and :class:`StateTap`
  (graph -> host, spike counts and membrane potentials every timestep).
- ``proc/block``: :class:`PoissonDenseBlock`, feed-forward ``Dense`` + lateral ``Dense`` + PoissonNeuron.
- ``network``: integer model (``ipvae.export.hdf5.read_model``) or float parameters -> process graph.
- ``runner``: many images through one compiled graph, clean runtime shutdown.
- ``energy``: spike counts, synaptic operations and the documented energy proxies.
- ``pricing``: per-operation prices and the conventional baselines (arithmetic and weight reads);
  ``macs``: layer-by-layer MACs of a PyTorch network; ``pvae_architecture``: the paper's conv P-VAE.
- ``neurobench_metrics``: the run in NeuroBench's definitions; ``pruning``: magnitude pruning of an export;
  ``tradeoff``: R^2-vs-energy points for the benchmarks; ``fit``: ``ipvae fit``, a Loihi 2 resource plan.

Importing this package is cheap: nothing here imports Lava until a network is built.
"""
