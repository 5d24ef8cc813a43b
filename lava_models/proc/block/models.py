"""SubProcessModel of PoissonDenseBlock (netx block style: the sub-Processes are built by the Process)."""

from __future__ import annotations

from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.sub.model import AbstractSubProcessModel
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from ipvae.lava.proc.block.process import PoissonDenseBlock


@implements(proc=PoissonDenseBlock, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt", "floating_pt")
class SubPoissonDenseBlockModel(AbstractSubProcessModel):
    """The block's behavior is that of its sub-Processes (two Dense, one PoissonNeuron).

    As in lava-dl netx's block models, the sub-Processes are created and connected in the Process's
    constructor (so users can reach ``block.neuron`` before compiling); the compiler reaches them
    through the block's port connections, and each is mapped to its own ProcessModel (the Dense
    bit-accurate or float model and the PoissonNeuron model matching the run config's tag).
    """

    def __init__(self, _: AbstractProcess) -> None:
        """Nothing to build: keep no reference to a Process here (it would be taken for a sub-Process)."""
