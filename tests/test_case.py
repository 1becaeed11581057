"""Shared test helpers, on public Keras APIs only."""

import json
import os
import unittest

import keras
import numpy as np
import tensorflow as tf

import keras_switch


def tensorflow_only(reason):
    """Skips a test (or a test class) on Keras backends other than
    TensorFlow, saying why: tf.distribute, tf.function, TensorFlow files."""
    return unittest.skipUnless(keras.backend.backend() == "tensorflow", reason)


class TestCase(tf.test.TestCase):
    def setUp(self):
        super().setUp()
        # Without Keras' full gc.collect(): its cost grows with every object
        # the process's earlier tests left (~0.2 s a test early in a run, 2.5 s
        # late in a serial run). Python's collector still frees cycles as it
        # goes.
        keras.utils.clear_session(free_memory=False)
        keras.utils.set_random_seed(0)

    def _GetNdArray(self, a):
        # tf.test.TestCase's one conversion for every assertAll*: it reads a
        # torch tensor that records gradients only through Keras.
        if keras.ops.is_tensor(a) or isinstance(a, keras.Variable):
            a = keras.ops.convert_to_numpy(a)
        return super()._GetNdArray(a)

    def run_serialization_test(self, obj):
        """get_config -> JSON -> from_config -> get_config is the identity,
        and so is serialize/deserialize_keras_object."""
        config = obj.get_config()
        as_json = json.loads(json.dumps(config))  # tuples become lists
        revived = obj.__class__.from_config(as_json)
        self.assertEqual(as_json, json.loads(json.dumps(revived.get_config())))
        serialized = keras.saving.serialize_keras_object(obj)
        json.dumps(serialized)
        revived = keras.saving.deserialize_keras_object(serialized)
        self.assertEqual(as_json, json.loads(json.dumps(revived.get_config())))
        return revived

    def run_layer_test(
        self,
        layer_cls,
        init_kwargs,
        input_shape,
        expected_output_shape,
        expected_num_trainable_weights,
        expected_num_non_trainable_weights=0,
        supports_training=True,
    ):
        """Keras' `run_layer_test` (private in `keras.src.testing`), on public
        APIs: config round trips, an eager call, `compute_output_shape`, a
        symbolic call in a functional model, a `.keras` round trip in safe
        mode with equal predictions, and, with `supports_training`, one
        `fit()` step that moves every trainable weight."""
        layer = layer_cls(**init_kwargs)
        self.run_serialization_test(layer)
        x = np.random.RandomState(0).normal(size=input_shape).astype("float32")
        self.assertEqual(tuple(layer(x).shape), tuple(expected_output_shape))
        self.assertEqual(tuple(layer.compute_output_shape(input_shape)),
                         tuple(expected_output_shape))
        self.assertLen(layer.trainable_weights, expected_num_trainable_weights)
        self.assertLen(layer.non_trainable_weights, expected_num_non_trainable_weights)
        self.run_serialization_test(layer)  # once built, too

        inputs = keras.Input(tuple(input_shape[1:]))
        outputs = layer_cls(**init_kwargs)(inputs)
        self.assertEqual(tuple(outputs.shape), (None,) + tuple(expected_output_shape[1:]))
        model = keras.Model(inputs, outputs)
        path = os.path.join(self.get_temp_dir(), f"{layer_cls.__name__}.keras")
        model.save(path)
        loaded = keras.models.load_model(path)  # safe_mode=True
        self.assertAllClose(model.predict(x, verbose=0), loaded.predict(x, verbose=0))

        if supports_training:
            model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
            before = snapshot(model.trainable_weights)
            target = np.ones(expected_output_shape, "float32")
            model.fit(x, target, batch_size=len(x), epochs=1, verbose=0)
            still = [w.path for w, b in zip(model.trainable_weights, before)
                     if np.array_equal(w.numpy(), b)]
            self.assertEmpty(still, "trainable weights that one step did not move")


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


def modern_model(switcher):
    """Input 8x8x3 -> SwitchedDepthwiseConv2D -> 1x1 SwitchedConv2D -> rows
    as a sequence -> SwitchedConv1D -> SwitchedEinsumDense -> SwitchedDense."""
    inputs = keras.Input((8, 8, 3))
    x = keras_switch.SwitchedDepthwiseConv2D(3, depth_multiplier=2, padding="same",
                                             activation="relu", switcher=switcher,
                                             name="depthwise")(inputs)
    x = keras_switch.SwitchedConv2D(4, 1, switcher=switcher, name="pointwise")(x)
    x = keras.layers.Reshape((8, 32))(x)
    x = keras_switch.SwitchedConv1D(6, 3, padding="causal", activation="relu",
                                    switcher=switcher, name="conv1d")(x)
    x = keras_switch.SwitchedEinsumDense("abc,cd->abd", output_shape=(8, 5),
                                         bias_axes="d", switcher=switcher, name="einsum")(x)
    x = keras.layers.Flatten()(x)
    outputs = keras_switch.SwitchedDense(4, switcher=switcher, name="head")(x)
    return keras_switch.SwitchingModel(inputs, outputs)


def compile_for_classes(model, **kwargs):
    kwargs.setdefault("optimizer", keras.optimizers.Adam(1e-2))
    kwargs.setdefault("switch_optimizer", keras.optimizers.Adam(1e-2))
    model.compile(
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        **kwargs,
    )
    return model


def gradients(fn, variables):
    """The gradients of `fn()` (a scalar) with respect to `variables`, as numpy
    arrays, on any backend (through keras_switch's backend seam); a variable
    the loss does not reach gets zeros."""
    _, grads = keras_switch.backend.gradients(lambda: (fn(), None), variables)
    return [np.zeros(v.shape, "float32") if g is None else np.asarray(keras.ops.convert_to_numpy(g))
            for v, g in zip(variables, grads)]


def snapshot(variables):
    return [np.array(keras.ops.convert_to_numpy(v)) for v in variables]


_MIRRORED = []


def mirrored_strategy():
    """MirroredStrategy over the two logical CPUs (conftest.py), one for the
    whole process: a new MirroredStrategy restarts its collective instance
    keys, and TensorFlow's collective executor still holds the shapes of the
    previous one's (a "Shape mismatch in the collective instance" abort)."""
    if not _MIRRORED:
        _MIRRORED.append(tf.distribute.MirroredStrategy(["CPU:0", "CPU:1"]))
    return _MIRRORED[0]
