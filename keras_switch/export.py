"""After training: measure the switches, drop them for plain Dense and
Conv2D layers, and export the sparse model for inference."""

import os
import tempfile
import zlib

import keras
import numpy as np
import tensorflow as tf

from keras_switch import _keras_internals
from keras_switch.layers import SWITCHED_CLASSES
from keras_switch.layers import switched_layers
from keras_switch.sparse import REPRESENTATIONS
from keras_switch.sparse import batch_plan
from keras_switch.sparse import SparseConv2D
from keras_switch.sparse import SparseDense
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


# The registered name of each switched layer class -> its plain Keras class.
_PLAIN = {f"keras_switch>{cls.__name__}": cls.__name__[len("Switched"):]
          for cls in SWITCHED_CLASSES}


def _strip_config(config):
    """A model config with every SwitchedDense turned into a Dense and every
    SwitchedConv2D into a Conv2D."""
    if isinstance(config, list):
        return [_strip_config(item) for item in config]
    if not isinstance(config, dict):
        return config
    if config.get("registered_name") in _PLAIN:
        layer_config = dict(config["config"])
        layer_config.pop("switcher", None)
        return {
            **config,
            "module": "keras.layers",
            "class_name": _PLAIN[config["registered_name"]],
            "registered_name": None,
            "config": layer_config,
        }
    return {key: _strip_config(value) for key, value in config.items()}


def strip_switches(model):
    """A plain Keras model: each SwitchedDense becomes a Dense layer (each
    SwitchedConv2D a Conv2D) whose kernel is the switched layer's inference
    `kernel * mask`; no switcher.

    Works for Sequential and functional models (nested ones included). The
    stripped model's predictions equal the switched model's inference
    predictions.

    Raises:
        ValueError: for a subclassed model, whose layer graph has no config to
            rebuild from (use `model.freeze_switches()` there: it stops all
            switcher cost at prediction time), or for an unbuilt model.
    """
    return _strip(model, "strip_switches")[0]


def _strip(model, caller):
    """`strip_switches(model)` and the stripped Dense / Conv2D layers that
    were switched (a switcher attached), in model order."""
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
    if [l.name for l in sources[1:]] != [l.name for l in targets[1:]]:
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
                [source.bias] if source.use_bias else []
            )
            if source.switched:
                switched.append(target)
        for variable, value in zip(_own_weights(target), values, strict=True):
            variable.assign(value)
    return stripped, switched


def _own_weights(layer):
    """`layer`'s weights that none of its sub-layers hold."""
    children = _keras_internals.flatten_layers(layer)[1:]
    held = {id(w) for child in children for w in child.weights}
    return [w for w in layer.weights if id(w) not in held]


# -- sparse inference export --------------------------------------------------

# The "auto" rule: the CSR product ("hybrid") only for large, sparse kernels,
# the only ones where it beat the dense matmul on CPU, and no single-row
# `sparse_dense_matmul` plans, which made whole models slower. The timings:
# BENCHMARKS.md, "Sparse inference", "What the numbers say (issue 5)".
AUTO_MAX_DENSITY = 0.1
AUTO_MIN_ENTRIES = 100_000


def auto_representation(shape, density):
    """The product `export_sparse(representation="auto")` uses for a kernel
    of `shape` `[in, out]` and `density` (fraction of nonzero entries):
    ``"hybrid"`` for kernels of at least `AUTO_MIN_ENTRIES` entries and at
    most `AUTO_MAX_DENSITY` density, else ``"dense"``."""
    if density <= AUTO_MAX_DENSITY and np.prod(shape) >= AUTO_MIN_ENTRIES:
        return "hybrid"
    return "dense"


def export_sparse(model, directory, representation="auto"):
    """Writes a SavedModel of `strip_switches(model)` whose switched layers
    are stored and computed sparsely.

    Each switched layer becomes a `keras_switch.sparse.SparseDense`: its
    kernel `kernel * mask` is stored compactly (nonzero values plus 1-byte
    position gaps at typical sparsities) and multiplied with the chosen
    sparse product; other layers (plain Dense, convolutions, ...) are kept
    as they are. The SavedModel has a `serve` endpoint (and a
    `serving_default` signature) with the model's input spec and unknown
    batch size; it reloads with `tf.saved_model.load(directory).serve(x)`
    without keras_switch, and its outputs equal the stripped model's.

    Args:
        model: A built Sequential or functional model with `SwitchedDense`
            layers (a `SwitchingModel` included), as `strip_switches` takes.
        directory: Where to write the SavedModel.
        representation: ``"auto"`` (per layer, by kernel size and density:
            see `auto_representation`), or one of
            `keras_switch.sparse.REPRESENTATIONS` for every switched layer:
            ``"dense"``, ``"sparse_matmul"``, ``"csr"``, ``"gather"``,
            ``"hybrid"``, or a batch plan such as
            ``"sparse_matmul@1,dense@2"`` (see `keras_switch.sparse`).

    Returns:
        `{"directory": str, "layers": [{"name", "shape": [in, out],
        "nonzeros", "density", "representation"}, ...]}` over the switched
        layers, in model order.

    Raises:
        ValueError: for an unknown `representation`, a subclassed model or
            an unbuilt model.
    """
    if representation != "auto":
        try:
            batch_plan(representation)
        except ValueError:
            raise ValueError(
                "Received an invalid value for `representation`, expected one of "
                f"{('auto',) + REPRESENTATIONS} or a batch plan such as "
                "'sparse_matmul@1,dense@2,csr@256' (see "
                "keras_switch.sparse.batch_plan). Received: "
                f"representation={representation!r}"
            ) from None
    stripped, switched = _strip(model, "export_sparse")
    replacements, rows = {}, []
    for layer in switched:
        kernel = keras.ops.convert_to_numpy(layer.kernel)
        nonzeros = int(np.count_nonzero(kernel))
        density = nonzeros / kernel.size
        bias = keras.ops.convert_to_numpy(layer.bias) if layer.use_bias else None
        common = dict(bias=bias, activation=layer.activation, name=layer.name,
                      dtype=layer.dtype_policy)
        if isinstance(layer, keras.layers.Conv2D):
            # Compact storage, dense convolution (the only product it has).
            chosen = "dense"
            replacements[id(layer)] = SparseConv2D.from_kernel(
                kernel, representation=chosen, strides=layer.strides,
                padding=layer.padding, data_format=layer.data_format,
                dilation_rate=layer.dilation_rate, groups=layer.groups, **common)
        else:
            chosen = representation
            if representation == "auto":
                chosen = auto_representation(kernel.shape, density)
            replacements[id(layer)] = SparseDense.from_kernel(
                kernel, representation=chosen, **common)
        rows.append(
            {
                "name": layer.name,
                "shape": [int(d) for d in kernel.shape],
                "nonzeros": nonzeros,
                "density": density,
                "representation": chosen,
            }
        )
    inference = keras.models.clone_model(
        stripped,
        clone_function=lambda layer: replacements.get(id(layer), layer),
        recursive=True,
    )
    _save_serving(inference, directory)
    return {"directory": os.fspath(directory), "layers": rows}


def export_tflite(model, path, sparse=True):
    """Writes a TFLite flatbuffer of `strip_switches(model)` to `path`.

    Converted with `tf.lite.TFLiteConverter` from a SavedModel of the
    stripped model; with `sparse=True` the converter's
    `tf.lite.Optimize.EXPERIMENTAL_SPARSITY` stores sparse kernels in TFLite's
    sparse tensor format (values plus compressed indices), which the
    interpreter reads back to the same outputs. The file is written whole or
    not at all (written next to `path`, then renamed).

    Args:
        model: A built Sequential or functional model, as `strip_switches`
            takes.
        path: The `.tflite` file to write.
        sparse: Store sparse kernels sparsely (otherwise dense float32).

    Returns:
        `path`, as a string.

    Raises:
        ValueError: for a subclassed or unbuilt model.
    """
    stripped, _ = _strip(model, "export_tflite")
    with tempfile.TemporaryDirectory() as saved_model:
        _save_serving(stripped, saved_model)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved_model)
        if sparse:
            converter.optimizations = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
        flatbuffer = converter.convert()
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    with tempfile.NamedTemporaryFile(
        "wb", dir=directory, suffix=".partial", delete=False
    ) as f:
        try:
            f.write(flatbuffer)
        except BaseException:
            os.unlink(f.name)
            raise
    os.replace(f.name, path)
    return path


def _input_signature(model):
    """`tf.TensorSpec`s in the structure of `model`'s inputs."""
    if isinstance(model, keras.Sequential):
        structure = model.inputs[0]
    else:
        structure = model.input
    return keras.tree.map_structure(
        lambda t: tf.TensorSpec(t.shape, t.dtype, name=t.name), structure
    )


def _save_serving(model, directory):
    """A SavedModel of `model`'s inference call: a `serve` endpoint and the
    `serving_default` signature, each variable stored once.

    The root is a plain `tf.Module` holding the model's variables, not the
    Keras objects, so nothing but the traced function and the variables is
    written.
    """
    root = tf.Module()
    variables = [weight.value for weight in model.weights]
    for variable in variables:
        if not isinstance(variable, tf.Variable):  # pragma: no cover
            raise TypeError(f"Expected a tf.Variable. Received: {variable!r}")
    root.weights = variables
    root.serve = tf.function(
        lambda inputs: model(inputs, training=False),
        input_signature=[_input_signature(model)],
    )
    # The signature is given as the tf.function itself: a concrete function
    # traced here, outside the save, would be stored a second time.
    tf.saved_model.save(
        root, os.fspath(directory), signatures={"serving_default": root.serve}
    )


def raw_size(path):
    """Bytes of a file, or the sum over the files under a directory."""
    return sum(os.path.getsize(file) for file in _files(path))


def gzip_size(path):
    """Bytes of a file, or of every file under a directory, after `gzip -9`.

    Each file is compressed on its own (level 9, mtime 0, no file name: the
    bytes of `gzip.compress(data, 9, mtime=0)`) in sorted path order and the
    sizes are summed: the number depends on the contents only. Files are
    streamed, so memory stays small for large models.
    """
    total = 0
    for file in _files(path):
        compressor = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: gzip framing
        with open(file, "rb") as f:
            while chunk := f.read(1 << 20):
                total += len(compressor.compress(chunk))
        total += len(compressor.flush())
    return total


def _files(path):
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"No such file or directory: {path!r}")
    if os.path.isfile(path):
        return [path]
    return sorted(
        os.path.join(root, name) for root, _, names in os.walk(path) for name in names
    )
