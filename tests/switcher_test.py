from unittest import mock

import keras
import numpy as np
import pytest
import tensorflow as tf
from absl.testing import parameterized

from keras_switch import Switcher
from keras_switch import switcher as switcher_module
from keras_switch.switcher import FEATURES
from tests.test_case import TestCase
from tests.test_case import gradients


class SwitcherTest(TestCase, parameterized.TestCase):
    @parameterized.named_parameters(("small", (3, 2)), ("wide", (5, 40)), ("tall", (50, 1)))
    def test_one_switcher_serves_any_kernel_shape(self, shape):
        switcher = Switcher()
        kernel = np.random.RandomState(0).normal(size=shape).astype("float32")
        self.assertEqual(tuple(switcher(kernel).shape), shape)
        # Its weights do not depend on the shape it saw first.
        self.assertEqual(
            tuple(switcher.output_kernel.shape), (switcher.hidden_units[-1], 1)
        )

    def test_starts_with_every_switch_on(self):
        kernel = np.random.RandomState(1).normal(size=(30, 20)).astype("float32")
        self.assertAllEqual(Switcher().hard_mask(kernel), np.ones((30, 20)))

    def test_magnitude_prior_ranks_by_magnitude(self):
        switcher = Switcher(hidden_units=())
        kernel = np.array([[0.1, -2.0], [1.0, 0.0]], "float32")
        logits = keras.ops.convert_to_numpy(switcher(kernel)).ravel()
        order = np.argsort(logits)
        self.assertAllEqual(order, np.argsort(np.abs(kernel).ravel()))

    def test_prior_ranks_across_kernels_by_raw_magnitude(self):
        # A fresh switcher nearly is global magnitude pruning: the ranking of
        # the entries of two kernels on different scales is nearly that of |w|.
        switcher = Switcher()
        rng = np.random.RandomState(3)
        kernels = [rng.normal(size=(40, 30)) * 0.05, rng.normal(size=(30, 10)) * 0.3]
        kernels = [k.astype("float32") for k in kernels]
        logits = np.concatenate([keras.ops.convert_to_numpy(switcher(k)).ravel() for k in kernels])
        magnitudes = np.concatenate([np.abs(k).ravel() for k in kernels])
        self.assertGreater(np.corrcoef(np.argsort(np.argsort(logits)),
                                       np.argsort(np.argsort(magnitudes)))[0, 1], 0.999)
        # The prior alone is exactly monotone in |w|.
        prior = np.concatenate([keras.ops.convert_to_numpy(switcher.prior(k)).ravel() for k in kernels])
        self.assertAllEqual(np.argsort(prior, kind="stable"),
                            np.argsort(magnitudes, kind="stable"))

    # A measurement (the bound docs/design.md states, over 5 seeds x 5
    # targets), so in the slow tier; the default tier keeps the rank
    # correlation above.
    @pytest.mark.slow
    def test_fresh_switcher_nearly_keeps_what_global_magnitude_keeps(self):
        # Not exactly: the correction starts random (output kernel stddev
        # 0.01). On LeNet-300-100's Glorot-initialised kernels, the top
        # connections by logit overlap the top by |w| in 97.9-99.9% of them
        # (seeds 0-4, targets 90-99.5%); docs/design.md states the bound.
        shapes = [(784, 300), (300, 100), (100, 10)]
        overlaps = []
        for seed in range(5):
            keras.utils.set_random_seed(seed)
            rng = np.random.RandomState(seed)
            kernels = [(rng.uniform(-1, 1, s) * np.sqrt(6 / sum(s))).astype("float32")
                       for s in shapes]
            switcher = Switcher()
            logits = np.concatenate([keras.ops.convert_to_numpy(switcher(k)).ravel() for k in kernels])
            magnitudes = np.concatenate([np.abs(k).ravel() for k in kernels])
            for target in (0.9, 0.95, 0.98, 0.99, 0.995):
                kept = round((1 - target) * magnitudes.size)
                by_logit = set(np.argsort(-logits)[:kept])
                by_magnitude = set(np.argsort(-magnitudes)[:kept])
                overlaps.append(len(by_logit & by_magnitude) / kept)
        self.assertGreaterEqual(min(overlaps), 0.975)
        self.assertLess(min(overlaps), 1.0)  # "nearly", as docs/design.md says, not "exactly"

    def test_learned_correction_is_scale_free(self):
        switcher = Switcher()
        kernel = np.random.RandomState(2).normal(size=(6, 4)).astype("float32")
        self.assertAllClose(
            switcher.correction(kernel), switcher.correction(10.0 * kernel), atol=1e-5
        )

    def test_all_features_available(self):
        switcher = Switcher(features=FEATURES)
        features = switcher.connection_features(np.ones((3, 2), "float32") * 0.5)
        self.assertEqual(tuple(features.shape), (3, 2, len(FEATURES)))

    def test_unit_features_read_the_context(self):
        switcher = Switcher(features=("magnitude", "unit_in", "unit_out"))
        self.assertTrue(switcher.uses_context)
        self.assertFalse(Switcher().uses_context)
        kernel = np.ones((3, 2), "float32")
        alone = keras.ops.convert_to_numpy(switcher.connection_features(kernel))
        self.assertAllEqual(alone[..., 1:], np.ones((3, 2, 2)))  # no neighbours: ones
        unit_in, unit_out = np.array([0.5, 1.0, 1.5], "float32"), np.array([2.0, 0.0], "float32")
        features = keras.ops.convert_to_numpy(switcher.connection_features(kernel, (unit_in, unit_out)))
        self.assertAllEqual(features[..., 1], np.tile(unit_in[:, None], (1, 2)))
        self.assertAllEqual(features[..., 2], np.tile(unit_out[None, :], (3, 1)))
        # The context changes the logits through the learned correction
        # (its linear path starts at 0: give it weight).
        kernel = np.random.RandomState(0).normal(size=(3, 2)).astype("float32")
        switcher(kernel)  # builds it
        switcher.linear_kernel.assign(np.ones(switcher.linear_kernel.shape, "float32"))
        self.assertNotAllClose(switcher(kernel, context=(unit_in, unit_out)), switcher(kernel))

    def test_serialization(self):
        self.run_serialization_test(Switcher(hidden_units=(8, 4), initial_logit=3.0))

    @parameterized.named_parameters(
        ("hidden", dict(hidden_units=(0,)), "hidden_units"),
        ("feature", dict(features=("colour",)), "features"),
        ("no_features", dict(features=()), "features"),
        ("logit", dict(initial_logit=-1.0), "initial_logit"),
        ("prior", dict(magnitude_prior=-1.0), "magnitude_prior"),
        ("prior_scale", dict(prior_scale=0.0), "prior_scale"),
    )
    def test_invalid_arguments_raise(self, kwargs, name):
        with self.assertRaisesRegex(ValueError, name):
            Switcher(**kwargs)

    def test_rank_must_be_two(self):
        with self.assertRaisesRegex(ValueError, "rank-2 kernel"):
            Switcher().connection_features(np.ones((2, 2, 2), "float32"))

    def test_threshold_shifts_every_logit(self):
        switcher = Switcher()
        kernel = np.ones((2, 2), "float32")
        before = switcher(kernel)
        switcher.threshold.assign(1.5)
        self.assertAllClose(switcher(kernel), before - 1.5)
        self.assertFalse(switcher.threshold.trainable)



class PiecesTest(TestCase, parameterized.TestCase):
    """A kernel above `CHUNK_ENTRIES` is evaluated in column pieces, each
    recomputed in the backward pass: the same logits and gradients."""

    @parameterized.parameters(switcher_module.DEFAULT_FEATURES, FEATURES)
    def test_pieces_give_the_whole_kernels_logits_and_gradients(self, *features):
        rng = np.random.RandomState(0)
        switcher = Switcher(hidden_units=(8, 4), features=features)
        switcher.build((300, 70))
        for variable in switcher.trainable_variables:
            variable.assign(rng.normal(size=variable.shape).astype("float32") * 0.3)
        kernel = rng.normal(size=(300, 70)).astype("float32")
        context = (rng.uniform(size=300).astype("float32"),
                   rng.uniform(size=70).astype("float32"))

        def run():
            logits = keras.ops.convert_to_numpy(switcher(kernel, context=context))
            grads = gradients(lambda: keras.ops.sum(keras.ops.sin(
                switcher(kernel, context=context))), switcher.trainable_variables)
            return logits, grads

        whole, whole_grads = run()
        with mock.patch.object(switcher_module, "CHUNK_ENTRIES", 300 * 16):  # 5 pieces
            pieces, piece_grads = run()
        self.assertAllEqual(pieces, whole)
        for variable, a, b in zip(switcher.trainable_variables, whole_grads, piece_grads):
            self.assertAllClose(b, a, rtol=1e-5, atol=1e-5 * np.abs(a).max(), msg=variable.path)

if __name__ == "__main__":
    tf.test.main()
