"""The registry of neuron models: one table by name, unknown names refused in one line, names kept unique."""

from __future__ import annotations

import dataclasses

import pytest

from ipvae.errors import IpvaeError
from ipvae.export.neurons.poisson import NAME, POISSON
from ipvae.export.neurons.registry import UnknownNeuronError, neuron_model, neuron_names, register_neuron


def test_the_poisson_neuron_is_registered_under_the_name_every_export_carries():
    assert NAME == "POISSON"
    assert neuron_model("POISSON") is POISSON
    assert "POISSON" in neuron_names()


@pytest.mark.parametrize("name", ["LIF", "poisson", "", None, 3])
def test_an_unknown_name_is_one_line_naming_the_known_ones(name):
    with pytest.raises(UnknownNeuronError) as error:
        neuron_model(name)
    message = str(error.value)
    assert isinstance(error.value, IpvaeError) and "\n" not in message and "POISSON" in message


def test_registration_keeps_names_unique():
    assert register_neuron(POISSON) is POISSON  # the same model again: a no-op
    impostor = dataclasses.replace(POISSON)  # equal functions, another object
    with pytest.raises(ValueError, match="already registered"):
        register_neuron(impostor)
    assert neuron_model("POISSON") is POISSON
    for bad in ("lower", "1ABC", "WITH SPACE", "X" * 33):
        with pytest.raises(ValueError, match="neuron name"):
            register_neuron(dataclasses.replace(POISSON, name=bad))
    assert bad not in neuron_names()
    with pytest.raises(TypeError):
        register_neuron("POISSON")
