"""`export_tflite`: a TFLite flatbuffer of the stripped model."""

import os
import tempfile

import tensorflow as tf

from keras_switch.export.saved_model import require_tensorflow_backend
from keras_switch.export.saved_model import save_serving
from keras_switch.strip import strip_with_switched


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
    require_tensorflow_backend("export_tflite")
    stripped, _ = strip_with_switched(model, "export_tflite")
    with tempfile.TemporaryDirectory() as saved_model:
        save_serving(stripped, saved_model)
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
