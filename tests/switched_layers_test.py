"""SwitchedConv1D, SwitchedDepthwiseConv2D and SwitchedEinsumDense through
the tests SwitchedConv2D has (layers_test.py): exact equality with the
plain class, the mask, the matrix the switcher reads, gradients, configs and
`.keras` files, training to a target and stripping."""

import os

import keras
import numpy as np
from absl.testing import parameterized
from keras import ops

import keras_switch
from keras_switch import Switcher
from tests.test_case import TestCase
from tests.test_case import gradients
from tests.test_case import modern_model

# (switched class, plain class, arguments, input shape, kernel shape, matrix shape)
CASES = {
    "conv1d": (keras_switch.SwitchedConv1D, keras.layers.Conv1D,
               dict(filters=3, kernel_size=3), (2, 9, 4), (3, 4, 3), (12, 3)),
    "conv1d_causal": (keras_switch.SwitchedConv1D, keras.layers.Conv1D,
                      dict(filters=5, kernel_size=2, padding="causal", dilation_rate=2,
                           activation="relu"), (2, 9, 4), (2, 4, 5), (8, 5)),
    "conv1d_strided": (keras_switch.SwitchedConv1D, keras.layers.Conv1D,
                       dict(filters=2, kernel_size=3, strides=2, padding="same",
                            use_bias=False), (2, 9, 4), (3, 4, 2), (12, 2)),
    "depthwise": (keras_switch.SwitchedDepthwiseConv2D, keras.layers.DepthwiseConv2D,
                  dict(kernel_size=3), (2, 7, 6, 4), (3, 3, 4, 1), (9, 4)),
    "depthwise_multiplier": (keras_switch.SwitchedDepthwiseConv2D,
                             keras.layers.DepthwiseConv2D,
                             dict(kernel_size=(2, 3), depth_multiplier=2, strides=2,
                                  padding="same", activation="relu"),
                             (2, 7, 6, 4), (2, 3, 4, 2), (6, 8)),
    "einsum_query": (keras_switch.SwitchedEinsumDense, keras.layers.EinsumDense,
                     dict(equation="abc,cde->abde", output_shape=(5, 2, 3),
                          bias_axes="de"), (2, 5, 4), (4, 2, 3), (4, 6)),
    "einsum_output": (keras_switch.SwitchedEinsumDense, keras.layers.EinsumDense,
                      dict(equation="abcd,cde->abe", output_shape=(5, 3), bias_axes="e",
                           activation="tanh"), (2, 5, 2, 4), (2, 4, 3), (8, 3)),
    "einsum_transposed": (keras_switch.SwitchedEinsumDense, keras.layers.EinsumDense,
                          dict(equation="ab,cb->ac", output_shape=3), (2, 4), (3, 4), (4, 3)),
}


def pair(name):
    """A plain layer and its switched twin with the same arguments and
    weights (random, nonzero biases), and an input."""
    switched_cls, plain_cls, kwargs, shape, _, _ = CASES[name]
    plain = plain_cls(**kwargs)
    switched = switched_cls(switcher=Switcher(), **kwargs)
    x = np.random.RandomState(0).normal(size=shape).astype("float32")
    plain(x), switched(x)
    rng = np.random.RandomState(1)
    for a, b in zip(plain.weights, switched.weights):
        value = rng.normal(size=a.shape).astype("float32")
        a.assign(value), b.assign(value)
    return plain, switched, x


class SwitchedLayersTest(TestCase, parameterized.TestCase):
    @parameterized.parameters(*CASES)
    def test_all_ones_mask_equals_the_plain_layer_exactly(self, name):
        plain, switched, x = pair(name)
        self.assertAllEqual(switched.hard_mask(), np.ones(switched.kernel.shape))
        self.assertAllEqual(switched(x), plain(x))
        self.assertAllEqual(switched(x, training=True), plain(x))

    @parameterized.parameters(*CASES)
    def test_the_mask_zeroes_its_kernel_entries(self, name):
        plain, switched, x = pair(name)
        self.assertEqual(tuple(switched.mask.shape), CASES[name][4])
        mask = np.random.RandomState(2).binomial(1, 0.3, switched.kernel.shape)
        switched.freeze_mask(mask.astype("float32"))
        masked = ops.convert_to_numpy(plain.kernel) * mask
        self.assertAllEqual(switched.effective_kernel(), masked)
        plain.kernel.assign(masked)
        self.assertAllClose(switched(x), plain(x), atol=1e-6)

    @parameterized.parameters(*CASES)
    def test_the_switcher_reads_the_kernel_as_the_stated_matrix(self, name):
        _, switched, _ = pair(name)
        kernel_shape, matrix_shape = CASES[name][4:]
        self.assertEqual(switched.matrix_shape(), matrix_shape)
        index = np.arange(np.prod(kernel_shape), dtype="float32").reshape(kernel_shape)
        matrix = ops.convert_to_numpy(switched.switch_matrix(index))
        self.assertEqual(matrix.shape, matrix_shape)
        # Each column is one output unit's incoming connections.
        if name.startswith("depthwise"):
            kh, kw, c_in, multiplier = kernel_shape
            for c in range(c_in):
                for m in range(multiplier):
                    self.assertAllEqual(matrix[:, c * multiplier + m],
                                        index[:, :, c, m].reshape(-1))
        elif name == "einsum_transposed":
            self.assertAllEqual(matrix, index.T)  # kernel [out, in]
        else:
            self.assertAllEqual(matrix, index.reshape(-1, matrix_shape[1]))
        self.assertAllEqual(switched.from_matrix(matrix), index)
        logits = switched.switcher(switched.switch_matrix())
        self.assertAllEqual(switched.switch_logits(), switched.from_matrix(logits))
        self.assertEqual(tuple(switched.switch_probabilities().shape), kernel_shape)

    @parameterized.parameters(*CASES)
    def test_switched_off_weights_get_no_gradient(self, name):
        _, switched, x = pair(name)
        mask = np.random.RandomState(3).binomial(1, 0.5, switched.kernel.shape)
        switched.freeze_mask(mask.astype("float32"))
        [grad] = gradients(lambda: ops.sum(switched(x, training=True) ** 2),
                           [switched.kernel])
        self.assertAllEqual(grad[mask == 0], np.zeros(int((mask == 0).sum())))
        self.assertGreater(np.abs(grad[mask == 1]).sum(), 0.0)

    @parameterized.parameters("conv1d_causal", "depthwise_multiplier", "einsum_query")
    def test_layer_test_with_and_without_a_switcher(self, name):
        switched_cls, plain_cls, kwargs, shape, _, _ = CASES[name]
        out = tuple(plain_cls(**kwargs).compute_output_shape(shape))
        biases = int(kwargs.get("use_bias", True) and kwargs.get("bias_axes", "x") is not None)
        # kernel, bias and the switcher's 5 trainable weights; mask,
        # switch_offset, mask_frozen and the switcher's threshold.
        self.run_layer_test(switched_cls, dict(kwargs, switcher=Switcher()), input_shape=shape,
                            expected_output_shape=out,
                            expected_num_trainable_weights=1 + biases + 5,
                            expected_num_non_trainable_weights=4)
        self.run_layer_test(switched_cls, kwargs, input_shape=shape, expected_output_shape=out,
                            expected_num_trainable_weights=1 + biases)

    @parameterized.parameters("conv1d", "depthwise", "einsum_output")
    def test_config_and_keras_file_keep_the_switcher_and_mask(self, name):
        switched_cls, _, kwargs, shape, _, _ = CASES[name]
        revived = self.run_serialization_test(switched_cls(switcher=Switcher(), **kwargs))
        self.assertIsInstance(revived.switcher, Switcher)
        switcher = Switcher()
        inputs = keras.Input(shape[1:])
        outputs = switched_cls(switcher=switcher, name="a", **kwargs)(inputs)
        model = keras_switch.SwitchingModel(inputs, outputs)
        layer = model.get_layer("a")
        layer.freeze_mask(np.random.RandomState(4).binomial(1, 0.5, layer.kernel.shape))
        path = os.path.join(self.get_temp_dir(), f"{name}.keras")
        model.save(path)
        loaded = keras.models.load_model(path)  # safe mode
        self.assertAllEqual(loaded.get_layer("a").mask, layer.mask)
        self.assertEqual(float(ops.convert_to_numpy(loaded.get_layer("a").mask_frozen)), 1.0)
        x = np.random.RandomState(5).normal(size=shape).astype("float32")
        self.assertAllEqual(loaded.predict(x, verbose=0), model.predict(x, verbose=0))

    @parameterized.parameters(keras_switch.SwitchedConv1D, keras_switch.SwitchedDepthwiseConv2D,
                              keras_switch.SwitchedEinsumDense)
    def test_lora_and_a_bad_switcher_raise(self, cls):
        args = ("ab,bc->ac", 3) if cls is keras_switch.SwitchedEinsumDense else (
            (3,) if cls is keras_switch.SwitchedDepthwiseConv2D else (2, 3))
        with self.assertRaisesRegex(ValueError, "does not support LoRA"):
            cls(*args, lora_rank=2)
        with self.assertRaisesRegex(TypeError, "expected a `keras_switch.Switcher`"):
            cls(*args, switcher="no")

    def test_an_einsum_without_a_contracted_axis_is_refused(self):
        layer = keras_switch.SwitchedEinsumDense("ab,b->ab", output_shape=4,
                                                 switcher=Switcher())
        with self.assertRaisesRegex(ValueError, "'ab,b->ab'.*contracted axis"):
            layer(np.ones((2, 4), "float32"))

    def test_a_model_of_every_class_trains_to_a_target_and_strips(self):
        model = modern_model(Switcher())
        rng = np.random.RandomState(0)
        x = rng.normal(size=(64, 8, 8, 3)).astype("float32")
        y = rng.randint(0, 4, size=64)
        model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      target_sparsity=0.7, allocation="erk")
        model.fit(x, y, epochs=3, batch_size=16, verbose=0)
        report = keras_switch.sparsity_report(model)
        self.assertAlmostEqual(report["overall"], 0.7, delta=0.005)
        self.assertEqual([row["name"] for row in report["layers"]],
                         ["depthwise", "pointwise", "conv1d", "einsum", "head"])
        self.assertGreater(report["layers"][2]["sparsity"], 0.5)  # the largest kernels
        self.assertGreater(report["layers"][4]["sparsity"], 0.0)
        stripped = keras_switch.strip_switches(model)
        self.assertEqual({type(layer).__name__ for layer in stripped.layers},
                         {"InputLayer", "DepthwiseConv2D", "Conv2D", "Reshape", "Conv1D",
                          "EinsumDense", "Flatten", "Dense"})
        self.assertAllClose(stripped.predict(x, verbose=0), model.predict(x, verbose=0),
                            atol=1e-5)
        for row in report["layers"]:
            kernel = ops.convert_to_numpy(stripped.get_layer(row["name"]).kernel)
            self.assertEqual(int(np.count_nonzero(kernel)), row["nonzeros"])

