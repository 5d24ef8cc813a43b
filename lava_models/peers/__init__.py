"""The standard Loihi flow beside the iP-VAE: lava-dl networks on the same images, the same Lava simulator and the
same per-operation price table (docs/energy.md, "lava-dl peers").

- ``nets``: the peers as slayer networks (sigma-delta and CUBA-LIF autoencoders 784-H-784), export by the blocks'
  own ``export_hdf5``;
- ``training``: training with slayer on the iP-VAE's MNIST images;
- ``lava_run``: the export loaded by ``lava.lib.dl.netx.hdf5.Network`` and run on the Lava CPU simulator with the
  image held for a window of T steps;
- ``counting``: events, synaptic operations and neuron updates of that run, priced with the iP-VAE's table
  (ipvae.lava.accounting.pricing), NeuroBench's metrics, and the same network priced on a conventional processor.
"""
