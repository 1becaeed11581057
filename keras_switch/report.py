"""`sparsity_report`: how sparse the switched layers of a model are.

Training reads it (the model's budget outcome and target shortfall, the
TensorBoard callback), and training never imports the export: so it lives
here, on the switched layers and NumPy alone.
"""

import keras
import numpy as np

from keras_switch.layers import switched_layers


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
