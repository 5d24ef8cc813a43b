"""Neuron models: the arithmetic of one step, written once, called by every backend.

- ``base``: ``NeuronModel`` (a name and plain step functions over numpy arrays) and the parameters the
  functions read (``FloatNeuronParams``, ``IntegerNeuronParams``).
- ``poisson``: the iP-VAE's Poisson neuron (``POISSON``), the model every export so far uses.
- ``registry``: the one table name -> model; ``neuron_model(name)`` looks a model up (unknown names are
  refused in one line), ``register_neuron(model)`` adds one.

Who calls the functions: ipvae.export.reference (``run_reference``: int_step / int_sample or the compiled
fused_int_step; ``run_float_reference``: float_step / float_sample), ipvae.lava.proc.poisson.models (the
``fixed_pt`` and ``floating_pt`` ProcessModels), ipvae.export.quantize (build_table) and ipvae.export.hdf5
(``layer/1/neuron/type`` names the model; the stored table is checked against its build_table).

Adding a neuron variant (a different clamp, sampler or cap rule): write one module with its functions and
one ``NeuronModel(name="MY_NEURON", ...)`` value (reuse poisson's functions for the parts that do not
change), and call ``register_neuron`` on it when the module is imported; a float model whose
``FloatParams.neuron`` names it is then quantized, exported, read back, run on both references and on both
Lava graphs with it. sim_tests/toy_neuron.py is such a module (a Bernoulli neuron that resets to u_prior).
"""
