"""The iterative Poisson VAE on Lava: Processes, ProcessModels, network builder, runner, energy proxies.

Layout (Lava finds a Process's ProcessModels by importing every module in the Process's folder, so
each ``proc/<name>/`` folder holds exactly one ``process.py`` and its ``models.py``):

- ``proc/poisson``: the :class:`PoissonNeuron` Process and its ``floating_pt`` / ``fixed_pt`` models.
- ``proc/io``: :class:`FrameSource` (host -> graph, graded input spikes) and :class:`StateTap`
  (graph -> host, spike counts and membrane potentials every timestep).
- ``proc/block``: :class:`PoissonDenseBlock`, feed-forward ``Dense`` + lateral ``Dense`` + PoissonNeuron.
- ``network``: integer model (``ipvae.export.hdf5.read_model``) or float parameters -> process graph.
- ``runner``: many images through one compiled graph, clean runtime shutdown.
- ``pipeline``: inputs, the two backends (Lava, integer reference), the summary table, parity;
  ``parity``: the comparison of two trajectories; ``tradeoff``: R^2-vs-energy points for the benchmarks;
  ``plan_command``: ``ipvae plan`` (and its deprecated alias ``ipvae fit``).
- ``accounting/``: what counts, prices and plans (energy, pricing, MACs, NeuroBench metrics, pruning, the
  Loihi 2 plan, figures); it imports no Lava (tests/test_namespace.py checks it).

Importing this package is cheap: nothing here imports Lava until a network is built.
"""
