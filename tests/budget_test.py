"""`keras_switch/budget.py`: the AccuracyBudget controller on its own, and
end to end on scikit-learn's digits: the budget is met on held-out data,
bad inputs are refused, the named state survives saving (and the one
vector saved by earlier versions still loads), and MirroredStrategy matches
one device."""

import json
import os
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from absl.testing import parameterized

import keras_switch
from keras_switch import SwitchSchedule
from keras_switch import budget
from keras_switch.budget import AccuracyBudget
from keras_switch.budget import BudgetChecks
from keras_switch.sparsity import BudgetExceededWarning
from keras_switch.checks import ArgumentError
from tests.test_case import TestCase
from tests.test_case import compile_for_classes
from tests.test_case import digits
from tests.test_case import mirrored_strategy
from tests.test_case import mlp

EPOCHS = 12


def _budget_model(max_drop=0.02, strategy=None, schedule=None, **budget_kwargs):
    keras.utils.set_random_seed(0)
    scope = strategy.scope() if strategy else tf.device("CPU:0")
    with scope:
        model = mlp(units=(64, 32))
        compile_for_classes(model, schedule=schedule,
                            sparsity=keras_switch.AccuracyBudget(max_drop, **budget_kwargs))
    return model


def _state(model):
    return model.budget_state.read()


def _values(model):
    return np.array([v.numpy() for v in model.budget_state.variables])


class BudgetOnDigitsTest(TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        (x, y), (cls.x_test, cls.y_test) = digits(1400)
        cls.x, cls.y = x[:1100], y[:1100]
        cls.heldout = (x[1100:], y[1100:])
        cls.model = _budget_model()
        with warnings.catch_warnings():
            warnings.simplefilter("error", BudgetExceededWarning)
            cls.history = cls.model.fit(cls.x, cls.y, batch_size=32, epochs=EPOCHS,
                                        validation_data=cls.heldout, shuffle=False, verbose=0)

    def test_the_budget_is_met_on_held_out_data_at_a_real_sparsity(self):
        outcome = self.model.budget_outcome()
        self.assertTrue(outcome["met"], outcome["why"])
        checks = BudgetChecks(self.model, self.heldout)
        self.assertAlmostEqual(outcome["validation_accuracy"], checks.accuracy(), places=6)
        self.assertLessEqual(outcome["reference_validation_accuracy"]
                             - outcome["validation_accuracy"], 0.02)
        self.assertGreater(outcome["reference_validation_accuracy"], 0.8)  # it learned
        # The controller found a sparsity; nobody gave one.
        self.assertGreater(outcome["sparsity"], 0.5)
        self.assertLess(outcome["sparsity"], 1.0)
        self.assertAlmostEqual(outcome["sparsity"],
                               keras_switch.sparsity_report(self.model)["overall"])

    def test_the_frozen_mask_sits_at_the_sparsest_density_within_budget(self):
        state = _state(self.model)
        self.assertEqual(state["density"], state["best_density"])
        kept = 1.0 - keras_switch.sparsity_report(self.model)["overall"]
        self.assertAlmostEqual(kept, state["best_density"], delta=0.01)
        self.assertTrue(all(layer.mask_frozen.numpy() == 1.0
                            for layer in self.model.switched_layers))

    def test_epoch_logs_carry_the_controller(self):
        for key in ("heldout_accuracy", "budget_density", "budget_reference", "val_accuracy"):
            self.assertLen(self.history.history[key], EPOCHS, key)
        # Keras' own validation pass sees the same held-out data; once the
        # mask is frozen it also uses the same mask (while switching it asks
        # the switcher, where the checks use the masks the task steps train).
        self.assertAlmostEqual(self.history.history["heldout_accuracy"][-1],
                               self.history.history["val_accuracy"][-1], places=6)
        self.assertLess(self.history.history["budget_density"][-1], 0.5)

    def test_keras_file_round_trip_keeps_the_state(self):
        path = os.path.join(self.create_tempdir().full_path, "budget.keras")
        self.model.save(path)
        loaded = keras.models.load_model(path)
        self.assertIsInstance(loaded.sparsity, keras_switch.AccuracyBudget)
        self.assertEqual(loaded.sparsity.get_config(), self.model.sparsity.get_config())
        self.assertEqual(loaded.budget_state.read(), self.model.budget_state.read())
        self.assertEqual(loaded.budget_outcome()["met"], True)
        np.testing.assert_array_equal(loaded.predict(self.x_test, verbose=0),
                                      self.model.predict(self.x_test, verbose=0))
        plain = keras.models.load_model(path, compile=False)  # no variable for the state
        self.assertIsNone(plain.budget_state)
        np.testing.assert_array_equal(plain.predict(self.x_test, verbose=0),
                                      self.model.predict(self.x_test, verbose=0))


class BudgetInputsTest(TestCase):
    def test_fit_without_held_out_data_is_refused(self):
        (x, y), _ = digits(256)
        model = _budget_model()
        with self.assertRaisesRegex(ValueError, "validation_data=.*validation_split"):
            model.fit(x, y, epochs=1, verbose=0)
        dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)
        with self.assertRaisesRegex(ValueError, "validation_split.*array inputs"):
            model.fit(dataset, epochs=1, validation_split=0.2, verbose=0)

    def test_validation_split_holds_out_the_last_examples(self):
        (x, y), _ = digits(320)
        model = _budget_model(reference_steps=2, check_every=1,
                              schedule=SwitchSchedule(switch_every=1, freeze_step=14))
        history = model.fit(x, y, batch_size=32, epochs=2, validation_split=0.2,
                            shuffle=False, verbose=0)
        self.assertEqual(int(model.switching_step.numpy()), 16)  # 256 examples trained on
        expected = BudgetChecks(model, (x[256:], y[256:])).accuracy()
        self.assertAlmostEqual(history.history["heldout_accuracy"][-1], expected, places=6)

    def test_a_dataset_of_held_out_batches_works(self):
        (x, y), _ = digits(320)
        model = _budget_model(reference_steps=2, check_every=1)
        heldout = tf.data.Dataset.from_tensor_slices((x[256:], y[256:])).batch(20)
        model.fit(x[:256], y[:256], batch_size=32, epochs=2, validation_data=heldout,
                  shuffle=False, verbose=0)
        self.assertIsNotNone(model.budget_outcome()["reference_validation_accuracy"])

    def test_outputs_that_are_not_class_scores_are_refused(self):
        (x, y), _ = digits(128)
        keras.utils.set_random_seed(0)
        model = mlp(units=(8,), num_classes=1)
        model.compile(loss="mse", sparsity=keras_switch.AccuracyBudget(0.02))
        with self.assertRaisesRegex(ValueError, r"argmax.*\(\d+, 1\)"):
            model.fit(x[:96], y[:96].astype("float32"), epochs=1, verbose=0,
                      validation_data=(x[96:], y[96:]))

    def test_a_run_too_short_for_the_reference_says_so(self):
        (x, y), _ = digits(160)
        model = _budget_model(reference_steps=50,
                              schedule=SwitchSchedule(switch_every=1, freeze_step=60))
        with self.assertWarnsRegex(BudgetExceededWarning, "never measured its dense reference"):
            model.fit(x[:128], y[:128], batch_size=32, epochs=1, verbose=0,
                      validation_data=(x[128:], y[128:]))
        self.assertFalse(model.budget_outcome()["met"])

    def test_a_built_subclassed_model_takes_the_state(self):
        class Net(keras_switch.SwitchingModel):
            def __init__(self):
                super().__init__()
                switcher = keras_switch.Switcher()
                self.hidden = keras_switch.SwitchedDense(16, activation="relu", switcher=switcher)
                self.logits = keras_switch.SwitchedDense(10, switcher=switcher)

            def call(self, x):
                return self.logits(self.hidden(x))

        (x, y), _ = digits(160)
        model = Net()
        model(x[:1])  # built, so Keras locks its state
        compile_for_classes(model, sparsity=keras_switch.AccuracyBudget(0.05, reference_steps=1,
                                                                       check_every=1),
                            schedule=SwitchSchedule(switch_every=1, freeze_step=6))
        for variable in model.budget_state.variables:  # tracked: saved with the model
            self.assertTrue(any(v is variable for v in model.non_trainable_variables))
        model.fit(x[:128], y[:128], batch_size=16, epochs=1, verbose=0,
                  validation_data=(x[128:], y[128:]))
        self.assertGreaterEqual(model.budget_outcome()["reference_validation_accuracy"], 0.0)

    def test_a_schedule_without_a_frozen_tail_is_refused(self):
        model = mlp()
        with self.assertRaisesRegex(ValueError, "freeze_step=None"):
            compile_for_classes(model, sparsity=keras_switch.AccuracyBudget(0.01),
                                schedule=SwitchSchedule(freeze_step=None))


class LegacyBudgetFilesTest(TestCase):
    """tests/data/legacy_budget.* were saved by f1a2932, whose budget state
    was one 7-entry vector (written by `write_legacy_budget_files` below)."""

    def setUp(self):
        super().setUp()
        with open(os.path.join(DATA, "legacy_budget_expected.json")) as f:
            self.expected = json.load(f)
        (self.x, _), _ = digits(400)

    def _check(self, model):
        want = self.expected
        np.testing.assert_allclose(model.predict(self.x[:8], verbose=0), want["predictions"],
                                   atol=1e-6)
        for layer, mask in zip(model.switched_layers, want["masks"]):
            np.testing.assert_array_equal(layer.mask.numpy(), mask)
        self.assertEqual(int(model.switching_step.numpy()), want["switching_step"])
        state = model.budget_state.read()
        saved = dict(want["state"], log_step=want["state"]["step"])
        for name in AccuracyBudget.initial_state():
            self.assertAlmostEqual(state[name], saved[name], places=6, msg=name)

    def test_the_keras_file_loads_with_its_state(self):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            loaded = keras.models.load_model(os.path.join(DATA, "legacy_budget.keras"))
        self.assertEqual(loaded.sparsity.get_config(), self.expected["sparsity_config"])
        self._check(loaded)
        self.assertTrue(loaded.budget_outcome()["met"])
        plain = keras.models.load_model(os.path.join(DATA, "legacy_budget.keras"), compile=False)
        self.assertIsNone(plain.budget_state)
        np.testing.assert_allclose(plain.predict(self.x[:8], verbose=0),
                                   self.expected["predictions"], atol=1e-6)

    def test_the_checkpoint_loads_into_a_compiled_model(self):
        model = _budget_model(max_drop=0.02,
                              schedule=SwitchSchedule(switch_every=2, freeze_step=60),
                              reference_steps=8, check_every=4)
        model.load_weights(os.path.join(DATA, "legacy_budget.weights.h5"))
        self._check(model)

    def test_a_state_not_measured_reads_as_none(self):
        model = _budget_model(max_drop=0.02)
        model.budget_state.write_legacy([0.5, -1.0, 1.0, 0.3, -1.0, -1.0, -1.0])
        state = model.budget_state.read()
        for name in ("reference", "accuracy", "best_accuracy", "smoothed"):
            self.assertIsNone(state[name], name)
        self.assertEqual((state["density"], state["best_density"]), (0.5, 1.0))
        self.assertAlmostEqual(state["log_step"], 0.3, places=6)


# Slow tier (docs/testing.md, "What is tested where"): ~40 s; tests/distribute_test.py keeps
# MirroredStrategy in the default tier.
@pytest.mark.slow
class BudgetMirroredTest(TestCase):
    def test_matches_one_device(self):
        (x, y), _ = digits(384)
        runs = []
        for strategy in (tf.distribute.OneDeviceStrategy("CPU:0"), mirrored_strategy()):
            model = _budget_model(0.05, strategy=strategy, reference_steps=2, check_every=2,
                                  schedule=SwitchSchedule(switch_every=2, freeze_step=12))
            model.fit(x[:320], y[:320], batch_size=64, epochs=3, shuffle=False, verbose=0,
                      validation_data=(x[320:], y[320:]))
            runs.append(model)
        single, multi = runs
        self.assertIsInstance(multi.budget_state.density.value, tf.distribute.DistributedValues)
        np.testing.assert_allclose(_values(multi), _values(single), atol=1e-5)
        for a, b in zip(single.switched_layers, multi.switched_layers):
            np.testing.assert_array_equal(a.mask.numpy(), b.mask.numpy())
        self.assertLess(_state(single)["density"], 1.0)



def _planned_budget(max_drop=0.01, **kwargs):
    """An AccuracyBudget planned for a 1,000-step run: no warm-up, switch
    every 4 steps, freeze at 800."""
    schedule = SwitchSchedule(switch_every=4, freeze_step=800)
    control = AccuracyBudget(max_drop, **kwargs)
    control.plan(schedule, 1000)
    control.check_schedule(schedule)
    return control, schedule


class AccuracyBudgetTest(TestCase, parameterized.TestCase):
    def test_auto_steps(self):
        control, schedule = _planned_budget()
        self.assertEqual(control.reference_steps, round(budget.AUTO_REFERENCE_FRACTION * 800))
        # About AUTO_CHECKS checks in the search, a multiple of switch_every.
        self.assertEqual(control.check_every % schedule.switch_every, 0)
        checks = [s for s in range(1000) if control.is_check(s, schedule)]
        search = [s for s in checks if s + 1 < 800]
        self.assertAlmostEqual(len(search), budget.AUTO_CHECKS, delta=4)
        # Each search check ends just before a switch step; the last one is
        # the step before the freeze.
        for step in search:
            self.assertTrue(schedule(step + 1).switch, step)
        self.assertEqual(checks[-1], 799)
        self.assertGreaterEqual(search[0] + 1, control.reference_steps)

    def test_the_controller_measures_prunes_backs_off_and_settles(self):
        control, schedule = _planned_budget(0.01, reference_steps=100, check_every=8,
                                            search_margin=1.0)
        state = control.initial_state()
        # Before the reference point only the measurement is recorded.
        self.assertEqual(control.update(state, 0.5, 50, schedule), dict(state, accuracy=0.5))
        state = control.update(state, 0.90, 108, schedule)
        density, step = state["density"], state["log_step"]
        self.assertEqual(
            (state["reference"], state["best_density"], state["best_accuracy"], state["smoothed"]),
            (0.90, 1.0, 0.90, 0.90))
        self.assertAlmostEqual(density, np.exp(-budget.INITIAL_LOG_STEP))
        # Within budget: the density was good, the next is one step lower.
        state = control.update(state, 0.895, 118, schedule)
        self.assertAlmostEqual(state["best_density"], density)
        self.assertAlmostEqual(state["density"], density * np.exp(-step))
        # Over budget (smoothed (0.855 + 0.8975) / 2 < 0.90 - 0.01): half
        # the step, back up.
        low = state["density"]
        state = control.update(state, 0.855, 128, schedule)
        self.assertAlmostEqual(state["smoothed"], 0.87625)
        self.assertAlmostEqual(state["log_step"], step / 2)
        self.assertAlmostEqual(state["density"], low * np.exp(step / 2))
        self.assertAlmostEqual(state["best_density"], density)  # not a new best
        # The best accuracy is the smoothed one, and it only rises.
        state = control.update(state, 0.93, 138, schedule)
        self.assertAlmostEqual(state["best_accuracy"], 0.903125)
        # At the step before the freeze the density goes to the sparsest
        # within budget, whatever the check says.
        best = state["best_density"]
        state = control.update(state, 0.5, 799, schedule)
        self.assertEqual(state["density"], best)

    def test_the_search_spends_only_its_margin_of_the_budget(self):
        control, schedule = _planned_budget(0.01, reference_steps=100, check_every=8,
                                            search_margin=0.25)
        state = control.update(control.initial_state(), 0.90, 108, schedule)
        within = control.update(state, 0.896, 118, schedule)  # smoothed 0.898: 0.2 pt down
        self.assertLess(within["density"], state["density"])  # 0.2 pt <= 0.25 * 1 pt: prunes on
        over = control.update(state, 0.892, 118, schedule)  # smoothed 0.896: 0.4 pt down
        self.assertGreater(over["density"], state["density"])  # more than 0.25 of 1 pt: backs off

    def test_density_needs_a_model(self):
        with self.assertRaisesRegex(ValueError, "not attached"):
            AccuracyBudget(0.01).density()

    @parameterized.named_parameters(
        ("zero", dict(max_drop=0.0), "max_drop"),
        ("one", dict(max_drop=1.0), "max_drop"),
        ("negative", dict(max_drop=-0.01), "max_drop"),
        ("string", dict(max_drop="0.01"), "max_drop"),
        ("bool", dict(max_drop=True), "max_drop"),
        ("reference", dict(max_drop=0.01, reference_steps=0), "reference_steps"),
        ("check", dict(max_drop=0.01, check_every=1.5), "check_every"),
        ("allocation", dict(max_drop=0.01, allocation="learned"), "allocation"),
    )
    def test_invalid_arguments_name_themselves(self, kwargs, name):
        with self.assertRaisesRegex(ArgumentError, f"`{name}`") as caught:
            AccuracyBudget(**kwargs)
        self.assertEqual(caught.exception.argument, name)

    def test_schedules_it_cannot_work_with(self):
        with self.assertRaisesRegex(ArgumentError, "freeze_step=None") as caught:
            AccuracyBudget(0.01).check_schedule(SwitchSchedule(freeze_step=None))
        self.assertEqual(caught.exception.argument, "freeze_step")
        schedule = SwitchSchedule(switch_every=10, freeze_step=100)
        with self.assertRaisesRegex(ArgumentError, "nothing would be searched"):
            AccuracyBudget(0.01, reference_steps=95, check_every=10).check_schedule(schedule)
        with self.assertRaisesRegex(ArgumentError, "multiple of the schedule's switch_every"):
            AccuracyBudget(0.01, reference_steps=10, check_every=15).check_schedule(schedule)

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")


def write_legacy_budget_files(directory):
    """Writes legacy_budget.keras, legacy_budget.weights.h5 (a checkpoint,
    as the trainer's `Checkpoints.save` writes one) and
    legacy_budget_expected.json: a small digits model compiled with an
    AccuracyBudget, trained until its state holds a measured reference, with
    its predictions on 8 examples, masks and budget state. Run at commit
    f1a2932, whose state was one 7-entry vector (density, reference,
    best_density, step, accuracy, best_accuracy, smoothed; -1: not measured)."""
    import json

    (x, y), _ = digits(400)
    model = _budget_model(max_drop=0.02, schedule=SwitchSchedule(switch_every=2, freeze_step=60),
                          reference_steps=8, check_every=4)
    model.fit(x[:320], y[:320], batch_size=32, epochs=6, validation_data=(x[320:], y[320:]),
              shuffle=False, verbose=0)
    model.save(os.path.join(directory, "legacy_budget.keras"))
    model.save_weights(os.path.join(directory, "legacy_budget.weights.h5"))
    state = keras.ops.convert_to_numpy(model.budget_state).tolist()
    expected = {
        "predictions": model.predict(x[:8], verbose=0).tolist(),
        "masks": [np.asarray(l.mask).tolist() for l in model.switched_layers],
        "state": dict(zip(("density", "reference", "best_density", "step", "accuracy",
                           "best_accuracy", "smoothed"), state)),
        "switching_step": int(np.asarray(model.switching_step)),
        "sparsity_config": model.sparsity.get_config(),
    }
    with open(os.path.join(directory, "legacy_budget_expected.json"), "w") as f:
        json.dump(expected, f)
