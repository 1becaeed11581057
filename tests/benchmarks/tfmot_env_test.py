"""The TFMOT baseline in its own Keras 2 venv (slow: the first run installs
TensorFlow, tf-keras and TFMOT with pip, about a minute and 2 GB; later runs
take 25-35 s, each training run a TensorFlow process of its own).

The runs train on scikit-learn's digits (8x8, upsampled 3x and padded to
28x28; 1,500 training and 297 test images), real data on which the pruned
models reach about 0.88 (LeNet-300-100) and 0.78 (LeNet-5) rather than 1, so
that a broken recipe shows in the accuracy."""

import numpy as np
import pytest
import tensorflow as tf

from benchmarks import tfmot_env
from benchmarks.harness import baselines
from keras_switch.data import load_arrays
from tests.test_case import TestCase


def digits_28x28():
    """((x, y), (x_test, y_test)): digits in [0, 1], each pixel 3x3, padded."""
    def to_28(x):
        return np.pad(np.kron(x, np.ones((1, 3, 3), "float32")), ((0, 0), (2, 2), (2, 2)))

    (x, y), (x_test, y_test) = load_arrays("digits")
    return (to_28(x), y), (to_28(x_test), y_test)


def foreign_init(model):
    """`baselines.initial_weights(model, seed=1)` with small random biases.

    The runs below use seed 0, and tf_keras seeded 0 builds exactly
    `baselines.initial_weights(model, seed=0)` (kernels, and zero biases) by
    itself, so that init could not tell whether the baseline loaded `init`;
    these weights it can only have by loading them."""
    rng = np.random.default_rng(0)
    return [w if w.ndim > 1 else rng.normal(0, 0.01, w.shape).astype("float32")
            for w in baselines.initial_weights(model, seed=1)]


@pytest.mark.slow
class TfmotEnvTest(TestCase):
    def test_prunes_to_the_target_from_our_init(self):
        init = foreign_init("lenet300")
        result = tfmot_env.train("lenet300", 0.9, 0, digits_28x28(), init, epochs=10,
                                 batch_size=128, learning_rate=1e-3, frequency=2,
                                 record_init=True)
        # The weights fit starts from are exactly `init`, in its order.
        self.assertEqual(result["initial_weights_sha256"], tfmot_env.weights_sha256(init))
        self.assertAlmostEqual(result["fc_sparsity"], 0.9, delta=1e-3)
        self.assertEqual(set(result["layer_sparsity"]), set(baselines.FC_LAYERS))
        for name, sparsity in result["layer_sparsity"].items():
            self.assertAlmostEqual(sparsity, 0.9, delta=1e-3, msg=name)
        # Measured 0.886 (0.879-0.889 over run seeds 0-4); chance is 0.1.
        self.assertGreater(result["test_accuracy"], 0.75)

    def test_whole_model_prunes_every_layer_from_our_init(self):
        # benchmarks/pretrained.py's mode: every Conv2D and Dense layer of
        # LeNet-5 wrapped, starting from the weights it is given.
        init = foreign_init("lenet5")
        result = tfmot_env.train("lenet5", 0.9, 0, digits_28x28(), init, epochs=10,
                                 batch_size=128, learning_rate=1e-3, frequency=2,
                                 whole_model=True, record_init=True)
        self.assertEqual(result["initial_weights_sha256"], tfmot_env.weights_sha256(init))
        self.assertTrue(result["whole_model"])
        self.assertEqual(set(result["layer_sparsity"]),
                         {"conv1", "conv2", *baselines.FC_LAYERS})
        for name, sparsity in result["layer_sparsity"].items():
            self.assertAlmostEqual(sparsity, 0.9, delta=1e-3, msg=name)
        self.assertAlmostEqual(result["sparsity"], 0.9, delta=1e-3)
        # Measured 0.785 (0.778-0.808 over run seeds 0-4; 0.72-0.78 from
        # other inits); chance is 0.1.
        self.assertGreater(result["test_accuracy"], 0.6)

    def test_bad_data_file_fails_clearly(self):
        with self.assertRaisesRegex(RuntimeError, "TFMOT baseline failed"):
            tfmot_env.run(["--data=/nonexistent.npz", "--model=lenet300"])


if __name__ == "__main__":
    tf.test.main()
