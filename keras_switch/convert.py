"""Moving plain Keras models and weights into switched ones.

* `switch_model(model, layers=None, switcher=None)` clones a Sequential or
  functional model (nested models included) into a `SwitchingModel` whose
  selected layers are switched, with the original weights: every switch
  starts on, so the clone predicts exactly what the original does until it
  is trained. This is how a pretrained model gets pruned.
* `copy_weights(source, target)` copies the task weights of one model into
  another layer by layer, matching layers by name: a dense pretrained network
  (or a stripped export) warm-starts the `SwitchedDense` layers of the same
  names, and the reverse works too.
"""

import re

import keras

from keras_switch import _keras_internals
from keras_switch.layers import SWITCHED_CLASSES
from keras_switch.layers import SwitchedConv1D
from keras_switch.layers import SwitchedConv2D
from keras_switch.layers import SwitchedDense
from keras_switch.layers import SwitchedDepthwiseConv2D
from keras_switch.layers import SwitchedEinsumDense
from keras_switch.layers import SwitchedMultiHeadAttention
from keras_switch.layers import switched_layers
from keras_switch.layers.attention import PROJECTIONS
from keras_switch.model import SwitchingModel
from keras_switch.switcher import Switcher

# Plain Keras layer class -> its switched counterpart, built from the plain
# layer's config (exact classes only: a subclass may compute something else).
COUNTERPARTS = {
    keras.layers.Dense: SwitchedDense,
    keras.layers.Conv1D: SwitchedConv1D,
    keras.layers.Conv2D: SwitchedConv2D,
    keras.layers.DepthwiseConv2D: SwitchedDepthwiseConv2D,
    keras.layers.EinsumDense: SwitchedEinsumDense,
    keras.layers.MultiHeadAttention: SwitchedMultiHeadAttention,
}
# Classes without a counterpart, and why (the error says it).
WHY_NOT = {
    keras.layers.SeparableConv2D: (
        "SeparableConv2D holds two kernels; write it as the same computation, "
        "a DepthwiseConv2D followed by a 1x1 Conv2D, and switch those"),
}


def switch_model(model, layers=None, switcher=None):
    """A `SwitchingModel` clone of `model` with the selected layers switched.

    The clone has `model`'s graph, layer names and **weights**; each
    selected layer is replaced by its switched counterpart (`Dense` ->
    `SwitchedDense`, `Conv1D`, `Conv2D`, `DepthwiseConv2D`, `EinsumDense` ->
    `SwitchedConv1D`, ...; a `MultiHeadAttention` whose projections are
    selected -> a `SwitchedMultiHeadAttention` switching those) with the
    same config and weights, and all of them share one `Switcher`. A fresh switcher starts with every switch on (its
    logits start >= `initial_logit` > 0), so before training the clone's
    predictions equal `model`'s exactly. `model` itself is not changed.
    Compile the clone like any `SwitchingModel`
    (`compile(..., target_sparsity=0.9)`) and `fit()` it.

    Args:
        model: a built `keras.Sequential` or functional `keras.Model`;
            nested Sequential/functional models are walked, and operation
            nodes (a residual written `h + inputs`, `keras.ops` calls) are
            cloned as they are. Subclassed
            models have no graph to clone: build them with `SwitchedDense`
            layers and `SwitchingModel` as the base class instead.
        layers: which layers to switch. `None` (default): every
            `keras.layers.Dense` (the paper's fully connected layers; select
            convolutions and attention by name, pattern or predicate, e.g.
            ``lambda layer: isinstance(layer, (keras.layers.Dense,
            keras.layers.Conv2D))``).
            Otherwise a list of layer names, a string (a regular expression
            that a layer's whole name must match, `re.fullmatch`), or a
            callable `layer -> bool`, asked for every layer (nested models'
            layers included, not the models themselves, and the projections
            inside a MultiHeadAttention, named ``query``, ``key``,
            ``value`` and ``attention_output``; selecting the attention
            layer selects all of them).
        switcher: the `Switcher` to share; default: a new `Switcher()`.

    Returns:
        A functional `SwitchingModel` named like `model`, not compiled.

    Raises:
        ValueError: `model` is subclassed, not built, or already has
            switched layers; a selected layer's class has no switched
            counterpart, or it is a sub-layer of a layer other than
            MultiHeadAttention; a name in `layers` matches no layer; a regular
            expression is invalid or matches no layer; nothing is selected.
        TypeError: `model`, `layers` or `switcher` is of the wrong type.
    """
    _check_cloneable(model)
    if switcher is None:
        switcher = Switcher()
    elif not isinstance(switcher, Switcher):
        raise TypeError(
            "switch_model: expected `switcher` to be a keras_switch.Switcher or "
            f"None. Received: switcher={switcher!r}"
        )
    leaves = [layer for layer in _keras_internals.flatten_layers(model)[1:]
              if not isinstance(layer, (keras.Model, keras.layers.InputLayer))]
    selected, attention = _select(model, leaves, layers)
    pairs = []

    def clone(layer):
        if id(layer) in selected or id(layer) in attention:
            config = layer.get_config()
            if config.pop("quantization_config", None) is not None:
                raise ValueError(
                    f"switch_model: layer {layer.name!r} is quantized; switch "
                    "the float model, then quantize the stripped export."
                )
            if id(layer) in attention:
                config["projections"] = attention[id(layer)]
            new = COUNTERPARTS[type(layer)](switcher=switcher, **config)
        else:
            new = layer.__class__.from_config(layer.get_config())
        pairs.append((layer, new))
        return new

    cloned = keras.models.clone_model(model, clone_function=clone, recursive=True)
    for old, new in pairs:
        if id(old) in attention:
            for attribute in PROJECTIONS.values():
                if getattr(old, attribute, None) is not None:
                    _copy_kernel(getattr(old, attribute), getattr(new, attribute))
        elif id(old) in selected:
            _copy_kernel(old, new)
        elif isinstance(old, keras.layers.Layer):
            new.set_weights(old.get_weights())
        # Otherwise an operation node (`h + inputs`, a keras.ops call): no weights.
    if isinstance(cloned, keras.Sequential):  # one input, one output
        return SwitchingModel(cloned.inputs[0], cloned.outputs[0], name=model.name)
    # The same input/output structure as `model` (a tensor, a list, a dict).
    return SwitchingModel(cloned.input, cloned.output, name=model.name)


def _copy_kernel(old, new):
    # Copies (through numpy): the models share no buffer, which JAX would
    # delete in one when the other's compiled step donates it.
    new.kernel.assign(keras.ops.convert_to_numpy(old.kernel))
    if old.bias is not None:
        new.bias.assign(keras.ops.convert_to_numpy(old.bias))


def _check_cloneable(model):
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"switch_model: expected a keras.Model. Received: {model!r} "
            f"(a {type(model).__name__})"
        )
    if not isinstance(model, (keras.Sequential, _keras_internals.Functional)):
        raise ValueError(
            f"switch_model: model {model.name!r} is a subclassed model "
            f"({type(model).__name__}), which has no layer graph to clone. "
            "Build it with keras_switch.SwitchedDense layers (one shared "
            "keras_switch.Switcher) and keras_switch.SwitchingModel as its base "
            "class, or write it as a Sequential or functional model."
        )
    if not model.built or not model.inputs:
        raise ValueError(
            f"switch_model: model {model.name!r} is not built. Give it a "
            "keras.Input (or call it on data) first."
        )
    if switched_layers(model):
        raise ValueError(
            f"switch_model: model {model.name!r} already has switched layers "
            f"{[layer.name for layer in switched_layers(model)]}. Strip them "
            "first (keras_switch.strip_switches) or compile it as it is."
        )


def _select(model, leaves, layers):
    """What `layers` selects among `leaves` (see `switch_model`): the ids of
    the layers to replace by their counterparts, and `{id(attention layer):
    projection names}` for each MultiHeadAttention with selected projections."""
    names = [layer.name for layer in leaves]
    if layers is None:
        chosen = [layer for layer in leaves if type(layer) is keras.layers.Dense]
        what = "layers=None (every keras.layers.Dense)"
    elif isinstance(layers, str):
        try:
            pattern = re.compile(layers)
        except re.error as error:
            raise ValueError(
                f"switch_model: layers={layers!r} is not a valid regular "
                f"expression: {error}"
            ) from None
        chosen = [layer for layer in leaves if pattern.fullmatch(layer.name)]
        what = f"the regular expression layers={layers!r}"
    elif callable(layers):
        chosen = []
        for layer in leaves:
            verdict = layers(layer)
            if not isinstance(verdict, bool):
                raise TypeError(
                    f"switch_model: the `layers` predicate returned {verdict!r} "
                    f"for layer {layer.name!r}; expected True or False."
                )
            if verdict:
                chosen.append(layer)
        what = "the `layers` predicate"
    elif isinstance(layers, (list, tuple)) and all(isinstance(n, str) for n in layers):
        missing = [name for name in layers if name not in names]
        if missing:
            raise ValueError(
                f"switch_model: no layer of model {model.name!r} is named "
                f"{missing}. Its layers: {names}"
            )
        wanted = set(layers)
        chosen = [layer for layer in leaves if layer.name in wanted]
        what = f"layers={list(layers)!r}"
    else:
        raise TypeError(
            "switch_model: expected `layers` to be None, a list of layer names, "
            f"a regular expression or a callable. Received: layers={layers!r}"
        )
    if not chosen:
        raise ValueError(
            f"switch_model: {what} selects no layer of model {model.name!r}. "
            f"Its layers: {names}"
        )
    unsupported = [f"{layer.name!r} ({type(layer).__name__}"
                   + (f": {WHY_NOT[type(layer)]})" if type(layer) in WHY_NOT else ")")
                   for layer in chosen if type(layer) not in COUNTERPARTS]
    if unsupported:
        raise ValueError(
            f"switch_model: {what} selects layers without a switched "
            f"counterpart: {', '.join(unsupported)}. Switchable classes: "
            f"{sorted(cls.__name__ for cls in COUNTERPARTS)}"
        )
    owners = {id(inner): layer for layer in leaves
              for inner in _keras_internals.flatten_layers(layer)[1:]}
    attention, selected = {}, set()
    for layer in chosen:
        owner = owners.get(id(layer))
        if owner is None and type(layer) is keras.layers.MultiHeadAttention:
            attention[id(layer)] = None  # every projection
        elif owner is None:
            selected.add(id(layer))
        elif type(owner) is keras.layers.MultiHeadAttention:
            if attention.get(id(owner), ()) is not None:
                names = [name for name, attribute in PROJECTIONS.items()
                         if getattr(owner, attribute, None) is layer]
                attention[id(owner)] = attention.get(id(owner), ()) + tuple(names)
        else:
            raise ValueError(
                f"switch_model: {what} selects layer {layer.name!r}, a sub-layer of "
                f"{owner.name!r} ({type(owner).__name__}); switch_model replaces "
                "the sub-layers of a MultiHeadAttention only. Select the layers "
                "of the graph, or build the owner with switched layers."
            )
    return selected, attention


def copy_weights(source, target):
    """Copies the weights of `source` into `target`, layer by layer by name.

    A `keras.layers.Dense`, `SwitchedDense` or `SwitchedConv2D` layer gives
    its kernel and bias (not a switched layer's mask or offsets), so a plain dense network and a
    switched one with the same layer names exchange weights; any other layer
    with weights (`Conv2D`, `BatchNormalization`, ...) gives all of them, in
    order. Switchers are never copied. Nested models are walked; the layers
    of both models are matched by name, a sub-layer of a layer by
    `owner/name` (`attention/query`). Every matching layer's weights are
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
    weights, in model order (see `copy_weights`); switchers are left out. A
    sub-layer of a layer that is not a model is named `owner/name` (each
    MultiHeadAttention names its projections `query`, `key`, ...)."""
    layers = _keras_internals.flatten_layers(model)
    inside_switching = {
        id(inner)
        for layer in layers
        if isinstance(layer, (Switcher,) + SWITCHED_CLASSES)
        for inner in _keras_internals.flatten_layers(layer)[1:]
    }
    owners = {}
    for layer in layers[1:]:
        if not isinstance(layer, (keras.Model, Switcher)):
            for inner in _keras_internals.flatten_layers(layer)[1:]:
                owners.setdefault(id(inner), layer.name)
    out = {}
    for layer in layers[1:]:
        if id(layer) in inside_switching:
            continue
        if isinstance(layer, (keras.layers.Dense,) + SWITCHED_CLASSES):
            weights = [("kernel", layer.kernel)]
            if layer.bias is not None:
                weights.append(("bias", layer.bias))
        elif isinstance(layer, Switcher) or len(_keras_internals.flatten_layers(layer)) > 1:
            continue  # a switcher, or a container whose leaves are listed
        else:
            weights = [(v.name, v) for v in layer.weights]
        if weights:
            owner = owners.get(id(layer))
            out[layer.name if owner is None else f"{owner}/{layer.name}"] = weights
    return out
