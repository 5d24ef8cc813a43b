"""The one table of neuron models, by the name the export file stores in ``layer/1/neuron/type``.

``neuron_model(name)`` is how every backend finds a model's functions (the HDF5 reader, the references, the
Lava ProcessModels); an unknown name is refused in one line. A new model registers itself once with
``register_neuron`` (see ipvae.export.neurons).
"""

from __future__ import annotations

import re

from ipvae.errors import IpvaeError
from ipvae.export.neurons.base import NeuronModel
from ipvae.export.neurons.poisson import POISSON

NAME_PATTERN = re.compile(r"[A-Z][A-Z0-9_]{0,31}")  # short upper-case names, as netx's neuron types
_MODELS: dict[str, NeuronModel] = {POISSON.name: POISSON}


class UnknownNeuronError(IpvaeError):
    """A neuron type no model is registered for."""


def register_neuron(model: NeuronModel) -> NeuronModel:
    """Add a model under its name; registering the same model again is a no-op, another one under a taken
    name is refused."""
    if not isinstance(model, NeuronModel):
        raise TypeError(f"register a NeuronModel, got {type(model).__name__}")
    if not NAME_PATTERN.fullmatch(model.name):
        raise ValueError(f"a neuron name is 1-32 upper-case letters, digits or '_' from a letter, got {model.name!r}")
    registered = _MODELS.setdefault(model.name, model)
    if registered is not model:
        raise ValueError(f"another neuron model is already registered as {model.name!r}")
    return model


def neuron_names() -> tuple[str, ...]:
    return tuple(sorted(_MODELS))


def neuron_model(name: str) -> NeuronModel:
    """The registered model called ``name``, or UnknownNeuronError (one line, listing the known names)."""
    try:
        return _MODELS[name]
    except (KeyError, TypeError):
        raise UnknownNeuronError(f"unknown neuron type {name!r} (known: {', '.join(neuron_names())})") from None
