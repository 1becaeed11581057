"""AccuracyBudget end to end on scikit-learn's digits: the budget is met on
held-out data, bad inputs are refused, the state survives saving, and
MirroredStrategy matches one device (`keras_switch/budget.py` and the
budget half of `keras_switch/sparsity.py`)."""

import os
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_switch
from keras_switch import SwitchSchedule
from keras_switch.budget import BudgetChecks
from keras_switch.sparsity import BUDGET_STATE
from keras_switch.sparsity import BudgetExceededWarning
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
    return dict(zip(BUDGET_STATE, keras.ops.convert_to_numpy(model.budget_state).tolist()))


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
        np.testing.assert_array_equal(loaded.budget_state.numpy(), self.model.budget_state.numpy())
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
        self.assertTrue(any(v is model.budget_state for v in model.non_trainable_variables))
        model.fit(x[:128], y[:128], batch_size=16, epochs=1, verbose=0,
                  validation_data=(x[128:], y[128:]))
        self.assertGreaterEqual(model.budget_outcome()["reference_validation_accuracy"], 0.0)

    def test_a_schedule_without_a_frozen_tail_is_refused(self):
        model = mlp()
        with self.assertRaisesRegex(ValueError, "freeze_step=None"):
            compile_for_classes(model, sparsity=keras_switch.AccuracyBudget(0.01),
                                schedule=SwitchSchedule(freeze_step=None))


# Slow tier (README, "What is tested where"): ~40 s; tests/distribute_test.py keeps
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
        self.assertIsInstance(multi.budget_state.value, tf.distribute.DistributedValues)
        np.testing.assert_allclose(multi.budget_state.numpy(), single.budget_state.numpy(),
                                   atol=1e-5)
        for a, b in zip(single.switched_layers, multi.switched_layers):
            np.testing.assert_array_equal(a.mask.numpy(), b.mask.numpy())
        self.assertLess(_state(single)["density"], 1.0)


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
