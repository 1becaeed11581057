"""trainers/warm_start.py in process: what --init_from copies, and its errors."""

import contextlib
import io
import os
import warnings

import keras
import numpy as np
import tensorflow as tf

import keras_switch
from configs import lenet300_fashion_mnist
from tests.helpers import save_dense_lenet300
from tests.test_case import TestCase
from trainers import train_lib
from trainers.preflight import ConfigError
from trainers.warm_start import warm_start


def _config(model):
    config = lenet300_fashion_mnist.get_config()
    config.model = model
    return config


class WarmStartTest(TestCase):
    def test_copies_an_export_into_a_fresh_switched_model(self):
        config = _config("lenet5")
        trained = train_lib.build_model(config, (28, 28))
        path = os.path.join(self.create_tempdir().full_path, "model.keras")
        export = keras_switch.strip_switches(trained)  # as export/model.keras
        export.save(path)
        keras.utils.clear_session()  # the same layer names again
        fresh = train_lib.build_model(config, (28, 28))
        self.assertNotAllClose(fresh.get_layer("fc1").kernel, export.get_layer("fc1").kernel)
        with contextlib.redirect_stdout(io.StringIO()) as out:
            warm_start(fresh, path)
        self.assertRegex(out.getvalue(), r"^Initialised 5 layer\(s\) from .*/model\.keras: "
                                         r"conv1, conv2, fc1, fc2, fc3\n$")
        for layer in export.layers:
            for weight, target in zip(layer.weights, fresh.get_layer(layer.name).weights):
                self.assertAllEqual(weight.numpy(), target.numpy())

    def test_a_plain_zoo_model_warm_starts_every_switched_layer(self):
        config = _config("lenet5")
        config.switched_layers = "all"
        pretrained = keras_switch.models.lenet_5()  # plain Keras, as a user trains it
        path = os.path.join(self.create_tempdir().full_path, "pretrained.keras")
        pretrained.save(path)
        model = train_lib.build_model(config, (28, 28))
        with contextlib.redirect_stdout(io.StringIO()):
            warm_start(model, path)
        self.assertEqual([type(layer).__name__ for layer in model.switched_layers],
                         ["SwitchedConv2D"] * 2 + ["SwitchedDense"] * 3)
        x = np.random.RandomState(0).normal(size=(4, 28, 28)).astype("float32")
        # Every switch starts on: the switched model predicts what the pretrained one does.
        self.assertAllEqual(model.predict(x, verbose=0), pretrained.predict(x, verbose=0))

    def test_none_is_a_no_op(self):
        model = train_lib.build_model(_config("lenet300"), (28, 28))
        before = [w.numpy() for w in model.weights]
        warm_start(model, None)
        for old, new in zip(before, model.weights):
            self.assertAllEqual(old, new.numpy())

    def test_shape_mismatch_names_the_layer(self):
        path = os.path.join(self.create_tempdir().full_path, "narrow.keras")
        save_dense_lenet300(path, fc1_units=50)
        model = train_lib.build_model(_config("lenet300"), (28, 28))
        before = model.get_layer("fc2").kernel.numpy()
        with self.assertRaisesRegex(
            ConfigError,
            r"--init_from=.*/narrow\.keras does not fit the model: Layer 'fc1' "
            r"kernel has shape \(784, 50\) in the source model but \(784, 300\) "
            r"in the target model",
        ):
            warm_start(model, path)
        # Shapes are checked before anything is copied.
        self.assertAllEqual(model.get_layer("fc2").kernel.numpy(), before)

    def test_lambda_layer_is_refused_in_safe_mode(self):
        inputs = keras.Input((28, 28))
        doubled = keras.layers.Lambda(lambda x: x * 2.0, name="fc1")(inputs)
        path = os.path.join(self.create_tempdir().full_path, "lambda.keras")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Keras may warn about lambdas
            keras.Model(inputs, doubled).save(path)
        model = train_lib.build_model(_config("lenet300"), (28, 28))
        with self.assertRaisesRegex(
            ConfigError,
            r"Cannot load --init_from=.*/lambda\.keras: ValueError: .*safe_mode",
        ):
            warm_start(model, path)

    def test_no_matching_layer(self):
        inputs = keras.Input((28, 28))
        outputs = keras.layers.Dense(10, name="head")(keras.layers.Flatten()(inputs))
        path = os.path.join(self.create_tempdir().full_path, "other.keras")
        keras.Model(inputs, outputs).save(path)
        model = train_lib.build_model(_config("lenet300"), (28, 28))
        with self.assertRaisesRegex(
            ConfigError,
            r"--init_from=.*other\.keras does not fit the model: No layer of the "
            r"source model .* matches a layer of the target model 'lenet_300_100' "
            r"by name\. Layers with weights in the source: \['head'\]; in the "
            r"target: \['fc1', 'fc2', 'fc3'\]",
        ):
            warm_start(model, path)


if __name__ == "__main__":
    tf.test.main()
