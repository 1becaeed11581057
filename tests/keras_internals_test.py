"""Pins what keras_switch/_keras_internals.py assumes about Keras.

If one of these fails after a Keras upgrade, update _keras_internals.py (and
only it) before anything else.
"""

import inspect

import keras
import numpy as np
import tensorflow as tf

from keras_switch import _keras_internals
from tests.test_case import TestCase


class KerasInternalsTest(TestCase):
    def test_functional_class_is_what_keras_model_builds(self):
        inputs = keras.Input((2,))
        model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
        self.assertIs(type(model), _keras_internals.Functional)
        self.assertTrue(issubclass(_keras_internals.Functional, keras.Model))
        args = inspect.getfullargspec(_keras_internals.Functional.__init__).args
        self.assertEqual(args[:4], ["self", "inputs", "outputs", "name"])

    def test_keras_still_rebases_functional_subclasses(self):
        # The trap SwitchingModel works around: if Keras stops doing this, the
        # FunctionalSwitchingModel indirection can go.
        class Probe(keras.Model):
            pass

        inputs = keras.Input((2,))
        Probe(inputs, keras.layers.Dense(1)(inputs))
        self.assertIs(Probe.__bases__[0], _keras_internals.Functional)

    def test_trainer_init_is_next_after_model(self):
        mro = _keras_internals.Functional.__mro__
        after_model = mro[mro.index(keras.Model) + 1]
        self.assertTrue(after_model.__name__.endswith("Trainer"))

    def test_flatten_layers_recurses(self):
        inner = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
        inputs = keras.Input((2,))
        model = keras.Model(inputs, inner(inputs))
        layers = _keras_internals.flatten_layers(model)
        self.assertIn(inner.layers[0], layers)

    def test_replace_sublayer_keeps_the_position_and_drops_the_old_layer(self):
        attention = keras.layers.MultiHeadAttention(2, 4)
        attention(np.ones((1, 3, 8), "float32"), np.ones((1, 3, 8), "float32"))
        before = _keras_internals.flatten_layers(attention)
        old = attention._key_dense
        new = keras.layers.EinsumDense(**old.get_config())
        new.build((None, 3, 8))
        _keras_internals.replace_sublayer(attention, "_key_dense", new)
        after = _keras_internals.flatten_layers(attention)
        self.assertIs(attention.key_dense, new)
        self.assertEqual(after.index(new), before.index(old))
        self.assertNotIn(old, after)
        self.assertEmpty({id(v) for v in old.weights} & {id(v) for v in attention.weights})
        self.assertLen(attention.weights, len(before[1].weights) * 4)

    def test_a_built_model_locks_new_state_and_the_helper_lifts_it(self):
        class Net(keras.Model):
            def __init__(self):
                super().__init__()
                self.dense = keras.layers.Dense(2)

            def call(self, x):
                return self.dense(x)

        model = Net()
        model(tf.ones((1, 3)))  # a subclassed model is locked once built
        with self.assertRaisesRegex(ValueError, "cannot add new elements of state"):
            model.extra = keras.Variable(0.0, trainable=False)
        variable = keras.Variable([1.0, 2.0], trainable=False, name="extra")
        _keras_internals.add_state_after_build(model, "extra", variable)
        self.assertIs(model.non_trainable_variables[-1], variable)  # saved with the model
        with self.assertRaisesRegex(ValueError, "cannot add new elements of state"):
            model.another = keras.Variable(0.0, trainable=False)  # locked again

    def test_optimizer_variable_count(self):
        optimizer = keras.optimizers.Adam()
        variables = [keras.Variable(1.0), keras.Variable(2.0)]
        optimizer.build(variables)
        self.assertEqual(_keras_internals.optimizer_variable_count(optimizer), 2)

    def test_loss_tracker_is_the_loss_metric(self):
        inputs = keras.Input((2,))
        model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
        model.compile("sgd", "mse")
        tracker = _keras_internals.loss_tracker(model)
        self.assertIs(tracker, model.metrics[0])
        self.assertEqual(tracker.name, "loss")

    def test_make_step_function_runs_a_given_step_on_the_iterators_batch(self):
        inputs = keras.Input((2,))
        model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
        model.compile("sgd", "mse")
        seen = []

        def step(data):
            seen.append(data)  # traced once
            x, y = data
            return {"total": keras.ops.sum(x) + keras.ops.sum(y)}

        function = _keras_internals.make_step_function(model, step)
        dataset = tf.data.Dataset.from_tensor_slices(
            (tf.ones((4, 2)), tf.fill((4, 1), 2.0))).batch(2)
        iterator = iter(dataset)
        self.assertAllClose(function(iterator)["total"], 8.0)  # 2x2 ones + 2 twos
        self.assertAllClose(function(iterator)["total"], 8.0)
        self.assertLen(seen, 1)
        with self.assertRaises((StopIteration, tf.errors.OutOfRangeError)):
            function(iterator)

    def test_symbolic_build_outside_a_strategy_is_left_to_the_step(self):
        inputs = keras.Input((2,))
        model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
        self.assertIsNone(_keras_internals.creation_strategy(model))
        self.assertTrue(_keras_internals.symbolic_build(model, None, None))


if __name__ == "__main__":
    tf.test.main()
