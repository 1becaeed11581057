"""Shared test helpers, on public Keras APIs only."""

import json

import keras
import numpy as np
import tensorflow as tf

import keras_switch


class TestCase(tf.test.TestCase):
    def setUp(self):
        super().setUp()
        keras.utils.clear_session()
        keras.utils.set_random_seed(0)

    def run_serialization_test(self, obj):
        """get_config -> JSON -> from_config -> get_config is the identity,
        and so is serialize/deserialize_keras_object."""
        config = obj.get_config()
        json.dumps(config)
        revived = obj.__class__.from_config(json.loads(json.dumps(config)))
        self.assertEqual(config, revived.get_config())
        serialized = keras.saving.serialize_keras_object(obj)
        json.dumps(serialized)
        revived = keras.saving.deserialize_keras_object(serialized)
        self.assertEqual(config, revived.get_config())
        return revived


def digits(n_train=1400):
    """scikit-learn's bundled 8x8 digits (real data, offline), scaled to [0, 1]."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = (data.data / 16.0).astype("float32")
    y = data.target.astype("int32")
    return (x[:n_train], y[:n_train]), (x[n_train:], y[n_train:])


def mlp(units=(32, 16), num_classes=10, input_dim=64, switcher=None):
    """A small functional SwitchingModel: input_dim -> units... -> classes."""
    switcher = keras_switch.Switcher() if switcher is None else switcher
    inputs = keras.Input((input_dim,))
    x = inputs
    for width in units:
        x = keras_switch.SwitchedDense(width, activation="relu", switcher=switcher)(x)
    outputs = keras_switch.SwitchedDense(num_classes, switcher=switcher)(x)
    return keras_switch.SwitchingModel(inputs, outputs)


def compile_for_classes(model, **kwargs):
    kwargs.setdefault("task_optimizer", keras.optimizers.Adam(1e-2))
    kwargs.setdefault("switch_optimizer", keras.optimizers.Adam(1e-2))
    model.compile(
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        **kwargs,
    )
    return model


def snapshot(variables):
    return [np.array(v.numpy()) for v in variables]
