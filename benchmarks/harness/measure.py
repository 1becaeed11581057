"""What a finished run measured: its test accuracy and the exact zeros of
its final kernels (`sparsity`)."""

import keras
import numpy as np

from benchmarks.harness import baselines
from benchmarks.harness import sparsity


def accuracy(model, test):
    """Top-1 accuracy of `model` (logits out) on `test` ((x, y))."""
    xt, yt = test
    logits = model.predict(xt, batch_size=256, verbose=0)
    return float(np.mean(np.argmax(logits, axis=-1) == yt))


def kernels_of(model, names=None):
    """{name: kernel} of every Conv2D and Dense layer of a plain, masked or
    stripped model (kernel * mask where masked), or of the layers `names`."""
    layers = ([model.get_layer(name) for name in names] if names is not None else
              [l for l in model.layers if isinstance(l, (keras.layers.Conv2D,
                                                          keras.layers.Dense))])
    out = {}
    for layer in layers:
        kernel = keras.ops.convert_to_numpy(layer.kernel)
        if isinstance(layer, baselines.MASKED):
            kernel = kernel * keras.ops.convert_to_numpy(layer.mask)
        out[layer.name] = kernel
    return out


def result(model, test, seconds, every_kernel=False, **extra):
    """The result dict of a run whose final model is `model` (plain, masked
    or stripped): test accuracy, seconds (0.1 s), `extra`, and the
    `sparsity.fc_sparsities` of its FC layers, or with `every_kernel` the
    `sparsity.sparsities` of every conv and Dense kernel."""
    measured = (sparsity.sparsities(kernels_of(model)) if every_kernel else
                sparsity.fc_sparsities(kernels_of(model, baselines.FC_LAYERS),
                                       baselines.FC_LAYERS[-1]))
    return {"test_accuracy": accuracy(model, test), "train_seconds": round(seconds, 1),
            **extra, **measured}
