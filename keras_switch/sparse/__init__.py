"""Inference-only layers whose fixed kernels are stored and multiplied
sparsely: what `keras_switch.export_sparse` puts in place of each switched
layer.

* `codec.py`: the compact storage of a kernel (`encode_kernel`,
  `STORAGES`) and its decoding, to NumPy, graph constants and configs.
* `kernels.py`: the products `x @ kernel` (`PRODUCTS`, `REPRESENTATIONS`,
  `HYBRID_MIN_BATCH`) and the batch plans among them (`batch_plan`).
* `layers.py`: `SparseDense`, `SparseConv2D` and `SparseKernel`.

The names in parentheses are importable from `keras_switch.sparse` itself.
"""

from keras_switch.sparse.codec import STORAGES
from keras_switch.sparse.codec import encode_kernel
from keras_switch.sparse.kernels import HYBRID_MIN_BATCH
from keras_switch.sparse.kernels import PRODUCTS
from keras_switch.sparse.kernels import REPRESENTATIONS
from keras_switch.sparse.kernels import batch_plan
from keras_switch.sparse.layers import SparseConv2D
from keras_switch.sparse.layers import SparseDense
from keras_switch.sparse.layers import SparseKernel

__all__ = [
    "HYBRID_MIN_BATCH",
    "PRODUCTS",
    "REPRESENTATIONS",
    "STORAGES",
    "SparseConv2D",
    "SparseDense",
    "SparseKernel",
    "batch_plan",
    "encode_kernel",
]
