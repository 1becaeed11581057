"""After training: export a switched model for inference.

Public names (`from keras_switch.export import ...`):

* `export_sparse`, `auto_representation`, `AUTO_MAX_DENSITY`,
  `AUTO_MIN_ENTRIES` (`sparse_model.py`): a SavedModel whose switched
  layers are `keras_switch.sparse` layers, stored and computed sparsely,
  and the per-layer choice of product.
* `export_tflite` (`tflite.py`): a TFLite flatbuffer with sparse kernels.
* `raw_size`, `gzip_size` (`sizes.py`): bytes of the exported files.
* `sparsity_report` and `strip_switches`, which live in
  `keras_switch.report` and `keras_switch.strip` (training needs them and
  never imports this package).

`saved_model.py` writes the SavedModel both exports start from.
"""

from keras_switch.export.sizes import gzip_size
from keras_switch.export.sizes import raw_size
from keras_switch.export.sparse_model import AUTO_MAX_DENSITY
from keras_switch.export.sparse_model import AUTO_MIN_ENTRIES
from keras_switch.export.sparse_model import auto_representation
from keras_switch.export.sparse_model import export_sparse
from keras_switch.export.tflite import export_tflite
from keras_switch.report import sparsity_report
from keras_switch.strip import strip_switches

__all__ = [
    "AUTO_MAX_DENSITY",
    "AUTO_MIN_ENTRIES",
    "auto_representation",
    "export_sparse",
    "export_tflite",
    "gzip_size",
    "raw_size",
    "sparsity_report",
    "strip_switches",
]
