import json

import keras
import numpy as np
import tensorflow as tf
from absl.testing import parameterized

import keras_switch
from keras_switch import SwitchedDense
from keras_switch import Switcher
from tests.test_case import TestCase


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
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(layer(x, training=True) ** 2)
        grads = tape.gradient(loss, switcher.trainable_variables)
        self.assertTrue(all(g is not None for g in grads))
        self.assertGreater(sum(float(tf.reduce_sum(tf.abs(g))) for g in grads), 0.0)
        # In inference the mask is a constant: no gradient reaches the switcher.
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(layer(x, training=False) ** 2)
        self.assertTrue(
            all(g is None for g in tape.gradient(loss, switcher.trainable_variables))
        )

    def test_switched_off_weights_get_no_gradient(self):
        layer = SwitchedDense(2, switcher=Switcher(), use_bias=False)
        layer.build((None, 2))
        layer.freeze_mask([[1.0, 0.0], [0.0, 1.0]])
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(layer(np.ones((3, 2), "float32")))
        grad = tape.gradient(loss, layer.kernel)
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


class StraightThroughTest(TestCase):
    def _forward_and_gradient(self, estimator):
        # 0.1 and 1.4: logits where `1 + p - p` does not round back to 1.
        logits = tf.constant([-3.0, -0.1, 0.1, 1.4])
        weights = tf.constant([1.0, 2.0, 3.0, 4.0])
        with tf.GradientTape() as tape:
            tape.watch(logits)
            mask = keras_switch.layers.straight_through(logits, estimator)
            total = tf.reduce_sum(mask * weights)
        return mask, tape.gradient(total, logits), logits, weights

    def test_sigmoid_estimator(self):
        mask, grad, logits, weights = self._forward_and_gradient("sigmoid")
        self.assertAllEqual(mask, [0.0, 0.0, 1.0, 1.0])  # exactly the hard mask
        p = tf.sigmoid(logits)
        self.assertAllClose(grad, weights * p * (1 - p))

    def test_identity_estimator(self):
        mask, grad, _, weights = self._forward_and_gradient("identity")
        self.assertAllEqual(mask, [0.0, 0.0, 1.0, 1.0])
        self.assertAllClose(grad, weights)

    def test_unknown_estimator_raises(self):
        with self.assertRaisesRegex(ValueError, "estimator.*'gumbel'"):
            keras_switch.layers.straight_through(tf.zeros(3), "gumbel")


if __name__ == "__main__":
    tf.test.main()
