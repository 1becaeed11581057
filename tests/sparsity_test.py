"""The sparsity controls without a model: the ramp, the bisection, the
threshold placement on hand-set kernels, validation and serialization."""

import keras
import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from keras_switch import SwitchedConv2D
from keras_switch import SwitchedDense
from keras_switch import Switcher
from keras_switch import SwitchSchedule
from keras_switch import sparsity
from keras_switch import thresholds
from keras_switch.checks import ArgumentError
from keras_switch.budget import AccuracyBudget
from keras_switch.sparsity import SparsityControl
from keras_switch.sparsity import SparsityPenalty
from keras_switch.sparsity import TargetSparsity
from tests.test_case import TestCase


class BisectionTest(TestCase, parameterized.TestCase):
    @parameterized.named_parameters(("one", 1), ("three", 3), ("half", 50), ("all", 100))
    def test_threshold_keeps_exactly_the_k_highest(self, keep):
        scores = np.random.RandomState(0).normal(size=100).astype("float32")
        threshold = thresholds.threshold_keeping(keras.ops.convert_to_tensor(scores), keep)
        above = scores > float(threshold)
        self.assertEqual(int(above.sum()), keep)
        self.assertAllEqual(np.sort(scores)[::-1][:keep], np.sort(scores[above])[::-1])
        if keep < len(scores):  # midway between the lowest kept and the highest dropped
            self.assertAllClose(float(threshold),
                                (scores[above].min() + scores[~above].max()) / 2, atol=1e-6)

    def test_keep_zero_keeps_none(self):
        scores = np.array([0.5, -1.0, 2.0], "float32")
        threshold = thresholds.threshold_keeping(keras.ops.convert_to_tensor(scores), 0)
        self.assertEqual(int(np.sum(scores > float(threshold))), 0)

    def test_exact_ties_keep_the_whole_tie(self):
        scores = np.array([3.0, 2.0, 2.0, 2.0, 1.0], "float32")
        threshold = float(thresholds.threshold_keeping(keras.ops.convert_to_tensor(scores), 2))
        self.assertEqual(int(np.sum(scores > threshold)), 4)  # 3 and the three 2s

    @parameterized.named_parameters(
        ("rounds", 0.25, 10, 2), ("at_least_one", 0.0, 10, 1), ("at_most_all", 1.5, 10, 10)
    )
    def test_keep_count(self, density, total, expected):
        self.assertEqual(int(thresholds.keep_count(density, total)), expected)


class TargetSparsityTest(TestCase, parameterized.TestCase):
    def test_density_follows_the_ramp(self):
        control = TargetSparsity(0.8, ramp_steps=10, ramp_power=3)
        self.assertAlmostEqual(control.density(4), 1 - 0.8 * (1 - 0.5 ** 3))
        self.assertAlmostEqual(control.density(9), 0.2)
        self.assertAlmostEqual(control.density(500), 0.2)
        linear = TargetSparsity(0.8, ramp_steps=10, ramp_power=1)
        self.assertAlmostEqual(linear.density(4), 1 - 0.8 * 0.5)
        self.assertAlmostEqual(TargetSparsity(0.9, ramp_steps=0).density(0), 0.1)

    def test_density_of_a_tensor_step_equals_the_python_one(self):
        control = TargetSparsity(0.9, ramp_steps=7, ramp_power=2)
        for step in range(-1, 10):
            self.assertAllClose(control.density(tf.constant(step, tf.int64)),
                                control.density(step), atol=1e-6)

    def test_magnitude_allocation_on_hand_set_kernels(self):
        switcher = Switcher()
        layers = [SwitchedDense(2, switcher=switcher), SwitchedDense(2, switcher=switcher)]
        kernels = [np.array([[0.9, 0.1], [0.5, 0.05]], "float32"),
                   np.array([[0.3, 0.02], [0.04, 0.6], [0.7, 0.01]], "float32")]
        for layer, kernel in zip(layers, kernels):
            layer.build((None, kernel.shape[0]))
            layer.kernel.assign(kernel)
        logits = [layer.switch_logits() for layer in layers]
        moved = TargetSparsity(0.6, ramp_steps=0, allocation="magnitude").place_thresholds(layers, logits, step=0)
        # 40% of 10 connections: the 4 largest |w| over both layers (0.9,
        # 0.7, 0.6, 0.5); each layer keeps its share, ranked by its logits.
        masks = [keras.ops.convert_to_numpy(m) > 0 for m in moved]
        self.assertAllEqual(masks[0], [[True, False], [True, False]])
        self.assertAllEqual(masks[1], [[False, False], [False, True], [True, False]])
        for layer, m in zip(layers, moved):  # the offsets moved the logits
            self.assertAllClose(layer.switch_logits(), m)

    def test_learned_allocation_moves_the_switcher_threshold(self):
        switcher = Switcher()
        layer = SwitchedDense(5, switcher=switcher)
        layer.build((None, 4))
        moved = TargetSparsity(0.75, ramp_steps=0, allocation="learned").place_thresholds(
            [layer], [layer.switch_logits()], step=0)
        self.assertEqual(int(np.sum(keras.ops.convert_to_numpy(moved[0]) > 0)), 5)
        self.assertNotEqual(float(switcher.threshold), 0.0)
        self.assertEqual(float(layer.switch_offset), 0.0)
        self.assertAllClose(layer.switch_logits(), moved[0])

    def test_magnitude_allocation_needs_a_prior(self):
        layer = SwitchedDense(3, switcher=Switcher(magnitude_prior=0.0))
        layer.build((None, 3))
        with self.assertRaisesRegex(ValueError, "magnitude prior"):
            TargetSparsity(0.5, ramp_steps=0, allocation="magnitude").place_thresholds([layer], [layer.switch_logits()], 0)

    def test_erk_counts_share_the_budget_by_fan_in_plus_fan_out(self):
        shapes = [(784, 300), (300, 100), (100, 10)]
        counts = [int(c) for c in thresholds.erk_keep_counts(shapes, 1331)]
        self.assertEqual(sum(counts), 1331)
        eps = 1331 / (1084 + 400 + 110)
        self.assertAllClose(counts, [eps * 1084, eps * 400, eps * 110], atol=1)
        # A kernel whose share exceeds its size keeps everything; the rest
        # share what is left.
        counts = [int(c) for c in thresholds.erk_keep_counts(shapes, 26620)]
        self.assertEqual(counts[2], 1000)
        self.assertEqual(sum(counts), 26620)
        self.assertAllClose(counts[0] / counts[1], 1084 / 400, rtol=1e-3)
        self.assertEqual([int(c) for c in thresholds.erk_keep_counts([(4, 3)], 100)], [12])

    def test_erk_allocation_keeps_each_layers_count(self):
        switcher = Switcher()
        layers = []
        for units, fan_in in ((30, 40), (10, 30)):
            layer = SwitchedDense(units, switcher=switcher)
            layer.build((None, fan_in))
            layers.append(layer)
        control = TargetSparsity(0.9, ramp_steps=0, allocation="erk")
        moved = control.place_thresholds(layers, [l.switch_logits() for l in layers], step=0)
        kept = [int(np.sum(keras.ops.convert_to_numpy(m) > 0)) for m in moved]
        final = [int(c) for c in thresholds.erk_keep_counts([(40, 30), (30, 10)], 150)]
        self.assertEqual(kept, final)
        # Mid-ramp every layer is the same fraction of the way to its own
        # final sparsity.
        ramped = TargetSparsity(0.9, ramp_steps=10, ramp_power=1, allocation="erk")
        moved = ramped.place_thresholds(layers, [l.switch_logits() for l in layers], step=4)
        kept = [int(np.sum(keras.ops.convert_to_numpy(m) > 0)) for m in moved]
        self.assertEqual(kept, [round(n - (n - k) * 0.5) for n, k in zip((1200, 300), final)])

    @parameterized.named_parameters(("dense_only", False, "erk"),
                                    ("with_a_convolution", True, "magnitude"))
    def test_auto_allocation_is_erk_for_dense_and_magnitude_with_convolutions_or_a_budget(
            self, convolution, expected):
        other = {"erk": "magnitude", "magnitude": "erk"}[expected]
        switcher = Switcher()
        conv = SwitchedConv2D(8, 3, switcher=switcher)
        conv.build((None, 10, 10, 4))
        layers = [conv] if convolution else []
        for units, fan_in in ((30, 40), (10, 30)):
            layer = SwitchedDense(units, switcher=switcher)
            layer.build((None, fan_in))
            layers.append(layer)
        self.assertEqual(thresholds.resolve_allocation("auto", layers), expected)
        kept = {}
        for allocation in ("auto", expected, other):
            for control in (TargetSparsity(0.9, ramp_steps=0, allocation=allocation),
                            AccuracyBudget(0.01, allocation=allocation)):
                if isinstance(control, AccuracyBudget):
                    control.density = lambda: 0.1
                moved = control.place_thresholds(layers, [l.switch_logits() for l in layers], 0)
                kept[type(control).__name__, allocation] = [
                    int(np.sum(keras.ops.convert_to_numpy(m) > 0)) for m in moved]
        self.assertEqual(kept["TargetSparsity", "auto"], kept["TargetSparsity", expected])
        self.assertNotEqual(kept["TargetSparsity", "auto"], kept["TargetSparsity", other])
        # A budget's "auto" is the magnitude split, with convolutions or not.
        self.assertEqual(thresholds.resolve_allocation("auto", layers, budget=True), "magnitude")
        self.assertEqual(kept["AccuracyBudget", "auto"], kept["AccuracyBudget", "magnitude"])
        self.assertNotEqual(kept["AccuracyBudget", "auto"], kept["AccuracyBudget", "erk"])

    def test_auto_allocation_without_a_magnitude_prior_is_erk(self):
        switcher = Switcher(magnitude_prior=0.0)
        conv = SwitchedConv2D(8, 3, switcher=switcher)
        conv.build((None, 10, 10, 4))
        self.assertEqual(thresholds.resolve_allocation("auto", [conv]), "erk")
        self.assertEqual(thresholds.resolve_allocation("auto", [conv], budget=True), "erk")
        self.assertEqual(thresholds.resolve_allocation("learned", [conv]), "learned")

    def test_auto_ramp_ends_where_the_mask_freezes(self):
        control = TargetSparsity(0.9)
        self.assertFalse(control.planned)
        with self.assertRaisesRegex(ValueError, r"plan\(total_steps\)"):
            control.density(0)
        control.plan(SwitchSchedule(warmup_steps=100, freeze_step=900))
        self.assertEqual(control.ramp_steps, 800)
        self.assertAlmostEqual(control.density(799), 0.1)
        never_frozen = TargetSparsity(0.9)
        never_frozen.plan(SwitchSchedule(freeze_step=None), total_steps=1000)
        self.assertEqual(never_frozen.ramp_steps, 800)  # 80% of the run
        waiting = TargetSparsity(0.9)
        waiting.plan(SwitchSchedule())  # neither a freeze step nor a length
        self.assertEqual(waiting.ramp_steps, "auto")

    def test_a_ramp_ending_after_the_freeze_is_refused(self):
        control = TargetSparsity(0.95, ramp_steps=3752)
        control.check_schedule(SwitchSchedule(freeze_step=3752))
        control.check_schedule(SwitchSchedule())  # never frozen: fine
        with self.assertRaisesRegex(ArgumentError, r"ramp ends at step 3852.*freeze_step=469.*"
                                    r"sparsity 0\.2[0-9]* instead of 0\.95") as caught:
            control.check_schedule(SwitchSchedule(warmup_steps=100, freeze_step=469))
        self.assertEqual(caught.exception.argument, "ramp_steps")

    @parameterized.named_parameters(
        ("one", dict(sparsity=1.0), "sparsity"),
        ("negative", dict(sparsity=-0.1), "sparsity"),
        ("string", dict(sparsity="0.9"), "sparsity"),
        ("bool", dict(sparsity=True), "sparsity"),
        ("ramp", dict(sparsity=0.5, ramp_steps=-1), "ramp_steps"),
        ("ramp_float", dict(sparsity=0.5, ramp_steps=2.5), "ramp_steps"),
        ("power", dict(sparsity=0.5, ramp_power=0.5), "ramp_power"),
        ("allocation", dict(sparsity=0.5, allocation="uniform"), "allocation"),
    )
    def test_invalid_arguments_name_themselves(self, kwargs, name):
        with self.assertRaisesRegex(ArgumentError, f"`{name}`") as caught:
            TargetSparsity(**kwargs)
        self.assertEqual(caught.exception.argument, name)
        self.assertEqual(caught.exception.value, kwargs[name])


class ControlsTest(TestCase, parameterized.TestCase):
    @parameterized.named_parameters(
        ("none", SparsityControl()),
        ("penalty", SparsityPenalty(0.3)),
        ("target", TargetSparsity(0.9, ramp_steps=100, ramp_power=2, allocation="learned")),
        ("budget", AccuracyBudget(0.01, reference_steps=30, check_every=10, allocation="erk")),
    )
    def test_round_trip(self, control):
        revived = keras.saving.deserialize_keras_object(
            keras.saving.serialize_keras_object(control))
        self.assertIs(type(revived), type(control))
        self.assertEqual(revived.get_config(), control.get_config())

    def test_penalties(self):
        density = np.float32(0.25)
        self.assertEqual(float(SparsityControl().penalty(density)), 0.0)
        self.assertEqual(float(TargetSparsity(0.5).penalty(density)), 0.0)
        self.assertAlmostEqual(float(SparsityPenalty(2.0).penalty(density)), 0.5)
        with self.assertRaisesRegex(ArgumentError, "`weight`"):
            SparsityPenalty(-1)

    def test_targets(self):
        self.assertIsNone(SparsityControl().target)
        self.assertIsNone(SparsityPenalty(1.0).target)
        self.assertEqual(TargetSparsity(0.9).target, 0.9)
        self.assertIsNone(AccuracyBudget(0.01).target)


class ShorthandTest(TestCase, parameterized.TestCase):
    def test_keywords_build_the_controls(self):
        control = sparsity.from_shorthand(target_sparsity=0.9, target_ramp_steps=50,
                                          target_ramp_power=1, allocation="learned")
        self.assertEqual(control.get_config(), TargetSparsity(
            0.9, ramp_steps=50, ramp_power=1, allocation="learned").get_config())
        self.assertEqual(sparsity.from_shorthand(target_sparsity=0.5).get_config(),
                         TargetSparsity(0.5).get_config())
        self.assertIsInstance(sparsity.from_shorthand(sparsity_penalty=0.1), SparsityPenalty)
        self.assertIs(type(sparsity.from_shorthand()), SparsityControl)
        # Saved compile configs hold the ramp keywords at their defaults.
        self.assertIsInstance(sparsity.from_shorthand(
            sparsity_penalty=0.1, target_ramp_steps=0, target_ramp_power=3,
            allocation="magnitude"), SparsityPenalty)

    @parameterized.named_parameters(
        ("target", dict(target_sparsity=1.0), "target_sparsity", r"`target_sparsity`.*"
         r"Received: target_sparsity=1\.0"),
        ("ramp", dict(target_sparsity=0.5, target_ramp_steps=-2), "target_ramp_steps",
         "target_ramp_steps=-2"),
        ("power", dict(target_sparsity=0.5, target_ramp_power=0.5), "target_ramp_power",
         "`target_ramp_power`"),
        ("penalty", dict(sparsity_penalty=-1.0), "sparsity_penalty", "`sparsity_penalty`"),
        ("both", dict(target_sparsity=0.5, sparsity_penalty=1.0), "target_sparsity",
         "not both"),
        ("ramp_alone", dict(target_ramp_steps=100), "target_ramp_steps",
         "only applies with `target_sparsity`"),
    )
    def test_errors_name_the_keyword(self, kwargs, argument, pattern):
        with self.assertRaisesRegex(ArgumentError, pattern) as caught:
            sparsity.from_shorthand(**kwargs)
        self.assertEqual(caught.exception.argument, argument)


if __name__ == "__main__":
    tf.test.main()
