"""keras-switch: learn sparse fully connected layers with a switcher network.

Public API: `Switcher`, the switched layers (`SwitchedDense`, `SwitchedConv1D`,
`SwitchedConv2D`, `SwitchedDepthwiseConv2D`, `SwitchedEinsumDense`,
`SwitchedMultiHeadAttention`), `SwitchingModel`, `SwitchSchedule`,
the sparsity controls `TargetSparsity`, `SparsityPenalty`, `AccuracyBudget`,
`SparsityControl`,
`switch_model` (switch an existing Keras model), `sparsity_report`,
`strip_switches`, `export_sparse` (a SavedModel whose
switched layers are stored and computed sparsely), `export_tflite`.
"""

# keras_switch.backend refuses a Keras backend it cannot train on.
from keras_switch.convert import switch_model
from keras_switch.layers import SwitchedConv1D
from keras_switch.layers import SwitchedConv2D
from keras_switch.layers import SwitchedDense
from keras_switch.layers import SwitchedDepthwiseConv2D
from keras_switch.layers import SwitchedEinsumDense
from keras_switch.layers import SwitchedMultiHeadAttention
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

# What writes TensorFlow files (SavedModel, TFLite, TensorBoard summaries)
# is imported on first use: on the JAX backend TensorFlow may be absent.
_NEEDS_TENSORFLOW = {"SwitchSummaries": "keras_switch.callbacks",
                     "export_sparse": "keras_switch.export",
                     "export_tflite": "keras_switch.export"}


def __getattr__(name):
    if name in _NEEDS_TENSORFLOW:
        import importlib

        try:
            module = importlib.import_module(_NEEDS_TENSORFLOW[name])
        except ImportError as error:
            raise ImportError(
                f"keras_switch.{name} needs TensorFlow. Install it with "
                "`pip install 'keras-switch[cpu]'`.") from error
        return getattr(module, name)
    raise AttributeError(f"module 'keras_switch' has no attribute {name!r}")

__all__ = [
    "Switcher",
    "SwitchedDense",
    "SwitchedConv1D",
    "SwitchedConv2D",
    "SwitchedDepthwiseConv2D",
    "SwitchedEinsumDense",
    "SwitchedMultiHeadAttention",
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
