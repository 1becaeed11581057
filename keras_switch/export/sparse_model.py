"""`export_sparse`: a SavedModel whose switched layers are stored and
computed sparsely, and the rule that picks each layer's product."""

import os

import keras
import numpy as np

from keras_switch.export.saved_model import require_tensorflow_backend
from keras_switch.export.saved_model import save_serving
from keras_switch.sparse import REPRESENTATIONS
from keras_switch.sparse import SparseConv2D
from keras_switch.sparse import SparseDense
from keras_switch.sparse import SparseKernel
from keras_switch.sparse import batch_plan
from keras_switch.strip import strip_with_switched

# The "auto" rule: the CSR product ("hybrid") only for large, sparse kernels,
# the only ones where it beat the dense matmul on CPU, and no single-row
# `sparse_dense_matmul` plans, which made whole models slower. The timings:
# BENCHMARKS.md, "Sparse inference".
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

    Each switched Dense layer becomes a `keras_switch.sparse.SparseDense`:
    its kernel `kernel * mask` is stored compactly (nonzero values plus
    1-byte position gaps at typical sparsities) and multiplied with the
    chosen sparse product. Each other switched layer (a convolution, an
    EinsumDense) has its kernel stored the same way and computed densely
    (`SparseConv2D`, `SparseKernel`); other layers are kept as they are. The SavedModel has a `serve` endpoint (and a
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
        `{"directory": str, "layers": [{"name", "shape" (the kernel's),
        "nonzeros", "density", "representation"}, ...]}` over the switched
        layers, in model order.

    Raises:
        ValueError: for an unknown `representation`, a subclassed model or
            an unbuilt model.
    """
    require_tensorflow_backend("export_sparse")
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
    stripped, switched = strip_with_switched(model, "export_sparse")
    replacements, rows = {}, []
    for layer in switched:
        kernel = keras.ops.convert_to_numpy(layer.kernel)
        nonzeros = int(np.count_nonzero(kernel))
        density = nonzeros / kernel.size
        bias = keras.ops.convert_to_numpy(layer.bias) if layer.bias is not None else None
        common = dict(bias=bias, activation=layer.activation, name=layer.name,
                      dtype=layer.dtype_policy)
        if not isinstance(layer, (keras.layers.Dense, keras.layers.Conv2D)):
            chosen = "dense"  # compact storage, the plain layer's computation
            replacements[id(layer)] = SparseKernel.from_layer(layer)
        elif isinstance(layer, keras.layers.Conv2D):
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
    save_serving(inference, directory)
    return {"directory": os.fspath(directory), "layers": rows}
