"""The TFMOT baseline in its own Keras 2 venv (slow: the first run installs
TensorFlow, tf-keras and TFMOT with pip, about a minute and 2 GB)."""

import numpy as np
import pytest
import tensorflow as tf

from benchmarks import common
from benchmarks import tfmot_env
from tests.test_case import TestCase


@pytest.mark.slow
class TfmotEnvTest(TestCase):
    def _data(self, n_train=512, n_test=128):
        rng = np.random.default_rng(0)
        x = rng.random((n_train + n_test, 28, 28), dtype="float32")
        y = rng.integers(0, 10, n_train + n_test)
        return (x[:n_train], y[:n_train]), (x[n_train:], y[n_train:])

    def test_prunes_to_the_target_from_our_init(self):
        init = common.initial_weights("lenet300", seed=0)
        result = tfmot_env.train("lenet300", 0.9, 0, self._data(), init, epochs=10,
                                 batch_size=128, learning_rate=1e-3, frequency=2)
        self.assertAlmostEqual(result["fc_sparsity"], 0.9, delta=1e-3)
        self.assertEqual(set(result["layer_sparsity"]), set(common.FC_LAYERS))
        self.assertTrue(0.0 <= result["test_accuracy"] <= 1.0)

    def test_bad_data_file_fails_clearly(self):
        with self.assertRaisesRegex(RuntimeError, "TFMOT baseline failed"):
            tfmot_env.run(["--data=/nonexistent.npz", "--model=lenet300"])


if __name__ == "__main__":
    tf.test.main()
