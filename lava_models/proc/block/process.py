"""PoissonDenseBlock: the iP-VAE layer as one hierarchical Lava Process.

Same structure and attribute names as lava-dl netx's ``RecurrentDense`` block (``synapse``,
``synapse_rec``, ``neuron``, ports ``inp`` / ``out``), with the differences the fixed-point spec
requires (docs/fixed_point.md, sections 4.2 and 11; docs/lava.md explains why netx's block is not
used): each synapse has its own exponent; the feed-forward synapse sends raw row sums of the input
events into the neuron's drive register (which applies e_ff), the lateral one its shifted output
into ``a_in``; the synapses are ``BatchDense`` (B images side by side).
"""

from __future__ import annotations

import typing as ty

from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess, LogConfig

from ipvae.lava.proc.dense.process import BatchDense
from ipvae.lava.proc.poisson.process import PoissonNeuron


class PoissonDenseBlock(AbstractProcess):
    """Feed-forward ``BatchDense`` (input events -> drive register) + lateral ``BatchDense`` + PoissonNeuron.

    Realizes ``drive_in(tau) = W_ff e(tau-1)`` (row sums of the input events) and
    ``a_in(tau) = floor(W_rec z(tau-1) 2**e_rec)``, and ``out = z``.

    Parameters
    ----------
    synapse : dict
        Keyword arguments of the feed-forward :class:`BatchDense` (weights [K, M], exponent 0, batch).
    synapse_rec : dict
        Keyword arguments of the lateral :class:`BatchDense` (weights [K, K], exponent, batch).
    neuron : dict
        Keyword arguments of :class:`PoissonNeuron` (shape (B, K), u_prior, bias, ff_exponent, ...).

    Ports: ``inp`` [B, M] (graded input events), ``out`` [B, K] (graded spike counts), ``u_out``
    [B, K] (potentials, simulation only).
    """

    def __init__(
        self,
        *,
        synapse: dict,
        synapse_rec: dict,
        neuron: dict,
        name: ty.Optional[str] = None,
        log_config: ty.Optional[LogConfig] = None,
    ) -> None:
        super().__init__(name=name, log_config=log_config)
        self.synapse = BatchDense(**synapse)
        self.synapse_rec = BatchDense(**synapse_rec)
        self.neuron = PoissonNeuron(**neuron)
        n_latents = self.neuron.a_in.shape
        if self.synapse.a_out.shape != n_latents or self.synapse_rec.a_out.shape != n_latents:
            raise ValueError(
                f"synapse outputs {self.synapse.a_out.shape} / {self.synapse_rec.a_out.shape} "
                f"do not match the neurons {n_latents}"
            )
        if self.synapse_rec.s_in.shape != n_latents:
            raise ValueError(f"lateral synapse takes {self.synapse_rec.s_in.shape} inputs, not {n_latents}")
        self.shape = n_latents
        self.inp = InPort(shape=self.synapse.s_in.shape)
        self.out = OutPort(shape=n_latents)
        self.u_out = OutPort(shape=n_latents)
        self.inp.connect(self.synapse.s_in)
        self.synapse.a_out.connect(self.neuron.drive_in)
        self.neuron.s_out.connect(self.synapse_rec.s_in)
        self.synapse_rec.a_out.connect(self.neuron.a_in)
        self.neuron.s_out.connect(self.out)
        self.neuron.u_out.connect(self.u_out)
