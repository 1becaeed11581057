"""After training: measure the switches, and drop them for plain Dense layers."""

import keras
import numpy as np

from keras_switch import _keras_internals
from keras_switch.layers import SwitchedDense
from keras_switch.layers import switched_layers
from keras_switch.switcher import Switcher


def sparsity_report(model):
    """Per-layer and overall sparsity of the switched layers of `model`.

    Counts exact zeros of each inference kernel `kernel * mask` (the kernel
    `strip_switches` exports).

    Returns:
        `{"layers": [{"name": str, "shape": [in, out], "nonzeros": int,
        "sparsity": float}, ...], "overall": float}`; `overall` is zeros /
        entries over all switched layers (0.0 when there are none).

    Raises:
        ValueError: if a switched layer is not built yet.
    """
    rows = []
    zeros = entries = 0
    for layer in switched_layers(model):
        if not layer.built:
            raise ValueError(
                f"Layer '{layer.name}' is not built: call the model on data "
                "before asking for its sparsity."
            )
        kernel = keras.ops.convert_to_numpy(layer.effective_kernel())
        nonzeros = int(np.count_nonzero(kernel))
        rows.append(
            {
                "name": layer.name,
                "shape": [int(d) for d in kernel.shape],
                "nonzeros": nonzeros,
                "sparsity": 1.0 - nonzeros / kernel.size,
            }
        )
        zeros += kernel.size - nonzeros
        entries += kernel.size
    return {"layers": rows, "overall": zeros / entries if entries else 0.0}


def _strip_config(config):
    """A model config with every SwitchedDense turned into a Dense."""
    if isinstance(config, list):
        return [_strip_config(item) for item in config]
    if not isinstance(config, dict):
        return config
    if config.get("registered_name") == "keras_switch>SwitchedDense":
        layer_config = dict(config["config"])
        layer_config.pop("switcher", None)
        return {
            **config,
            "module": "keras.layers",
            "class_name": "Dense",
            "registered_name": None,
            "config": layer_config,
        }
    return {key: _strip_config(value) for key, value in config.items()}


def strip_switches(model):
    """A plain Keras model: each SwitchedDense becomes a Dense layer whose
    kernel is the switched layer's inference `kernel * mask`; no switcher.

    Works for Sequential and functional models (nested ones included). The
    stripped model's predictions equal the switched model's inference
    predictions.

    Raises:
        ValueError: for a subclassed model, whose layer graph has no config to
            rebuild from (use `model.freeze_switches()` there: it stops all
            switcher cost at prediction time), or for an unbuilt model.
    """
    if isinstance(model, keras.Sequential):
        rebuild = keras.Sequential.from_config
    elif isinstance(model, _keras_internals.Functional):
        rebuild = keras.Model.from_config
    else:
        raise ValueError(
            "strip_switches() needs a Sequential or functional model. Received "
            f"a subclassed model of type {type(model).__name__}: call "
            "model.freeze_switches() instead, or build the network functionally."
        )
    if not model.built:
        raise ValueError(
            f"Model '{model.name}' is not built: call it on data first."
        )
    stripped = rebuild(_strip_config(model.get_config()))
    sources = [
        layer
        for layer in _keras_internals.flatten_layers(model)
        if not isinstance(layer, Switcher)
    ]
    targets = _keras_internals.flatten_layers(stripped)
    if [l.name for l in sources[1:]] != [l.name for l in targets[1:]]:
        raise RuntimeError(
            "strip_switches(): the rebuilt model's layers do not match "
            f"{model.name}'s: {[l.name for l in targets]} vs "
            f"{[l.name for l in sources]}"
        )
    # The root is left out: a SwitchingModel's own state (its step counter)
    # has no place in a plain model.
    for source, target in zip(sources[1:], targets[1:]):
        values = _own_weights(source)
        if isinstance(source, SwitchedDense):
            values = [source.effective_kernel()] + (
                [source.bias] if source.use_bias else []
            )
        for variable, value in zip(_own_weights(target), values, strict=True):
            variable.assign(value)
    return stripped


def _own_weights(layer):
    """`layer`'s weights that none of its sub-layers hold."""
    children = _keras_internals.flatten_layers(layer)[1:]
    held = {id(w) for child in children for w in child.weights}
    return [w for w in layer.weights if id(w) not in held]
