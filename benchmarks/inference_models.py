"""What the inference benchmark times and sizes: its models, masks and
exports.

Models: the keras-switch LeNets holding the plain dense model's weights
after `train_epochs` from the init of `seed`, masked at each target by one
global magnitude threshold (`freeze_mask`). Parts: the whole model, and
(LeNet-5 only) its FC stack as a separate model on a 400-wide input.
Exports: `dense` is `strip_switches(model).export(dir)`; `auto` and the
other representations `export_sparse` (its "dense" reported as
`export_sparse_dense`); TFLite `export_tflite(sparse=False|True)`. Sizes are
gzip'd, as ratios to the same network unpruned (`unpruned_sizes`).
"""

import gzip
import os

import keras
import numpy as np

import keras_switch
from benchmarks.harness import baselines
from benchmarks.harness import data
from keras_switch import export
from keras_switch import models


def build_model(name, seed, train_epochs=0, data_dir=None):
    """The keras-switch model `name` with the random init of `seed`, or, with
    `train_epochs`, the weights of the plain dense model trained that long
    from that init."""
    keras.utils.set_random_seed(seed)
    if name not in baselines.MODELS:
        raise ValueError(f"model must be one of {sorted(baselines.MODELS)}. Received: {name!r}")
    model = models.MODELS[name](switcher=keras_switch.Switcher())
    weights = baselines.initial_weights(name, seed)
    if train_epochs:
        arrays = data.load_data(data_dir)
        dense = baselines.plain_model(name)
        baselines.set_initial_weights(dense, weights)
        baselines.compiled(dense, metrics=None)
        dense.fit(data.train_batches(arrays, 128, seed), epochs=train_epochs, verbose=0)
        weights = dense.get_weights()
    baselines.set_initial_weights(model, weights)
    return model


def fc_stack(model):
    """A functional SwitchingModel of only `model`'s switched layers (same
    widths, activations and names) on an input as wide as the first one's
    kernel; `copy_switched(model, stack)` fills in weights and masks."""
    layers = model.switched_layers
    switcher = keras_switch.Switcher()
    inputs = keras.Input((int(layers[0].kernel.shape[0]),), name="features")
    x = inputs
    for layer in layers:
        x = keras_switch.SwitchedDense(
            layer.units, activation=layer.activation, use_bias=layer.use_bias,
            switcher=switcher, name=layer.name)(x)
    return keras_switch.SwitchingModel(inputs, x, name=f"{model.name}_fc")


def copy_switched(source, target):
    """Kernels, biases and frozen masks of `source`'s switched layers into
    `target`'s (same order and shapes)."""
    for src, dst in zip(source.switched_layers, target.switched_layers, strict=True):
        dst.kernel.assign(src.kernel)
        if src.use_bias:
            dst.bias.assign(src.bias)
        dst.freeze_mask(src.mask)


def global_magnitude_masks(model, target):
    """0/1 masks keeping the round((1 - target) * entries) largest |kernel|
    entries over all switched layers together (one threshold)."""
    kernels = [np.abs(layer.kernel.numpy()) for layer in model.switched_layers]
    flat = np.concatenate([k.ravel() for k in kernels])
    keep = baselines.kept(1.0 - target, flat.size)
    threshold = np.partition(flat, flat.size - keep)[flat.size - keep]
    return [(k >= threshold).astype("float32") for k in kernels]


def set_masks(model, masks):
    for layer, mask in zip(model.switched_layers, masks, strict=True):
        layer.freeze_mask(mask)


def candidate(representation):
    """The name an export_sparse representation is reported under ("dense"
    is the Keras export's)."""
    return "export_sparse_dense" if representation == "dense" else representation


def export_all(model, directory, representations, tflite):
    """Every export of `model` under `directory`: {name: path}, plus the
    per-layer table `export_sparse(..., "auto")` returned."""
    paths = {"dense": os.path.join(directory, "dense")}
    keras_switch.strip_switches(model).export(paths["dense"], verbose=False)
    auto_layers = None
    for representation in ("auto", *representations):
        name = candidate(representation)
        paths[name] = os.path.join(directory, name)
        info = keras_switch.export_sparse(model, paths[name], representation=representation)
        if representation == "auto":
            auto_layers = info["layers"]
    if tflite:
        for name, sparse in (("tflite_dense", False), ("tflite_sparse", True)):
            paths[name] = os.path.join(directory, f"{name}.tflite")
            keras_switch.export_tflite(model, paths[name], sparse=sparse)
    return paths, auto_layers


def sizes_of(paths):
    return {name: int(export.gzip_size(path)) for name, path in paths.items()}


def unpruned_sizes(network, directory):
    """gzip'd sizes of `network` with every connection kept (set its masks
    first), the reference of the size ratios: {"saved_model": Keras'
    export of the stripped model, "stored_once": export_sparse's "dense"
    representation, "weights": the raw float32 weights}. Exports go under
    `directory`."""
    saved_model = os.path.join(directory, "unpruned")
    stripped = keras_switch.strip_switches(network)
    stripped.export(saved_model, verbose=False)
    # Keras' export() stores every variable twice; export_sparse's dense
    # representation stores each weight once.
    once = os.path.join(directory, "unpruned_once")
    keras_switch.export_sparse(network, once, representation="dense")
    return {
        "saved_model": int(export.gzip_size(saved_model)),
        "stored_once": int(export.gzip_size(once)),
        # The same float32 weights with no graph and no file format.
        "weights": len(gzip.compress(
            b"".join(w.tobytes() for w in stripped.get_weights()), 9, mtime=0)),
    }


def export_sizes(model, unpruned, directory):
    """gzip'd bytes of `export_sparse(model)` ("auto") against `unpruned`
    (the same network with every connection kept) as `unpruned_sizes` sizes
    it: {"sparse_bytes", "dense_once_bytes" (each weight stored once),
    "dense_saved_model_bytes" (Keras' `export()`), "weights_bytes", "ratio"
    (to stored once), "ratio_to_saved_model", "layers" (export_sparse's
    per-layer table)}. Exports go under `directory`."""
    sparse = os.path.join(directory, "sparse")
    info = keras_switch.export_sparse(model, sparse)
    reference = unpruned_sizes(unpruned, os.path.join(directory, "dense"))
    size = int(export.gzip_size(sparse))
    return {
        "sparse_bytes": size,
        "dense_once_bytes": reference["stored_once"],
        "dense_saved_model_bytes": reference["saved_model"],
        "weights_bytes": reference["weights"],
        "ratio": size / reference["stored_once"],
        "ratio_to_saved_model": size / reference["saved_model"],
        "layers": info["layers"],
    }


def input_for(model, batch, seed):
    """The fixed input every export of `model` is timed on: `batch` rows of
    uniform [0, 1) values drawn with `seed`."""
    shape = tuple(int(d) for d in model.inputs[0].shape[1:])
    rng = np.random.default_rng(seed)
    return rng.random((batch, *shape), dtype="float32")
