"""keras-switch: learn sparse fully connected layers with a switcher network.

Public API: `Switcher`, `SwitchedDense`, `SwitchedConv2D`, `SwitchingModel`, `SwitchSchedule`,
the sparsity controls `TargetSparsity`, `SparsityPenalty`, `AccuracyBudget`,
`SparsityControl`,
`switch_model` (switch an existing Keras model), `sparsity_report`,
`strip_switches`, `export_sparse` (a SavedModel whose
switched layers are stored and computed sparsely), `export_tflite`.
"""

import keras as _keras

if _keras.backend.backend() != "tensorflow":
    raise ImportError(
        "keras_switch needs the TensorFlow backend of Keras 3 (it trains with "
        "tf.GradientTape and tf.distribute). Received: KERAS_BACKEND="
        f"{_keras.backend.backend()!r}. Set KERAS_BACKEND=tensorflow."
    )

try:
    import tensorflow as _tf  # noqa: F401
except ImportError as error:  # pragma: no cover - depends on the install
    raise ImportError(
        "keras_switch needs TensorFlow. Install it with "
        "`pip install 'keras-switch[cpu]'` (CPU wheel) or "
        "`pip install 'keras-switch[gpu]'` (CUDA)."
    ) from error

from keras_switch.callbacks import SwitchSummaries
from keras_switch.convert import switch_model
from keras_switch.export import export_sparse
from keras_switch.export import export_tflite
from keras_switch.layers import SwitchedConv2D
from keras_switch.layers import SwitchedDense
from keras_switch.model import SwitchingModel
from keras_switch.report import sparsity_report
from keras_switch.schedule import SwitchSchedule
from keras_switch.budget import AccuracyBudget
from keras_switch.sparsity import SparsityControl
from keras_switch.sparsity import SparsityPenalty
from keras_switch.sparsity import TargetSparsity
from keras_switch.strip import strip_switches
from keras_switch.switcher import Switcher

__version__ = "0.1.0"

__all__ = [
    "Switcher",
    "SwitchedDense",
    "SwitchedConv2D",
    "SwitchingModel",
    "SwitchSchedule",
    "TargetSparsity",
    "SparsityPenalty",
    "AccuracyBudget",
    "SparsityControl",
    "sparsity_report",
    "strip_switches",
    "export_sparse",
    "export_tflite",
    "switch_model",
    "SwitchSummaries",
]
