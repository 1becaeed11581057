"""Moving weights between plain Keras models and switched ones.

`copy_weights(source, target)` copies the task weights of one model into
another layer by layer, matching layers by name: a dense pretrained network
(or a stripped export) warm-starts the `SwitchedDense` layers of the same
names, and the reverse works too.
"""

import keras

from keras_switch import _keras_internals
from keras_switch.layers import SwitchedDense
from keras_switch.switcher import Switcher


def copy_weights(source, target):
    """Copies the weights of `source` into `target`, layer by layer by name.

    A `keras.layers.Dense` or `SwitchedDense` layer gives its kernel and bias
    (not a switched layer's mask or offsets), so a plain dense network and a
    switched one with the same layer names exchange weights; any other layer
    with weights (`Conv2D`, `BatchNormalization`, ...) gives all of them, in
    order. Switchers are never copied. Nested models are walked; the layers
    of both models are matched by name. Every matching layer's weights are
    checked before any is copied, so an error leaves `target` unchanged.

    Args:
        source: the `keras.Model` to copy from.
        target: the `keras.Model` to copy into (built).

    Returns:
        A dict of layer names, each list in model order:
        `"matched"`: layers of `target` whose weights were copied;
        `"fresh"`: layers of `target` with weights that `source` lacks (left
        as they were); `"ignored"`: layers of `source` with weights that
        `target` lacks.

    Raises:
        ValueError: if no layer with weights matches by name (listing the
            layers of both models), or if a matching layer holds other
            weights (names) or a weight of another shape (naming the layer,
            the weight and both shapes).
    """
    sources = _weight_layers(source)
    targets = _weight_layers(target)
    matched = [name for name in targets if name in sources]
    if not matched:
        raise ValueError(
            f"No layer of the source model {source.name!r} matches a layer of "
            f"the target model {target.name!r} by name. Layers with weights in "
            f"the source: {sorted(sources)}; in the target: {sorted(targets)}."
        )
    for name in matched:
        have, want = sources[name], targets[name]
        have_names, want_names = [n for n, _ in have], [n for n, _ in want]
        if have_names != want_names:
            raise ValueError(
                f"Layer {name!r} holds weights {have_names} in the source model "
                f"but {want_names} in the target model."
            )
        for (weight, value), (_, variable) in zip(have, want):
            if tuple(value.shape) != tuple(variable.shape):
                raise ValueError(
                    f"Layer {name!r} {weight} has shape {tuple(value.shape)} in "
                    f"the source model but {tuple(variable.shape)} in the target "
                    "model."
                )
    for name in matched:
        for (_, value), (_, variable) in zip(sources[name], targets[name]):
            variable.assign(keras.ops.convert_to_numpy(value))
    return {
        "matched": matched,
        "fresh": [name for name in targets if name not in sources],
        "ignored": [name for name in sources if name not in targets],
    }


def _weight_layers(model):
    """{layer name: [(weight name, variable)]} of `model`'s layers with task
    weights, in model order (see `copy_weights`); switchers are left out."""
    layers = _keras_internals.flatten_layers(model)
    inside_switching = {
        id(inner)
        for layer in layers
        if isinstance(layer, (Switcher, SwitchedDense))
        for inner in _keras_internals.flatten_layers(layer)[1:]
    }
    out = {}
    for layer in layers[1:]:
        if id(layer) in inside_switching:
            continue
        if isinstance(layer, (keras.layers.Dense, SwitchedDense)):
            weights = [("kernel", layer.kernel)]
            if layer.bias is not None:
                weights.append(("bias", layer.bias))
        elif isinstance(layer, Switcher) or len(_keras_internals.flatten_layers(layer)) > 1:
            continue  # a switcher, or a container whose leaves are listed
        else:
            weights = [(v.name, v) for v in layer.weights]
        if weights:
            out[layer.name] = weights
    return out
