"""Validation of what a run directory holds, before any of it is used: the config's sizes and the train state.

The dataclasses of ``ipvae.train.config`` check each field's type and its basic range. This module adds
the bounds that keep a config.json from sizing absurd tensors (``n_latents = 10**12``), as ONE table
(``FIELD_BOUNDS``, by field name); every other field gets the default bound of its annotated type, so a
field added to or moved between the config dataclasses is covered without an edit here. The fields are
found by walking the dataclasses (``options`` of a model kind included).

The train state (``ipvae.train.checkpoint``) is checked against a fresh model, optimizer and scheduler
built from the run's config: the same tensor names, shapes and dtypes, the same JSON structure and value
types, finite numbers, a step within the run's length and counters that agree with it.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from typing import Any

import torch

from ipvae.errors import shown

# Field name -> (lowest, highest) allowed value, for integer fields that size tensors, loops or files.
# Beyond these a run is not just slow but cannot be held or finished on any machine this toolkit targets.
FIELD_BOUNDS: dict[str, tuple[int, int]] = {
    "n_inputs": (1, 2**24),  # pixels per image (a 4096 x 4096 image)
    "n_latents": (1, 2**16),  # the lateral matrix is K x K
    "max_spike_count": (1, 255),  # the relaxed sampler draws this many arrival times; exports carry at most 255
    "hidden_size": (1, 2**16),
    "conv_channels": (1, 2**12),
    "epochs": (1, 2**20),
    "batch_size": (1, 2**20),
    "t_train": (1, 2**20),
    "warm_start_max": (0, 2**20),
    "train_limit": (1, 2**31),
    "checkpoint_every_steps": (1, 2**40),
    "num_threads": (1, 2**12),
    "seed": (0, 2**63 - 1),
    "image_shape": (1, 2**12),  # each side of an image
    "patch_size": (1, 2**12),
}
DEFAULT_INT_BOUNDS = (-(2**31), 2**31)
DEFAULT_FLOAT_LIMIT = 1e30  # |x| of a float field with no bound of its own
MAX_STRING_CHARACTERS = 4096  # a path or a name
MAX_FIELDS = 1000  # fields of all the dataclasses of one config, nested ones included (a runaway guard)
MAX_TUPLE_ITEMS = 64  # items of a tuple field (TrainConfig.image_shape, TrainConfig.phases)


def check_config_limits(config: Any) -> None:
    """ValueError (one line, naming the field) when a field of the config or a nested dataclass is out of bounds."""
    seen = 0
    stack = [(type(config).__name__, config)]
    while stack:
        prefix, node = stack.pop()
        hints = typing.get_type_hints(type(node))
        for item in dataclasses.fields(node):
            seen += 1
            if seen > MAX_FIELDS:
                raise ValueError(f"{prefix} has more than {MAX_FIELDS} fields")
            name, value = f"{prefix}.{item.name}", getattr(node, item.name)
            if dataclasses.is_dataclass(value) and not isinstance(value, type):
                stack.append((name, value))
                continue
            if isinstance(value, tuple):  # a tuple field (an image shape, the training phases): each element
                if len(value) > MAX_TUPLE_ITEMS:
                    raise ValueError(f"{name} has {len(value)} items (at most {MAX_TUPLE_ITEMS})")
                for index, element in enumerate(value):
                    if dataclasses.is_dataclass(element) and not isinstance(element, type):
                        stack.append((f"{name}[{index}]", element))
                    else:
                        _check_value(f"{name}[{index}]", item.name, element, hints.get(item.name))
                continue
            _check_value(name, item.name, value, hints.get(item.name))


def _check_value(name: str, field_name: str, value: Any, annotation: Any) -> None:
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, int):
        low, high = FIELD_BOUNDS.get(field_name, DEFAULT_INT_BOUNDS)
        if not low <= value <= high:
            raise ValueError(f"{name} must be in {low}..{high}, got {_short_number(value)}")
    elif isinstance(value, float):
        if not (math.isfinite(value) and abs(value) <= DEFAULT_FLOAT_LIMIT):
            raise ValueError(f"{name} must be a finite number of magnitude at most {DEFAULT_FLOAT_LIMIT:g}, got {value!r}")
    elif isinstance(value, str):
        if len(value) > MAX_STRING_CHARACTERS:
            raise ValueError(f"{name} is a string of {len(value)} characters (at most {MAX_STRING_CHARACTERS})")
    elif isinstance(value, (list, tuple, dict)):
        raise TypeError(f"{name} must be a single value of type {annotation}, got a {type(value).__name__}")


def _short_number(value: int) -> str:
    digits = len(str(abs(value))) if abs(value) < 10**100 else None
    if digits is None or digits > 20:
        return f"an integer of {digits or 'over 100'} digits"
    return str(value)


# ------------------------------------------------------------------------------------------ train state

OPTIMIZER_STATE_KEYS = frozenset({"step", "exp_avg", "exp_inf", "exp_avg_sq", "max_exp_avg_sq", "momentum_buffer"})
MAX_EPOCH_LINES_PER_EPOCH = 1


def check_tensor(name: str, tensor: torch.Tensor, expected: torch.Tensor) -> None:
    """``tensor`` has ``expected``'s shape and dtype and finite values (ValueError otherwise)."""
    if tensor.dtype != expected.dtype:
        raise ValueError(f"{name} has dtype {str(tensor.dtype).replace('torch.', '')}, the config's model has "
                         f"{str(expected.dtype).replace('torch.', '')}")
    if tuple(tensor.shape) != tuple(expected.shape):
        raise ValueError(f"{name} has shape {tuple(tensor.shape)}, the config implies {tuple(expected.shape)}")
    if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
        raise ValueError(f"{name} contains NaN or Inf")


def same_structure(name: str, value: Any, template: Any) -> None:
    """``value`` (from JSON) has ``template``'s structure: the same keys, list lengths and value types
    (an int where a float is expected is fine; bool is not a number); numbers finite. ValueError otherwise."""
    if isinstance(template, dict):
        if not isinstance(value, dict):
            raise ValueError(f"{name} must be an object, got {type(value).__name__}")
        if set(value) != set(template):
            extra, missing = sorted(set(value) - set(template)), sorted(set(template) - set(value))
            raise ValueError(f"{name} has keys {shown(extra[:5])} it should not have, lacks {shown(missing[:5])}")
        for key in template:
            same_structure(f"{name}.{key}", value[key], template[key])
    elif isinstance(template, (list, tuple)):
        if not isinstance(value, list) or len(value) != len(template):
            raise ValueError(f"{name} must be a list of {len(template)} values")
        for index, (item, expected) in enumerate(zip(value, template)):
            same_structure(f"{name}[{index}]", item, expected)
    elif template is None:
        if value is not None:
            raise ValueError(f"{name} must be null")
    elif isinstance(template, bool):
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be true or false")
    elif isinstance(template, (int, float)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (isinstance(template, int) and isinstance(value, float)):
            raise ValueError(f"{name} must be a{'n integer' if isinstance(template, int) else ' number'}, got {shown(value, 40)}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{name} must be finite, got {value}")
    elif isinstance(template, str):
        if not isinstance(value, str) or len(value) > MAX_STRING_CHARACTERS:
            raise ValueError(f"{name} must be a string")
    else:
        raise ValueError(f"{name}: no rule for values like {type(template).__name__}")


def check_counter(name: str, value: Any, expected: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value != expected:
        raise ValueError(f"{name} is {_short_number(value) if isinstance(value, int) else shown(value, 40)}, "
                         f"the train state's step implies {expected}")
