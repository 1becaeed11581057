"""`strip_switches`: a switched model turned into a plain Keras model.

Each switched layer becomes its plain Keras class (SwitchedDense a Dense,
SwitchedConv2D a Conv2D, SwitchedMultiHeadAttention a MultiHeadAttention,
...), holding the inference kernel `kernel * mask`; the switcher is dropped. The export
(`keras_switch.export`) starts from this model.
"""

import keras

from keras_switch import _keras_internals
from keras_switch.layers import SWITCHED_CLASSES
from keras_switch.layers import SwitchedMultiHeadAttention
from keras_switch.switcher import Switcher

# The registered name of each switched layer class -> its plain Keras class.
_PLAIN = {f"keras_switch>{cls.__name__}": cls.__name__[len("Switched"):]
          for cls in SWITCHED_CLASSES + (SwitchedMultiHeadAttention,)}
# Config keys of the switched classes that their plain classes lack.
_SWITCH_KEYS = ("switcher", "projections")


def _strip_config(config):
    """A model config with every switched layer turned into its plain class."""
    if isinstance(config, list):
        return [_strip_config(item) for item in config]
    if not isinstance(config, dict):
        return config
    if config.get("registered_name") in _PLAIN:
        layer_config = {key: value for key, value in config["config"].items()
                        if key not in _SWITCH_KEYS}
        return {
            **config,
            "module": "keras.layers",
            "class_name": _PLAIN[config["registered_name"]],
            "registered_name": None,
            "config": layer_config,
        }
    return {key: _strip_config(value) for key, value in config.items()}


def strip_switches(model):
    """A plain Keras model: each switched layer becomes its plain Keras class
    (SwitchedDense a Dense, SwitchedConv2D a Conv2D, SwitchedMultiHeadAttention
    a MultiHeadAttention, ...) whose kernel is the switched layer's
    inference `kernel * mask`; no switcher.

    Works for Sequential and functional models (nested ones included). The
    stripped model's predictions equal the switched model's inference
    predictions.

    Raises:
        ValueError: for a subclassed model, whose layer graph has no config to
            rebuild from (use `model.freeze_switches()` there: it stops all
            switcher cost at prediction time), or for an unbuilt model.
    """
    return strip_with_switched(model, "strip_switches")[0]


def strip_with_switched(model, caller):
    """`strip_switches(model)` and the layers of it that were switched.

    The exports need both: the plain model, and which of its layers to
    store sparsely.

    Args:
        model: A built Sequential or functional model.
        caller: The public function's name, for the error messages.

    Returns:
        `(stripped, switched)`: the plain model, and its layers that replaced a switched layer with a switcher attached, in
        model order.

    Raises:
        ValueError: for a subclassed or unbuilt model.
        RuntimeError: if the rebuilt model's layers do not pair up with
            `model`'s (a bug, not a user error).
    """
    if isinstance(model, keras.Sequential):
        rebuild = keras.Sequential.from_config
    elif isinstance(model, _keras_internals.Functional):
        rebuild = keras.Model.from_config
    else:
        raise ValueError(
            f"{caller}() needs a Sequential or functional model. Received "
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
    # Weightless sub-layers that their owner names itself (MultiHeadAttention's
    # softmax and dropout) are named anew when it is rebuilt: they pair up by
    # position, and nothing is copied into them.
    if len(sources) != len(targets) or any(
            source.name != target.name and (_own_weights(source) or _own_weights(target))
            for source, target in zip(sources[1:], targets[1:])):
        raise RuntimeError(
            f"{caller}(): the rebuilt model's layers do not match "
            f"{model.name}'s: {[l.name for l in targets]} vs "
            f"{[l.name for l in sources]}"
        )
    # The root is left out: a SwitchingModel's own state (its step counter)
    # has no place in a plain model.
    switched = []
    for source, target in zip(sources[1:], targets[1:]):
        values = _own_weights(source)
        if isinstance(source, SWITCHED_CLASSES):
            values = [source.effective_kernel()] + (
                [source.bias] if source.bias is not None else []
            )
            if source.switched:
                switched.append(target)
        # Through numpy: a copy, so that the two models share no buffer (JAX
        # deletes the buffers a compiled function donates).
        for variable, value in zip(_own_weights(target), values, strict=True):
            variable.assign(keras.ops.convert_to_numpy(value))
    return stripped, switched


def _own_weights(layer):
    """`layer`'s weights that none of its sub-layers hold."""
    children = _keras_internals.flatten_layers(layer)[1:]
    held = {id(w) for child in children for w in child.weights}
    return [w for w in layer.weights if id(w) not in held]
