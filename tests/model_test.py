import json
import os
import warnings
from unittest import mock

import keras
import numpy as np
import tensorflow as tf
from absl.testing import parameterized

import keras_switch
from keras_switch import SwitchedDense
from keras_switch import SwitchingModel
from keras_switch import SwitchSchedule
from keras_switch import Switcher
from keras_switch.compile_fit import CompileAndFit
from keras_switch.sparsity import SparsityPenalty
from keras_switch.sparsity import TargetSparsity
from tests.helpers import SubclassedNet
from tests.test_case import TestCase
from tests.test_case import compile_for_classes
from tests.test_case import digits
from tests.test_case import mlp
from tests.test_case import snapshot
from tests.test_case import tensorflow_only


def _changed(before, after):
    return [bool(np.any(b != a)) for b, a in zip(before, after)]


class ConstructionTest(TestCase):
    def test_functional_and_subclassed_in_one_process_either_order(self):
        first = SubclassedNet()
        first(np.ones((2, 64), "float32"))
        functional = mlp()
        self.assertIsInstance(functional, SwitchingModel)
        second = SubclassedNet()  # after a functional SwitchingModel
        second(np.ones((2, 64), "float32"))
        self.assertEqual(SwitchingModel.__bases__, (CompileAndFit, keras.Model))  # nothing injected
        for model in (first, functional, second):
            self.assertIsInstance(model, SwitchingModel)
        self.assertEqual(
            type(SwitchingModel(inputs=functional.inputs, outputs=functional.outputs)),
            type(functional),
        )

    def test_variable_sets_partition_the_trainable_variables(self):
        model = mlp()
        self.assertLen(model.switchers, 1)
        self.assertLen(model.switched_layers, 3)
        task = {id(v) for v in model.task_variables}
        switch = {id(v) for v in model.switcher_variables}
        self.assertFalse(task & switch)
        self.assertEqual(task | switch, {id(v) for v in model.trainable_variables})
        self.assertLen(model.task_variables, 6)

    def test_sequential_inside_a_switching_model(self):
        switcher = Switcher()
        body = keras.Sequential(
            [keras.Input((64,)), SwitchedDense(16, activation="relu", switcher=switcher),
             SwitchedDense(10, switcher=switcher)]
        )
        inputs = keras.Input((64,))
        model = SwitchingModel(inputs, body(inputs))
        self.assertLen(model.switched_layers, 2)
        compile_for_classes(model, target_sparsity=0.5)
        (x, y), _ = digits(256)
        model.fit(x, y, batch_size=64, epochs=2, verbose=0)
        self.assertAlmostEqual(keras_switch.sparsity_report(model)["overall"], 0.5, delta=0.02)


class PhaseTest(TestCase):
    def _model(self, schedule):
        model = mlp()
        compile_for_classes(model, sparsity_penalty=1.0, schedule=schedule)
        return model

    def test_task_phase_leaves_switcher_and_switch_phase_leaves_task(self):
        model = self._model(SwitchSchedule(mode="alternate", freeze_step=None))
        (x, y), _ = digits(64)
        task0, switch0 = snapshot(model.task_variables), snapshot(model.switcher_variables)
        model.train_on_batch(x, y)  # step 0: task step only
        task1, switch1 = snapshot(model.task_variables), snapshot(model.switcher_variables)
        self.assertTrue(all(_changed(task0, task1)))
        self.assertFalse(any(_changed(switch0, switch1)))
        model.train_on_batch(x, y)  # step 1: switch step only
        task2, switch2 = snapshot(model.task_variables), snapshot(model.switcher_variables)
        self.assertFalse(any(_changed(task1, task2)))
        self.assertTrue(any(_changed(switch1, switch2)))
        self.assertEqual(int(model.task_optimizer.iterations), 1)
        self.assertEqual(int(model.switch_optimizer.iterations), 1)

    def test_switch_step_gradients_are_nonzero(self):
        model = self._model(SwitchSchedule(switch_every=1, freeze_step=None))
        (x, y), _ = digits(64)
        before = snapshot(model.switcher_variables)
        model.train_on_batch(x, y)
        after = snapshot(model.switcher_variables)
        # Every switcher variable moved: each got a non-zero gradient.
        self.assertTrue(all(_changed(before, after)))

    def test_every_k(self):
        model = self._model(SwitchSchedule(switch_every=3, freeze_step=None))
        (x, y), _ = digits(64)
        for _ in range(6):
            model.train_on_batch(x, y)
        self.assertEqual(int(model.task_optimizer.iterations), 6)
        self.assertEqual(int(model.switch_optimizer.iterations), 2)
        self.assertEqual(int(model.switching_step), 6)

    def test_warmup_trains_dense_and_freeze_keeps_the_mask(self):
        model = mlp()
        compile_for_classes(
            model, target_sparsity=0.8, target_ramp_steps=0,
            schedule=SwitchSchedule(switch_every=1, warmup_steps=2, freeze_step=5),
        )
        (x, y), _ = digits(64)
        switch0 = snapshot(model.switcher_variables)
        for _ in range(2):
            logs = model.train_on_batch(x, y, return_dict=True)
            self.assertEqual(logs["sparsity"], 0.0)
        self.assertFalse(any(_changed(switch0, snapshot(model.switcher_variables))))
        for _ in range(3):
            logs = model.train_on_batch(x, y, return_dict=True)
        self.assertAlmostEqual(logs["sparsity"], 0.8, delta=0.01)
        # The first frozen step (step 5) keeps the switcher's mask of that moment.
        masks = snapshot([layer.hard_mask() for layer in model.switched_layers])
        switch5 = snapshot(model.switcher_variables)
        kernels = snapshot([layer.kernel for layer in model.switched_layers])
        for _ in range(3):  # frozen
            model.train_on_batch(x, y)
        self.assertFalse(any(_changed(switch5, snapshot(model.switcher_variables))))
        self.assertTrue(
            all(_changed(kernels, snapshot([l.kernel for l in model.switched_layers])))
        )
        for layer, mask in zip(model.switched_layers, masks):
            self.assertAllEqual(layer.mask, mask)
            self.assertEqual(float(layer.mask_frozen), 1.0)
            # Inference after the run uses the frozen mask, not the switcher's.
            self.assertAllEqual(layer.current_mask(), mask)
        self.assertEqual(int(model.switch_optimizer.iterations), 3)

    def test_step_counter_set_between_calls_is_followed(self):
        # The step is kept in Python within a call; a new call re-reads it.
        model = self._model(SwitchSchedule(switch_every=4, freeze_step=None))
        (x, y), _ = digits(64)
        model.fit(x, y, batch_size=32, epochs=1, verbose=0)
        self.assertEqual(int(model.switching_step), 2)
        model.switching_step.assign(3)  # the next step is a switch step
        model.train_on_batch(x, y)
        self.assertEqual(int(model.switching_step), 4)
        self.assertEqual(int(model.switch_optimizer.iterations), 1)

    @tensorflow_only("tf.function")
    def test_train_step_in_a_custom_tf_function_raises(self):
        model = compile_for_classes(mlp(), target_sparsity=0.5)
        (x, y), _ = digits(32)
        with self.assertRaisesRegex(RuntimeError, "must run through fit"):
            tf.function(model.train_step)((x, y))

    def test_eager_train_step_follows_the_schedule(self):
        model = compile_for_classes(mlp(), run_eagerly=True, sparsity_penalty=1.0,
                                    schedule=SwitchSchedule(mode="alternate", freeze_step=None))
        (x, y), _ = digits(32)
        model.train_step((x, y))
        model.fit(x, y, batch_size=32, epochs=1, verbose=0)
        self.assertEqual(int(model.task_optimizer.iterations), 1)
        self.assertEqual(int(model.switch_optimizer.iterations), 1)

    def test_pure_task_loss_switches_nothing_off(self):
        model = mlp()
        with self.assertWarnsRegex(UserWarning, "no sparsity control"):
            compile_for_classes(model)
        (x, y), _ = digits(256)
        history = model.fit(x, y, batch_size=32, epochs=2, verbose=0)
        self.assertEqual(history.history["sparsity"][-1], 0.0)
        self.assertEqual(keras_switch.sparsity_report(model)["overall"], 0.0)

    def test_l1_penalty_sparsifies(self):
        model = mlp()
        # The penalty lowers every logit through the output bias, across the
        # magnitude prior's range (a few units): a larger switch step size.
        compile_for_classes(model, sparsity_penalty=3.0,
                            switch_optimizer=keras.optimizers.Adam(0.1))
        (x, y), _ = digits(512)
        model.fit(x, y, batch_size=32, epochs=3, verbose=0)
        self.assertGreater(keras_switch.sparsity_report(model)["overall"], 0.05)

    def test_logs_and_evaluate(self):
        model = mlp()
        compile_for_classes(model, target_sparsity=0.5)
        (x, y), (xt, yt) = digits(256)
        history = model.fit(x, y, batch_size=64, epochs=1, verbose=0, validation_data=(xt, yt))
        for key in ("loss", "accuracy", "sparsity", "switch_loss", "val_loss", "val_accuracy"):
            self.assertIn(key, history.history)
        self.assertNotIn("val_sparsity", history.history)
        # Validation resets every metric after the epoch's logs are taken:
        # the logged sparsity must be the training value, not the reset one.
        self.assertAlmostEqual(history.history["sparsity"][-1], 0.5, delta=0.01)

    def test_target_sparsity_on_real_digits(self):
        """Acceptance 6: target 0.9 ends within +-1 pt, accuracy well above chance."""
        model = mlp(units=(128, 64))
        steps = 1400 // 50
        compile_for_classes(
            model,
            optimizer=keras.optimizers.Adam(3e-3),
            target_sparsity=0.9,
            target_ramp_steps=10 * steps,
            schedule=SwitchSchedule(freeze_step=25 * steps),
        )
        (x, y), (xt, yt) = digits(1400)
        model.fit(x, y, batch_size=50, epochs=30, verbose=0)
        report = keras_switch.sparsity_report(model)
        self.assertAlmostEqual(report["overall"], 0.9, delta=0.01)
        _, accuracy = model.evaluate(xt, yt, verbose=0)
        self.assertGreater(accuracy, 0.8)  # chance is 0.1


class BudgetTest(TestCase):
    """How target_sparsity is met: caching, allocation, ramp, pruned weights."""

    def _trained(self, steps=6, **kwargs):
        model = mlp(units=(48, 24))
        # Every step a switch step and the full target at once: the masks
        # after fit() are placed on the final kernels.
        kwargs.setdefault("schedule", SwitchSchedule(switch_every=1, freeze_step=None))
        if "target_sparsity" in kwargs:
            kwargs.setdefault("target_ramp_steps", 0)
        compile_for_classes(model, **kwargs)
        (x, y), _ = digits(64 * steps)
        model.fit(x, y, batch_size=64, epochs=1, shuffle=False, verbose=0)
        return model

    def test_magnitude_allocation_splits_the_budget_like_global_magnitude(self):
        model = self._trained(target_sparsity=0.9, allocation="magnitude")
        layers = model.switched_layers
        kernels = [np.abs(layer.kernel.numpy()) for layer in layers]
        everything = np.sort(np.concatenate([k.ravel() for k in kernels]))
        cut = everything[-round(0.1 * everything.size)]
        for layer, kernel in zip(layers, kernels):
            # Each layer keeps as many connections as global magnitude pruning
            # of its current kernel would (the switcher picks which).
            self.assertEqual(int(layer.mask.numpy().sum()), int((kernel >= cut).sum()))
            self.assertAllEqual(layer.hard_mask(), layer.mask)
        self.assertAlmostEqual(keras_switch.sparsity_report(model)["overall"], 0.9, delta=1e-3)

    def test_learned_allocation_uses_one_threshold(self):
        model = self._trained(target_sparsity=0.9, allocation="learned")
        for layer in model.switched_layers:
            self.assertEqual(float(layer.switch_offset.numpy()), 0.0)
            self.assertAllEqual(layer.hard_mask(), layer.mask)
        self.assertAlmostEqual(keras_switch.sparsity_report(model)["overall"], 0.9, delta=1e-3)

    def test_task_steps_reuse_the_stored_mask(self):
        model = mlp()
        compile_for_classes(model, target_sparsity=0.7, target_ramp_steps=0,
                            schedule=SwitchSchedule(switch_every=4, freeze_step=None))
        (x, y), _ = digits(64)
        model.train_on_batch(x, y)  # step 0: switcher asked once, mask stored
        stored = snapshot([layer.mask for layer in model.switched_layers])
        for _ in range(2):  # task-only steps: the kernels move, the mask not
            model.train_on_batch(x, y)
        self.assertFalse(any(_changed(stored, snapshot([l.mask for l in model.switched_layers]))))
        model.train_on_batch(x, y)  # step 3: switch step, then a fresh mask
        self.assertEqual(int(model.switch_optimizer.iterations), 1)
        for layer in model.switched_layers:
            self.assertAllEqual(layer.mask, layer.hard_mask())

    def test_ramp_power_shapes_the_target(self):
        model = compile_for_classes(mlp(), target_sparsity=0.8, target_ramp_steps=10,
                                    target_ramp_power=3)
        model.switching_step.assign(4)  # progress 0.5
        self.assertAllClose(model.target_density(), 1 - 0.8 * (1 - 0.5 ** 3))
        model = compile_for_classes(mlp(), target_sparsity=0.8, target_ramp_steps=10,
                                    target_ramp_power=1)
        model.switching_step.assign(4)
        self.assertAllClose(model.target_density(), 1 - 0.8 * 0.5)

    def test_train_pruned_weights_reaches_switched_off_weights(self):
        for dense in (False, True):
            model = mlp()
            compile_for_classes(model, target_sparsity=0.8, train_pruned_weights=dense,
                                target_ramp_steps=0,
                                schedule=SwitchSchedule(switch_every=100, freeze_step=None))
            (x, y), _ = digits(64)
            model.train_on_batch(x, y)
            model.train_on_batch(x, y)  # the 0.8 mask is in place: task step
            before = snapshot([l.kernel for l in model.switched_layers])
            masks = snapshot([l.mask for l in model.switched_layers])
            model.train_on_batch(x, y)
            after = snapshot([l.kernel for l in model.switched_layers])
            moved_off = sum(
                int(np.sum((a != b) & (m == 0))) for a, b, m in zip(after, before, masks)
            )
            # Only the switched-off weights of used inputs can get a gradient.
            self.assertEqual(moved_off > 0, dense)


class DefaultRecipeTest(TestCase):
    """compile(target_sparsity=...) + fit() plans the measured recipe."""

    def test_fit_plans_ramp_freeze_and_interval_from_its_length(self):
        (x, y), _ = digits(64 * 10)
        model = compile_for_classes(mlp(), target_sparsity=0.8)
        self.assertFalse(model.planned)
        model.fit(x, y, batch_size=64, epochs=5, verbose=0)  # 50 steps
        self.assertTrue(model.planned)
        self.assertEqual(model.schedule.freeze_step, 40)  # the last 20% frozen
        self.assertEqual(model.sparsity.ramp_steps, 40)  # the target met there
        self.assertEqual(model.schedule.switch_every, 1)  # 40 // 32
        self.assertEqual(int(model.switch_optimizer.iterations), 40)
        self.assertAlmostEqual(keras_switch.sparsity_report(model)["overall"], 0.8, delta=1e-3)
        for layer in model.switched_layers:
            self.assertEqual(float(layer.mask_frozen), 1.0)
        # A second fit() keeps the plan (it is the model's, and saved with it).
        model.fit(x, y, batch_size=64, epochs=1, verbose=0)
        self.assertEqual(model.schedule.freeze_step, 40)
        path = self.get_temp_dir() + "/planned.keras"
        model.save(path)
        revived = keras.models.load_model(path)
        self.assertEqual(revived.schedule.get_config(), model.schedule.get_config())
        self.assertEqual(revived.sparsity.ramp_steps, 40)

    def test_fit_plans_with_a_keras_callback_list(self):
        # Keras uses a CallbackList as given: fit() puts its planner in front.
        (x, y), _ = digits(64 * 10)
        model = compile_for_classes(mlp(), target_sparsity=0.8)
        seen = []
        recorder = keras.callbacks.LambdaCallback(
            on_epoch_end=lambda epoch, logs: seen.append(epoch))
        # Keras passes the run's length to its own list only: a caller's list
        # without it is refused by name, before any step.
        bare = keras.callbacks.CallbackList([recorder], model=model)
        with self.assertRaisesRegex(ValueError, r"CallbackList passed to fit\(\) does not "
                                                r"carry it .*epochs=\.\.\., steps="):
            model.fit(x, y, batch_size=64, epochs=5, verbose=0, callbacks=bare)
        self.assertFalse(model.planned)
        self.assertEqual(int(model.task_optimizer.iterations), 0)
        callbacks = keras.callbacks.CallbackList([recorder], add_history=True, model=model,
                                                epochs=5, steps=10)
        model.fit(x, y, batch_size=64, epochs=5, verbose=0, callbacks=callbacks)
        self.assertTrue(model.planned)
        self.assertEqual(model.schedule.freeze_step, 40)
        self.assertEqual(seen, [0, 1, 2, 3, 4])
        self.assertAlmostEqual(keras_switch.sparsity_report(model)["overall"], 0.8, delta=1e-3)

    def test_the_compiled_objects_are_copies(self):
        schedule, target = SwitchSchedule(), keras_switch.TargetSparsity(0.5)
        model = compile_for_classes(mlp(), schedule=schedule, sparsity=target)
        model.plan(1000)
        self.assertEqual((schedule.freeze_step, target.ramp_steps), ("auto", "auto"))
        self.assertEqual((model.schedule.freeze_step, model.sparsity.ramp_steps), (800, 800))
        self.assertEqual(model.schedule.switch_every, 25)

    def test_outside_fit_the_run_must_be_planned(self):
        (x, y), _ = digits(64)
        model = compile_for_classes(mlp(), target_sparsity=0.5)
        with self.assertRaisesRegex(ValueError, r"model\.plan\(total_steps\)"):
            model.train_on_batch(x, y)
        model.plan(10)
        model.train_on_batch(x, y)
        self.assertEqual(int(model.switching_step), 1)
        with self.assertRaisesRegex(ValueError, "total_steps"):
            model.plan(0)

    def test_fit_on_data_of_unknown_length_asks_for_steps(self):
        (x, y), _ = digits(128)
        data = tf.data.Dataset.from_tensor_slices((x, y)).filter(lambda a, b: True).batch(32)
        model = compile_for_classes(mlp(), target_sparsity=0.5)
        with self.assertRaisesRegex(ValueError, "steps_per_epoch"):
            model.fit(data, epochs=1, shuffle=False, verbose=0)
        self.assertEqual(int(model.switching_step), 0)
        model.fit(data.repeat(), epochs=2, steps_per_epoch=4, shuffle=False, verbose=0)
        self.assertEqual(model.schedule.freeze_step, round(0.8 * 8))

    def test_explicit_steps_are_kept(self):
        model = compile_for_classes(
            mlp(), target_sparsity=0.5, target_ramp_steps=3,
            schedule=SwitchSchedule(switch_every=2, freeze_step=None))
        (x, y), _ = digits(64 * 4)
        model.fit(x, y, batch_size=64, epochs=2, verbose=0)
        self.assertEqual((model.schedule.switch_every, model.schedule.freeze_step), (2, None))
        self.assertEqual(model.sparsity.ramp_steps, 3)


class CompileTest(TestCase, parameterized.TestCase):
    @parameterized.named_parameters(
        ("sparsity_high", dict(target_sparsity=1.0), ValueError, "target_sparsity"),
        ("sparsity_negative", dict(target_sparsity=-0.1), ValueError, "target_sparsity"),
        ("sparsity_string", dict(target_sparsity="0.9"), ValueError, "target_sparsity"),
        ("penalty_negative", dict(sparsity_penalty=-1.0), ValueError, "sparsity_penalty"),
        ("both", dict(target_sparsity=0.5, sparsity_penalty=1.0), ValueError, "not both"),
        ("ramp", dict(target_ramp_steps=-2), ValueError, "target_ramp_steps"),
        ("schedule", dict(schedule=3), TypeError, "schedule"),
        ("schedule_mode", dict(schedule="never"), ValueError, "mode"),
        ("optimizer_twice", dict(optimizer="sgd", task_optimizer="adam"), ValueError,
         "not both"),
        ("unknown", dict(learning_rate=3), TypeError, "learning_rate"),
        ("steps_per_execution", dict(steps_per_execution=4), ValueError,
         "steps_per_execution"),
        ("ramp_power", dict(target_ramp_power=0.5), ValueError, "target_ramp_power"),
        ("allocation", dict(allocation="uniform"), ValueError, "allocation"),
        ("pruned_weights", dict(train_pruned_weights="yes"), ValueError,
         "train_pruned_weights"),
        ("estimator", dict(switch_estimator="gumbel"), ValueError,
         "switch_estimator.*gumbel"),
        ("sparsity_type", dict(sparsity=0.9), TypeError, "sparsity"),
        ("sparsity_and_shorthand", dict(sparsity=TargetSparsity(0.5), target_sparsity=0.5),
         ValueError, r"`sparsity` or its shorthand \['target_sparsity'\]"),
        ("ramp_after_freeze", dict(target_sparsity=0.9, target_ramp_steps=100,
                                   schedule=SwitchSchedule(freeze_step=50)),
         ValueError, r"target_ramp_steps=100\), after the mask freezes at freeze_step=50"),
        ("ramp_after_freeze_object", dict(sparsity=TargetSparsity(0.9, ramp_steps=100),
                                          schedule=SwitchSchedule(freeze_step=50)),
         ValueError, r"ramp_steps=100\), after the mask freezes"),
    )
    def test_invalid_compile_arguments_raise(self, kwargs, error, pattern):
        with self.assertRaisesRegex(error, pattern):
            mlp().compile(loss="mse", **kwargs)

    def test_keras_positional_order(self):
        model = mlp()
        model.compile("sgd", "sparse_categorical_crossentropy", None, ["accuracy"],
                      target_sparsity=0.5)
        model.plan(10)
        self.assertIsInstance(model.task_optimizer, keras.optimizers.SGD)
        self.assertIsInstance(model.switch_optimizer, keras.optimizers.Adam)
        self.assertEqual(model.loss, "sparse_categorical_crossentropy")
        (x, y), _ = digits(64)
        logs = model.train_on_batch(x, y, return_dict=True)
        self.assertIn("accuracy", logs)

    @parameterized.parameters([(keras.optimizers.Adam(),), ("adam",), ("sgd",)])
    def test_an_optimizer_in_the_place_of_the_loss_raises(self, switch_optimizer):
        with self.assertRaisesRegex(TypeError, "Keras' order.*switch_optimizer="):
            mlp().compile(keras.optimizers.Adam(), switch_optimizer, target_sparsity=0.5)

    def test_task_optimizer_is_the_former_name_of_optimizer(self):
        model = mlp()
        model.compile(task_optimizer=keras.optimizers.SGD(0.1), loss="mse", target_sparsity=0.5)
        self.assertIsInstance(model.task_optimizer, keras.optimizers.SGD)
        self.assertIs(model.optimizer, model.task_optimizer)
        self.assertEqual(model.get_compile_config()["optimizer"]["class_name"], "SGD")

    def test_no_sparsity_control_warns(self):
        with self.assertWarnsRegex(UserWarning, "no sparsity control.*target_sparsity="):
            mlp().compile(loss="mse")

    def test_switch_loss_is_the_mean_over_switch_steps(self):
        (x, y), _ = digits(64 * 6)
        schedule = SwitchSchedule(switch_every=3, freeze_step=None)

        def model():
            keras.utils.set_random_seed(0)
            return compile_for_classes(mlp(), target_sparsity=0.5, target_ramp_steps=4,
                                       schedule=schedule)

        each = model()
        each.plan(6)
        steps = [each.train_on_batch(x[i:i + 64], y[i:i + 64], return_dict=True)["switch_loss"]
                 for i in range(0, 64 * 6, 64)]  # switch steps: 2 and 5
        self.assertNotIn(0.0, (steps[2], steps[5]))
        self.assertEqual([steps[i] for i in (0, 1, 3, 4)], [0.0] * 4)  # none to average
        history = model().fit(x, y, batch_size=64, epochs=1, shuffle=False, verbose=0)
        self.assertAllClose(history.history["switch_loss"][0], (steps[2] + steps[5]) / 2,
                            rtol=1e-5)

    def test_same_optimizer_twice_raises(self):
        optimizer = keras.optimizers.Adam()
        with self.assertRaisesRegex(ValueError, "two different"):
            mlp().compile(task_optimizer=optimizer, switch_optimizer=optimizer, loss="mse")

    def test_a_sparsity_object_trains_as_its_shorthand(self):
        (x, y), _ = digits(64 * 5)
        weights = []
        for kwargs in (dict(target_sparsity=0.7, target_ramp_steps=3, allocation="learned"),
                       dict(sparsity=TargetSparsity(0.7, ramp_steps=3, allocation="learned"))):
            keras.utils.set_random_seed(0)
            model = compile_for_classes(mlp(), schedule=SwitchSchedule(switch_every=2), **kwargs)
            model.fit(x, y, batch_size=64, epochs=1, shuffle=False, verbose=0)
            weights.append(snapshot(model.weights))
        for a, b in zip(*weights):
            self.assertAllEqual(a, b)

    def test_fit_that_ends_short_of_its_target_says_so(self):
        (x, y), _ = digits(64 * 4)
        model = compile_for_classes(mlp(), target_sparsity=0.9, target_ramp_steps=1000,
                                    schedule=SwitchSchedule(freeze_step=None))
        with self.assertWarnsRegex(UserWarning, r"below the target 0\.9 .*stopped at step 4, "
                                   "before the target ramp ends at step 1000"):
            model.fit(x, y, batch_size=64, epochs=1, verbose=0)
        self.assertIn("below the target", model.target_shortfall())
        reached = compile_for_classes(mlp(), target_sparsity=0.9, target_ramp_steps=2)
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)
            reached.fit(x, y, batch_size=64, epochs=1, verbose=0)
        self.assertIsNone(reached.target_shortfall())
        self.assertIsNone(compile_for_classes(mlp(), sparsity_penalty=0.1).target_shortfall())

    def test_fit_that_switches_a_layer_off_says_so(self):
        # At 99.5%, global magnitude pruning's split gives the 160 large
        # output weights the whole budget and the two hidden layers nothing.
        (x, y), _ = digits(64 * 4)
        for allocation, off in (("magnitude", True), ("erk", False)):
            keras.utils.set_random_seed(0)
            model = compile_for_classes(
                mlp(units=(256, 16)), target_sparsity=0.995, target_ramp_steps=1,
                allocation=allocation, schedule=SwitchSchedule(switch_every=1, freeze_step=None))
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                model.fit(x, y, batch_size=64, epochs=1, verbose=0)
            messages = [str(w.message) for w in caught
                        if issubclass(w.category, keras_switch.sparsity.LayerSwitchedOffWarning)]
            report = {r["name"]: r["sparsity"] for r in keras_switch.sparsity_report(model)["layers"]}
            self.assertEqual(bool(messages), off, messages)
            self.assertEqual(any(v == 1.0 for v in report.values()), off, report)
            if off:
                self.assertRegex(messages[0], r"every connection of \['switched_dense.*'\] is "
                                 r"switched off.*allocation='erk'")

    def test_fit_counts_the_sparsity_once_for_its_end_of_run_checks(self):
        (x, y), _ = digits(64 * 2)
        model = compile_for_classes(mlp(), target_sparsity=0.5, target_ramp_steps=1)
        with mock.patch("keras_switch.compile_fit.sparsity_report",
                        wraps=keras_switch.sparsity_report) as report:
            model.fit(x, y, batch_size=64, epochs=1, verbose=0)
        self.assertEqual(report.call_count, 1)

    def test_a_ramp_longer_than_the_planned_run_is_refused_before_training(self):
        (x, y), _ = digits(64 * 4)
        model = compile_for_classes(mlp(), target_sparsity=0.9, target_ramp_steps=1000)
        before = snapshot(model.weights)
        with self.assertRaisesRegex(ValueError, r"ramp ends at step 1000.*freeze_step=3"):
            model.fit(x, y, batch_size=64, epochs=1, verbose=0)
        self.assertEqual(int(model.switching_step), 0)
        for a, b in zip(before, snapshot(model.weights)):
            self.assertAllEqual(a, b)

    def test_optimizers_are_built_over_their_own_variables(self):
        model = compile_for_classes(mlp(), target_sparsity=0.5)
        adam_slots = 2
        self.assertLen(
            model.task_optimizer.variables, 2 + adam_slots * len(model.task_variables)
        )
        self.assertLen(
            model.switch_optimizer.variables,
            2 + adam_slots * len(model.switcher_variables),
        )


class SaveLoadTest(TestCase):
    def _trained(self, model, **compile_kwargs):
        compile_for_classes(model, **compile_kwargs)
        (x, y), _ = digits(256)
        model.fit(x, y, batch_size=64, epochs=2, verbose=0)
        return model, x

    def _check_round_trip(self, model, x, train_after=True):
        path = os.path.join(self.get_temp_dir(), "m.keras")
        model.save(path)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # e.g. "Skipping variable loading"
            loaded = keras.models.load_model(path)  # default safe_mode=True
        self.assertIsInstance(loaded, SwitchingModel)
        self.assertLen(loaded.switchers, 1)
        self.assertTrue(all(l.switcher is loaded.switchers[0] for l in loaded.switched_layers))
        self.assertAllClose(model.predict(x, verbose=0), loaded.predict(x, verbose=0), atol=0)
        for a, b in zip(model.switched_layers, loaded.switched_layers):
            self.assertAllEqual(a.current_mask(), b.current_mask())
        for a, b in zip(model.task_optimizer.variables, loaded.task_optimizer.variables):
            self.assertAllEqual(a, b)
        for a, b in zip(model.switch_optimizer.variables, loaded.switch_optimizer.variables):
            self.assertAllEqual(a, b)
        self.assertEqual(int(loaded.switching_step), int(model.switching_step))
        self.assertEqual(loaded.sparsity.get_config(), model.sparsity.get_config())
        self.assertEqual(loaded.switch_estimator, model.switch_estimator)
        self.assertEqual(loaded.schedule.get_config(), model.schedule.get_config())
        if train_after:  # the loaded model is compiled and trains on
            loaded.train_on_batch(x[:32], np.zeros(32, "int32"))
        return loaded

    def test_functional_save_load(self):
        model, x = self._trained(
            mlp(), target_sparsity=0.6, schedule=SwitchSchedule(switch_every=2),
            switch_estimator="identity",
        )
        self._check_round_trip(model, x)

    def test_subclassed_save_load(self):
        model, x = self._trained(SubclassedNet(units=12), sparsity_penalty=0.5)
        loaded = self._check_round_trip(model, x)
        self.assertEqual(loaded.units, 12)

    def test_sequential_save_load_shares_the_switcher(self):
        switcher = Switcher()
        model = keras.Sequential(
            [keras.Input((5,)), SwitchedDense(4, switcher=switcher),
             SwitchedDense(2, switcher=switcher)]
        )
        path = os.path.join(self.get_temp_dir(), "s.keras")
        model.save(path)
        loaded = keras.models.load_model(path)
        self.assertIs(loaded.layers[0].switcher, loaded.layers[1].switcher)
        x = np.random.RandomState(0).normal(size=(3, 5)).astype("float32")
        self.assertAllEqual(model(x), loaded(x))

    def test_from_config_outside_a_keras_file_shares_the_switcher(self):
        model = mlp()
        revived = SwitchingModel.from_config(model.get_config())
        self.assertLen(revived.switchers, 1)
        self.assertLen(revived.switched_layers, 3)

    def test_keras_files_saved_before_the_sparsity_controls_still_load(self):
        """tests/data/legacy_*.keras were saved by commit e6d5d3f (before
        `compile(sparsity=...)`): their compile configs hold the shorthand
        keywords. Written by `write_legacy_files` below, run at that commit."""
        with open(os.path.join(DATA, "legacy_expected.json")) as f:
            expected = json.load(f)
        (x, y), _ = digits(256)
        controls = {"target": TargetSparsity(0.8, ramp_steps=6, ramp_power=2.0,
                                             allocation="magnitude"),
                    "penalty": SparsityPenalty(0.05)}
        for name, want in expected.items():
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                loaded = keras.models.load_model(os.path.join(DATA, f"legacy_{name}.keras"))
            self.assertAllClose(loaded.predict(x[:8], verbose=0), want["predictions"], atol=1e-6)
            for layer, mask, frozen in zip(loaded.switched_layers, want["masks"],
                                           want["mask_frozen"]):
                self.assertAllEqual(layer.mask, mask)
                self.assertEqual(float(layer.mask_frozen), frozen)
            self.assertEqual(int(loaded.switching_step), want["switching_step"])
            self.assertEqual(int(loaded.task_optimizer.iterations), want["task_iterations"])
            self.assertEqual(int(loaded.switch_optimizer.iterations), want["switch_iterations"])
            self.assertAlmostEqual(keras_switch.sparsity_report(loaded)["overall"],
                                   want["sparsity"])
            self.assertEqual(loaded.sparsity.get_config(), controls[name].get_config())
            self.assertEqual(loaded.schedule.get_config(), want["schedule"])
            self.assertEqual(loaded.switch_estimator,
                             want["compile"].get("switch_estimator", "sigmoid"))
            loaded.train_on_batch(x[:32], y[:32])  # compiled, and trains on

    def test_frozen_state_survives_save_load(self):
        model, x = self._trained(mlp(), target_sparsity=0.5)
        model.freeze_switches()
        loaded = self._check_round_trip(model, x, train_after=False)
        self.assertTrue(all(float(l.mask_frozen) == 1.0 for l in loaded.switched_layers))


DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")


def write_legacy_files(directory):
    """Writes legacy_{target,penalty}.keras and legacy_expected.json: two
    small digits models trained 16 steps, saved with their predictions on 8
    examples, masks, step counters and compile arguments."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = (data.data[:256] / 16.0).astype("float32")
    y = data.target[:256].astype("int32")
    expected = {}
    for name, kwargs in {
        "target": dict(target_sparsity=0.8, target_ramp_steps=6, target_ramp_power=2.0,
                       allocation="magnitude", switch_estimator="identity",
                       schedule=SwitchSchedule(switch_every=2, warmup_steps=2,
                                               freeze_step=12)),
        "penalty": dict(sparsity_penalty=0.05, train_pruned_weights=True,
                        schedule=SwitchSchedule(mode="alternate")),
    }.items():
        keras.utils.set_random_seed(0)
        switcher = Switcher(name=f"switcher_{name}")
        inputs = keras.Input((64,))
        hidden = SwitchedDense(16, activation="relu", switcher=switcher, name="fc1")(inputs)
        outputs = SwitchedDense(10, switcher=switcher, name="fc2")(hidden)
        model = SwitchingModel(inputs, outputs, name=f"legacy_{name}")
        model.compile(task_optimizer=keras.optimizers.Adam(1e-2),
                      switch_optimizer=keras.optimizers.Adam(1e-2),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=["accuracy"], **kwargs)
        model.fit(x, y, batch_size=32, epochs=2, verbose=0)
        model.save(os.path.join(directory, f"legacy_{name}.keras"))
        expected[name] = {
            "predictions": model.predict(x[:8], verbose=0).tolist(),
            "masks": [np.asarray(l.mask).tolist() for l in model.switched_layers],
            "mask_frozen": [float(np.asarray(l.mask_frozen)) for l in model.switched_layers],
            "switching_step": int(np.asarray(model.switching_step)),
            "task_iterations": int(np.asarray(model.task_optimizer.iterations)),
            "switch_iterations": int(np.asarray(model.switch_optimizer.iterations)),
            "sparsity": keras_switch.sparsity_report(model)["overall"],
            "compile": {k: v for k, v in kwargs.items() if k != "schedule"},
            "schedule": kwargs["schedule"].get_config(),
        }
    with open(os.path.join(directory, "legacy_expected.json"), "w") as f:
        json.dump(expected, f)


if __name__ == "__main__":
    tf.test.main()
