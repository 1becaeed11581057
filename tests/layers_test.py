import json
import os

import keras
import numpy as np
from keras import ops
import tensorflow as tf
from absl.testing import parameterized

import keras_switch
from keras_switch import SwitchedDense
from keras_switch import Switcher
from tests.test_case import TestCase
from tests.test_case import gradients


class SwitchedDenseTest(TestCase, parameterized.TestCase):
    def test_without_switcher_equals_dense_exactly(self):
        x = np.random.RandomState(0).normal(size=(5, 7)).astype("float32")
        dense = keras.layers.Dense(3, activation="tanh")
        switched = SwitchedDense(3, activation="tanh")
        dense.build((None, 7))
        switched.build((None, 7))
        switched.set_weights(dense.get_weights())
        self.assertEqual(len(switched.weights), 2)
        self.assertAllEqual(dense(x), switched(x))
        self.assertAllEqual(dense(x), switched(x, training=True))

    def test_all_ones_mask_equals_dense_exactly(self):
        x = np.random.RandomState(1).normal(size=(4, 6)).astype("float32")
        dense = keras.layers.Dense(5, activation="relu")
        switched = SwitchedDense(5, activation="relu", switcher=Switcher())
        dense.build((None, 6))
        switched.build((None, 6))
        switched.kernel.assign(dense.kernel)
        switched.bias.assign(dense.bias)
        # A fresh switcher starts with every switch on...
        self.assertAllEqual(switched.hard_mask(), np.ones((6, 5)))
        self.assertAllEqual(dense(x), switched(x))
        # ...and a frozen all-ones mask is the same Dense.
        switched.freeze_mask(np.ones((6, 5)))
        self.assertAllEqual(dense(x), switched(x))

    def test_hand_set_weights_and_mask(self):
        layer = SwitchedDense(2, switcher=Switcher())
        layer.build((None, 3))
        layer.kernel.assign([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
        layer.bias.assign([0.5, -0.5])
        layer.freeze_mask([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
        # [1, 1, 1] @ [[1, 0], [0, 4], [5, 6]] + [0.5, -0.5] = [6.5, 9.5]
        self.assertAllClose(layer(np.ones((1, 3), "float32")), [[6.5, 9.5]])
        # [2, 0, -1] @ ... = [2 - 5, -6] + bias = [-2.5, -6.5]
        self.assertAllClose(
            layer(np.array([[2.0, 0.0, -1.0]], "float32")), [[-2.5, -6.5]]
        )
        self.assertAllClose(layer.effective_kernel(), [[1, 0], [0, 4], [5, 6]])

    def test_frozen_layer_does_not_run_the_switcher(self):
        switcher = Switcher()
        layer = SwitchedDense(2, switcher=switcher)
        layer.build((None, 3))
        layer.freeze_mask()
        switcher.output_bias.assign([-100.0])  # would switch everything off
        self.assertAllEqual(layer.current_mask(), np.ones((3, 2)))
        layer.unfreeze_mask()
        self.assertAllEqual(layer.current_mask(), np.zeros((3, 2)))

    def test_switcher_gets_gradients_through_the_mask(self):
        switcher = Switcher()
        layer = SwitchedDense(4, switcher=switcher)
        x = np.random.RandomState(2).normal(size=(8, 5)).astype("float32")
        layer(x)
        grads = gradients(lambda: ops.sum(layer(x, training=True) ** 2),
                          switcher.trainable_variables)
        self.assertGreater(sum(float(np.abs(g).sum()) for g in grads), 0.0)
        # In inference the mask is a constant: no gradient reaches the switcher.
        grads = gradients(lambda: ops.sum(layer(x, training=False) ** 2),
                          switcher.trainable_variables)
        self.assertEqual(sum(float(np.abs(g).sum()) for g in grads), 0.0)

    def test_switched_off_weights_get_no_gradient(self):
        layer = SwitchedDense(2, switcher=Switcher(), use_bias=False)
        layer.build((None, 2))
        layer.freeze_mask([[1.0, 0.0], [0.0, 1.0]])
        [grad] = gradients(lambda: ops.sum(layer(np.ones((3, 2), "float32"))), [layer.kernel])
        self.assertAllEqual(grad, [[3.0, 0.0], [0.0, 3.0]])

    def test_inference_mask_is_deterministic(self):
        layer = SwitchedDense(3, switcher=Switcher(initial_logit=0.01))
        x = np.ones((2, 4), "float32")
        first = layer(x)
        for _ in range(3):
            self.assertAllEqual(first, layer(x))

    def test_nd_inputs(self):
        layer = SwitchedDense(3, switcher=Switcher())
        self.assertEqual(layer(np.ones((2, 5, 4), "float32")).shape, (2, 5, 3))

    def test_layer_test_with_and_without_a_switcher(self):
        # kernel, bias and the switcher's 5 trainable weights; mask,
        # switch_offset, mask_frozen and the switcher's threshold.
        self.run_layer_test(
            SwitchedDense, dict(units=3, activation="relu", switcher=Switcher()),
            input_shape=(4, 5), expected_output_shape=(4, 3),
            expected_num_trainable_weights=7, expected_num_non_trainable_weights=4,
        )
        self.run_layer_test(
            SwitchedDense, dict(units=3, use_bias=False), input_shape=(2, 6, 5),
            expected_output_shape=(2, 6, 3), expected_num_trainable_weights=1,
        )

    def test_serialization_is_json_and_round_trips(self):
        layer = SwitchedDense(
            3, activation="relu", switcher=Switcher(hidden_units=(4,)), name="sd"
        )
        revived = self.run_serialization_test(layer)
        self.assertIsInstance(revived.switcher, Switcher)
        self.assertEqual(revived.switcher.hidden_units, (4,))
        plain = SwitchedDense(3)
        self.assertNotIn("switcher", plain.get_config())
        self.run_serialization_test(plain)

    def test_sharing_scope_links_switchers_by_name(self):
        switcher = Switcher(name="shared")
        a = SwitchedDense(2, switcher=switcher)
        b = SwitchedDense(3, switcher=switcher)
        configs = [json.loads(json.dumps(layer.get_config())) for layer in (a, b)]
        separate = [SwitchedDense.from_config(c) for c in configs]
        self.assertIsNot(separate[0].switcher, separate[1].switcher)
        with keras_switch.switcher.sharing_scope():
            linked = [SwitchedDense.from_config(c) for c in configs]
        self.assertIs(linked[0].switcher, linked[1].switcher)

    @parameterized.named_parameters(
        ("zero", 0), ("negative", -3), ("float", 2.5), ("none", None), ("string", "4")
    )
    def test_invalid_units_raise(self, units):
        with self.assertRaisesRegex(ValueError, "expected a positive integer"):
            SwitchedDense(units)

    def test_invalid_switcher_raises(self):
        with self.assertRaisesRegex(TypeError, "keras_switch.Switcher"):
            SwitchedDense(2, switcher=keras.layers.Dense(2))

    def test_freeze_errors_are_clear(self):
        with self.assertRaisesRegex(ValueError, "has no switcher"):
            plain = SwitchedDense(2)
            plain.build((None, 2))
            plain.freeze_mask()
        with self.assertRaisesRegex(ValueError, "before it is built"):
            SwitchedDense(2, switcher=Switcher()).freeze_mask()
        layer = SwitchedDense(2, switcher=Switcher())
        layer.build((None, 3))
        with self.assertRaisesRegex(ValueError, r"expected a mask of shape \(3, 2\)"):
            layer.freeze_mask(np.ones((2, 2)))

    def test_works_in_sequential_with_plain_fit(self):
        switcher = Switcher()
        model = keras.Sequential(
            [
                keras.Input((6,)),
                SwitchedDense(8, activation="relu", switcher=switcher),
                SwitchedDense(2, switcher=switcher),
            ]
        )
        model.compile("adam", "mse")
        before = [np.array(v) for v in switcher.trainable_variables]
        model.fit(np.ones((16, 6)), np.zeros((16, 2)), epochs=2, verbose=0)
        after = [np.array(v) for v in switcher.trainable_variables]
        # Plain fit trains the shared switcher jointly (straight-through).
        self.assertTrue(any(np.any(a != b) for a, b in zip(before, after)))
        self.assertEqual(model.predict(np.ones((3, 6)), verbose=0).shape, (3, 2))


def small_cnn(switcher, data_format="channels_last"):
    """Input 8x8x3 -> SwitchedConv2D (same) -> SwitchedConv2D (strided,
    dilated off) -> Flatten -> SwitchedDense: a SwitchingModel."""
    shape = (8, 8, 3) if data_format == "channels_last" else (3, 8, 8)
    inputs = keras.Input(shape)
    x = keras_switch.SwitchedConv2D(4, 3, padding="same", activation="relu",
                                    data_format=data_format, switcher=switcher, name="conv1")(inputs)
    x = keras_switch.SwitchedConv2D(6, (2, 3), strides=2, data_format=data_format,
                                    switcher=switcher, name="conv2")(x)
    x = keras.layers.Flatten()(x)
    outputs = SwitchedDense(5, switcher=switcher, name="head")(x)
    return keras_switch.SwitchingModel(inputs, outputs)


class SwitchedConv2DTest(TestCase, parameterized.TestCase):
    def _pair(self, **kwargs):
        """A plain Conv2D and a SwitchedConv2D with the same arguments and weights."""
        plain = keras.layers.Conv2D(**kwargs)
        switched = keras_switch.SwitchedConv2D(switcher=Switcher(), **kwargs)
        x = np.random.RandomState(0).normal(size=(2, 9, 7, 4)).astype("float32")
        plain(x), switched(x)
        rng = np.random.RandomState(1)
        for a, b in zip(plain.weights, switched.weights):
            value = rng.normal(size=a.shape).astype("float32")
            a.assign(value), b.assign(value)
        return plain, switched, x

    @parameterized.parameters(
        dict(filters=3, kernel_size=3),
        dict(filters=5, kernel_size=(2, 3), strides=2, padding="same", activation="relu"),
        dict(filters=2, kernel_size=3, dilation_rate=2, use_bias=False),
    )
    def test_all_ones_mask_equals_conv2d_exactly(self, **kwargs):
        plain, switched, x = self._pair(**kwargs)
        self.assertAllEqual(switched.hard_mask(), np.ones(switched.kernel.shape))
        self.assertAllEqual(switched(x), plain(x))
        self.assertAllEqual(switched(x, training=True), plain(x))

    def test_mask_has_the_kernel_shape_and_zeroes_its_entries(self):
        plain, switched, x = self._pair(filters=3, kernel_size=3)
        mask = np.random.RandomState(2).binomial(1, 0.3, switched.kernel.shape).astype("float32")
        switched.freeze_mask(mask)
        self.assertEqual(tuple(switched.mask.shape), (3, 3, 4, 3))
        self.assertAllEqual(switched.effective_kernel(), plain.kernel.numpy() * mask)
        expected = keras.ops.conv(x, plain.kernel.numpy() * mask) + plain.bias.numpy()
        self.assertAllClose(switched(x), expected, atol=1e-5)

    def test_switcher_reads_the_kernel_as_a_matrix(self):
        _, switched, _ = self._pair(filters=3, kernel_size=(2, 3))
        matrix = switched.switch_matrix()
        self.assertEqual(tuple(matrix.shape), (2 * 3 * 4, 3))
        self.assertAllEqual(
            switched.switch_logits(),
            np.reshape(ops.convert_to_numpy(switched.switcher(matrix)), (2, 3, 4, 3)),
        )
        self.assertEqual(tuple(switched.switch_probabilities().shape), (2, 3, 4, 3))

    def test_switched_off_weights_get_no_gradient(self):
        _, switched, x = self._pair(filters=3, kernel_size=3)
        mask = np.zeros(switched.kernel.shape, "float32")
        mask[..., 0] = 1.0
        switched.freeze_mask(mask)
        [grad] = gradients(lambda: ops.sum(switched(x, training=True)), [switched.kernel])
        self.assertAllEqual(grad[..., 1:], np.zeros_like(grad[..., 1:]))
        self.assertGreater(np.abs(grad[..., 0]).sum(), 0.0)

    def test_layer_test_with_and_without_a_switcher(self):
        # kernel, bias and the switcher's 5 trainable weights; mask,
        # switch_offset, mask_frozen and the switcher's threshold.
        self.run_layer_test(
            keras_switch.SwitchedConv2D,
            dict(filters=3, kernel_size=3, padding="same", activation="relu",
                 switcher=Switcher()),
            input_shape=(2, 6, 6, 2), expected_output_shape=(2, 6, 6, 3),
            expected_num_trainable_weights=7, expected_num_non_trainable_weights=4,
        )
        self.run_layer_test(
            keras_switch.SwitchedConv2D, dict(filters=3, kernel_size=2, use_bias=False),
            input_shape=(2, 5, 5, 2), expected_output_shape=(2, 4, 4, 3),
            expected_num_trainable_weights=1,
        )

    def test_serialization_and_keras_file_keep_the_mask(self):
        layer = keras_switch.SwitchedConv2D(4, 3, switcher=Switcher(hidden_units=(4,)), name="sc")
        revived = self.run_serialization_test(layer)
        self.assertIsInstance(revived.switcher, Switcher)
        model = small_cnn(Switcher())
        x = np.random.RandomState(0).normal(size=(4, 8, 8, 3)).astype("float32")
        model(x)
        for layer in model.switched_layers:
            rng = np.random.RandomState(3)
            layer.freeze_mask(rng.binomial(1, 0.5, layer.kernel.shape))
        path = os.path.join(self.get_temp_dir(), "cnn.keras")
        model.save(path)
        loaded = keras.models.load_model(path)  # safe mode
        self.assertEqual(len(loaded.switchers), 1)
        for have, want in zip(loaded.switched_layers, model.switched_layers):
            self.assertAllEqual(have.mask.numpy(), want.mask.numpy())
            self.assertEqual(float(have.mask_frozen.numpy()), 1.0)
        self.assertAllEqual(loaded.predict(x, verbose=0), model.predict(x, verbose=0))

    def test_lora_and_bad_switcher_raise(self):
        with self.assertRaisesRegex(ValueError, "does not support LoRA"):
            keras_switch.SwitchedConv2D(3, 3, lora_rank=2)
        with self.assertRaisesRegex(TypeError, "expected a `keras_switch.Switcher`"):
            keras_switch.SwitchedConv2D(3, 3, switcher="no")

    @parameterized.parameters("channels_last", "channels_first")
    def test_trains_to_a_target_and_strips_to_conv2d(self, data_format):
        if data_format == "channels_first" and not tf.config.list_physical_devices("GPU"):
            x_shape = (3, 8, 8)
            # TensorFlow's CPU Conv2D has no NCHW kernel: the layer must still
            # build and report the same shapes; training runs on GPUs only.
            model = small_cnn(Switcher(), data_format)
            self.assertEqual(tuple(model.get_layer("conv1").mask.shape), (3, 3, 3, 4))
            self.assertEqual(model.input_shape[1:], x_shape)
            return
        model = small_cnn(Switcher(), data_format)
        rng = np.random.RandomState(0)
        x = rng.normal(size=(64, 8, 8, 3)).astype("float32")
        y = rng.randint(0, 5, size=64)
        model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      target_sparsity=0.8)
        model.fit(x, y, epochs=3, batch_size=16, verbose=0)
        report = keras_switch.sparsity_report(model)
        self.assertAlmostEqual(report["overall"], 0.8, delta=0.005)
        self.assertEqual([row["shape"] for row in report["layers"]],
                         [[3, 3, 3, 4], [2, 3, 4, 6], [72, 5]])
        for row in report["layers"]:
            self.assertGreater(row["sparsity"], 0.0)
        stripped = keras_switch.strip_switches(model)
        self.assertEqual([type(layer).__name__ for layer in stripped.layers[1:]],
                         ["Conv2D", "Conv2D", "Flatten", "Dense"])
        self.assertAllClose(stripped.predict(x, verbose=0), model.predict(x, verbose=0),
                            atol=1e-5)
        self.assertEqual(int(np.count_nonzero(stripped.get_layer("conv1").kernel.numpy())),
                         report["layers"][0]["nonzeros"])


class NeighboursTest(TestCase):
    def _chain(self, features=None):
        from keras_switch.switcher import DEFAULT_FEATURES

        switcher = Switcher(features=features or DEFAULT_FEATURES + ("unit_in", "unit_out"))
        inputs = keras.Input((8, 8, 1))
        x = keras_switch.SwitchedConv2D(2, 3, switcher=switcher, name="conv")(inputs)
        x = keras.layers.Flatten()(x)
        x = SwitchedDense(5, switcher=switcher, name="a")(x)
        x = SwitchedDense(4, switcher=switcher, name="b")(x)
        x = SwitchedDense(3, switcher=switcher, name="c")(x)
        return keras_switch.SwitchingModel(inputs, x)

    def test_chained_dense_layers_are_linked(self):
        model = self._chain()
        names = {layer.name: tuple(n.name if n else None for n in layer.neighbours())
                 for layer in model.switched_layers}
        # The convolution is not part of a Dense chain.
        self.assertEqual(names, {"conv": (None, None), "a": (None, "b"), "b": ("a", "c"),
                                 "c": ("b", None)})
        # Links are not Keras tracking: no layer holds its neighbours' weights
        # (kernel, bias, mask, switch_offset, mask_frozen, the switcher's 6).
        self.assertLen(model.get_layer("b").weights, 11)

    def test_unit_context_is_the_neighbours_live_weight(self):
        model = self._chain()
        a, b, c = (model.get_layer(name) for name in "abc")
        a.freeze_mask(np.random.RandomState(0).binomial(1, 0.5, a.kernel.shape))
        unit_in, unit_out = b.unit_context()
        live_in = np.abs(a.kernel.numpy() * a.mask.numpy()).sum(axis=0)
        live_out = np.abs(c.kernel.numpy() * c.mask.numpy()).sum(axis=1)
        self.assertAllClose(unit_in, live_in / live_in.mean(), atol=1e-5)
        self.assertAllClose(unit_out, live_out / live_out.mean(), atol=1e-5)
        self.assertAllEqual(a.unit_context()[0], np.ones(a.kernel.shape[0]))  # no previous
        self.assertIsNone(self._chain(features=("magnitude",)).get_layer("b").unit_context())

    def test_trains_saves_and_loads(self):
        model = self._chain()
        x = np.random.RandomState(0).normal(size=(64, 8, 8, 1)).astype("float32")
        y = np.random.RandomState(1).randint(0, 3, size=64)
        model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      target_sparsity=0.7)
        model.fit(x, y, epochs=2, batch_size=16, verbose=0)
        self.assertAlmostEqual(keras_switch.sparsity_report(model)["overall"], 0.7, delta=0.01)
        path = os.path.join(self.get_temp_dir(), "chain.keras")
        model.save(path)
        loaded = keras.models.load_model(path)
        self.assertEqual(loaded.get_layer("b").neighbours()[0].name, "a")
        self.assertAllEqual(loaded.predict(x, verbose=0), model.predict(x, verbose=0))

    def _forward_and_gradient(self, estimator):
        # 0.1 and 1.4: logits where `1 + p - p` does not round back to 1.
        logits = keras.Variable([-3.0, -0.1, 0.1, 1.4])
        weights = np.array([1.0, 2.0, 3.0, 4.0], "float32")
        mask = keras_switch.layers.straight_through(logits, estimator)
        [grad] = gradients(
            lambda: ops.sum(keras_switch.layers.straight_through(logits, estimator)
                            * ops.convert_to_tensor(weights)),
            [logits])
        return mask, grad, keras.ops.convert_to_numpy(logits), weights

    def test_sigmoid_estimator(self):
        mask, grad, logits, weights = self._forward_and_gradient("sigmoid")
        self.assertAllEqual(mask, [0.0, 0.0, 1.0, 1.0])  # exactly the hard mask
        p = 1.0 / (1.0 + np.exp(-logits))
        self.assertAllClose(grad, weights * p * (1 - p))

    def test_identity_estimator(self):
        mask, grad, _, weights = self._forward_and_gradient("identity")
        self.assertAllEqual(mask, [0.0, 0.0, 1.0, 1.0])
        self.assertAllClose(grad, weights)

    def test_unknown_estimator_raises(self):
        with self.assertRaisesRegex(ValueError, "estimator.*'gumbel'"):
            keras_switch.layers.straight_through(np.zeros(3, "float32"), "gumbel")


if __name__ == "__main__":
    tf.test.main()
