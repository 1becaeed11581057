"""`save_serving`: a SavedModel of a Keras model's inference call.

Both exports write one: `export_sparse` as its result, `export_tflite` as the
TFLite converter's input.
"""

import os

import keras
import tensorflow as tf


def require_tensorflow_backend(what):
    """Raises unless Keras runs on TensorFlow, which `what` writes with.

    Raises:
        RuntimeError: on another Keras backend, saying how to export a
            model trained there (through a `.keras` file).
    """
    if keras.backend.backend() != "tensorflow":
        raise RuntimeError(
            f"keras_switch.{what} writes TensorFlow files and needs the TensorFlow "
            f"backend of Keras. Received: KERAS_BACKEND={keras.backend.backend()!r}. "
            "Save the model (`model.save('model.keras')`), then load it and export it "
            "in a process with KERAS_BACKEND=tensorflow: the file loads there with "
            "identical predictions and masks.")


def input_signature(model):
    """`tf.TensorSpec`s in the structure of `model`'s inputs (a Sequential
    model's single input, else `model.input`), batch size as the model has
    it."""
    if isinstance(model, keras.Sequential):
        structure = model.inputs[0]
    else:
        structure = model.input
    return keras.tree.map_structure(
        lambda t: tf.TensorSpec(t.shape, t.dtype, name=t.name), structure
    )


def save_serving(model, directory):
    """Writes a SavedModel of `model`'s inference call to `directory`: a
    `serve` endpoint and the `serving_default` signature, each variable
    stored once.

    The root is a plain `tf.Module` holding the model's variables, not the
    Keras objects, so nothing but the traced function and the variables is
    written, and the SavedModel loads without Keras or keras_switch.

    Args:
        model: A built Keras model with symbolic inputs (Sequential or
            functional).
        directory: Where to write the SavedModel.

    Raises:
        TypeError: if a weight of `model` is not backed by a `tf.Variable`.
    """
    root = tf.Module()
    variables = [weight.value for weight in model.weights]
    for variable in variables:
        if not isinstance(variable, tf.Variable):  # pragma: no cover
            raise TypeError(f"Expected a tf.Variable. Received: {variable!r}")
    root.weights = variables
    root.serve = tf.function(
        lambda inputs: model(inputs, training=False),
        input_signature=[input_signature(model)],
    )
    # The signature is given as the tf.function itself: a concrete function
    # traced here, outside the save, would be stored a second time.
    tf.saved_model.save(
        root, os.fspath(directory), signatures={"serving_default": root.serve}
    )
