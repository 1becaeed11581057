"""keras_switch.convert.copy_weights: exact weights copied by layer name,
and the errors that name what does not fit."""

import keras
import numpy as np
import tensorflow as tf

from keras_switch import SwitchedDense
from keras_switch import Switcher
from keras_switch import SwitchingModel
from keras_switch.convert import copy_weights
from tests.test_case import TestCase
from tests.test_case import snapshot


def dense_net(hidden=3, use_bias=True, head="head"):
    inputs = keras.Input((4,))
    x = keras.layers.Dense(hidden, activation="relu", use_bias=use_bias, name="hidden")(inputs)
    x = keras.layers.BatchNormalization(name="norm")(x)
    outputs = keras.layers.Dense(2, name=head)(x)
    return keras.Model(inputs, outputs, name="dense_net")


def switched_net(hidden=3, extra=False):
    switcher = Switcher()
    inputs = keras.Input((4,))
    x = SwitchedDense(hidden, activation="relu", switcher=switcher, name="hidden")(inputs)
    x = keras.layers.BatchNormalization(name="norm")(x)
    if extra:
        x = SwitchedDense(hidden, switcher=switcher, name="extra")(x)
    outputs = SwitchedDense(2, switcher=switcher, name="head")(x)
    return SwitchingModel(inputs, outputs, name="switched_net")


def set_weights(model, seed=1):
    """Distinct, hand-known values in every weight of `model`."""
    rng = np.random.RandomState(seed)
    for variable in model.weights:
        variable.assign(rng.normal(size=variable.shape).astype(variable.dtype))


class CopyWeightsTest(TestCase):
    def test_dense_into_switched_copies_exact_weights(self):
        source, target = dense_net(), switched_net()
        set_weights(source)
        switcher_before = snapshot(target.switchers[0].weights)
        masks_before = [layer.mask.numpy() for layer in target.switched_layers]
        copied = copy_weights(source, target)
        self.assertEqual(copied, {"matched": ["hidden", "norm", "head"], "fresh": [],
                                  "ignored": []})
        for name in ("hidden", "head"):
            self.assertAllEqual(target.get_layer(name).kernel.numpy(),
                                source.get_layer(name).kernel.numpy())
            self.assertAllEqual(target.get_layer(name).bias.numpy(),
                                source.get_layer(name).bias.numpy())
        # BatchNormalization: all four weights, moving statistics included.
        for have, want in zip(target.get_layer("norm").weights, source.get_layer("norm").weights):
            self.assertAllEqual(have.numpy(), want.numpy())
        # The switcher and the masks are left alone.
        for have, want in zip(target.switchers[0].weights, switcher_before):
            self.assertAllEqual(have.numpy(), want)
        for layer, mask in zip(target.switched_layers, masks_before):
            self.assertAllEqual(layer.mask.numpy(), mask)

    def test_switched_into_dense(self):
        source, target = switched_net(), dense_net()
        set_weights(source)
        copy_weights(source, target)
        self.assertAllEqual(target.get_layer("hidden").kernel.numpy(),
                            source.get_layer("hidden").kernel.numpy())
        # Same predictions: every switch of a fresh switched layer is on.
        source.get_layer("norm").set_weights(target.get_layer("norm").get_weights())
        x = np.random.RandomState(0).normal(size=(5, 4)).astype("float32")
        for layer in source.switched_layers:
            layer.freeze_mask(np.ones(layer.kernel.shape, "float32"))
        self.assertAllClose(target.predict(x, verbose=0), source.predict(x, verbose=0))

    def test_lists_fresh_and_ignored_layers(self):
        source, target = dense_net(head="classifier"), switched_net(extra=True)
        set_weights(source)
        copied = copy_weights(source, target)
        self.assertEqual(copied, {"matched": ["hidden", "norm"], "fresh": ["extra", "head"],
                                  "ignored": ["classifier"]})

    def test_shape_mismatch_names_layer_weight_and_shapes(self):
        source, target = dense_net(hidden=5), switched_net(hidden=3)
        before = snapshot(target.weights)
        with self.assertRaisesRegex(
            ValueError,
            r"^Layer 'hidden' kernel has shape \(4, 5\) in the source model but "
            r"\(4, 3\) in the target model\.$",
        ):
            copy_weights(source, target)
        # Everything is checked before anything is copied.
        for have, want in zip(target.weights, before):
            self.assertAllEqual(have.numpy(), want)

    def test_weight_names_mismatch(self):
        source, target = dense_net(use_bias=False), switched_net()
        with self.assertRaisesRegex(
            ValueError,
            r"^Layer 'hidden' holds weights \['kernel'\] in the source model but "
            r"\['kernel', 'bias'\] in the target model\.$",
        ):
            copy_weights(source, target)

    def test_no_matching_layer_lists_both_sets(self):
        inputs = keras.Input((4,))
        source = keras.Model(inputs, keras.layers.Dense(2, name="other")(inputs), name="src")
        with self.assertRaisesRegex(
            ValueError,
            r"^No layer of the source model 'src' matches a layer of the target "
            r"model 'switched_net' by name\. Layers with weights in the source: "
            r"\['other'\]; in the target: \['head', 'hidden', 'norm'\]\.$",
        ):
            copy_weights(source, switched_net())

    def test_nested_models_are_walked(self):
        inner = dense_net()
        inputs = keras.Input((4,))
        outer = keras.Model(inputs, inner(inputs), name="outer")
        set_weights(outer)
        target = switched_net()
        self.assertEqual(copy_weights(outer, target)["matched"], ["hidden", "norm", "head"])
        self.assertAllEqual(target.get_layer("head").kernel.numpy(),
                            inner.get_layer("head").kernel.numpy())


if __name__ == "__main__":
    tf.test.main()
