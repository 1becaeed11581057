"""`SwitchingModel`: trains a task network and its switcher alternately.

One training step (`train_step`), in this order, as the `SwitchSchedule`
phase of the step (read from `switching_step`) says:

1. **Task phase.** The mask of the phase (while switching: the mask the
   last switch step stored in each layer's `mask` variable, so the switcher
   does not run here; all-ones during the dense warm-up; the stored mask
   once frozen) is held fixed; one gradient step of `task_optimizer` on the
   task variables (everything trainable except the switchers). With
   `train_pruned_weights=True` (off by default: measured worse, see
   BENCHMARKS.md) the gradient reaches the switched-off weights too while
   switching (straight-through), so a pruned weight keeps learning and the
   switcher, which reads the weights, can switch it back on.
2. **Switch phase** (when the schedule says so). The switcher's masks are
   recomputed from the updated kernels with the straight-through estimator;
   one gradient step of `switch_optimizer` on the switcher variables only,
   on the same objective: task loss + the sparsity control's `penalty`.
   Then the switcher runs once more, the sparsity control places the
   thresholds (`place_thresholds`), and the new hard masks are stored for
   the next task steps.

The model owns only this alternation. When each phase runs is the
schedule's business (`keras_switch.schedule`); how dense the layers must be
and where the thresholds go is the sparsity control's
(`keras_switch.sparsity`); the masked kernel is the layer's
(`keras_switch.layers`).
"""

import contextlib
import inspect
import math
import warnings

import keras
import tensorflow as tf
from keras import ops

from keras_switch import _keras_internals
from keras_switch import budget
from keras_switch import distribute
from keras_switch.checks import ArgumentError
from keras_switch.checks import check_bool
from keras_switch.checks import check_choice
from keras_switch.checks import check_int
from keras_switch.report import sparsity_report
from keras_switch.layers import ESTIMATORS
from keras_switch.layers import link_neighbours
from keras_switch.layers import straight_through
from keras_switch.layers import switched_layers
from keras_switch.schedule import SwitchSchedule
from keras_switch.sparsity import SHORTHAND
from keras_switch.sparsity import AccuracyBudget
from keras_switch.sparsity import BudgetExceededWarning
from keras_switch.sparsity import BUDGET_STATE
from keras_switch.sparsity import TARGET_TOLERANCE
from keras_switch.sparsity import TargetShortfallWarning
from keras_switch.sparsity import SparsityControl
from keras_switch.sparsity import from_shorthand
from keras_switch.switcher import sharing_scope

_SERIALIZE = keras.saving.serialize_keras_object


def _is_functional_call(args, kwargs):
    return (
        len(args) == 2
        or (len(args) == 1 and "outputs" in kwargs)
        or ("inputs" in kwargs and "outputs" in kwargs)
    )


class _LastValue(keras.metrics.Metric):
    """Reports the most recent value (sparsity is a state, not an average)."""

    def __init__(self, name, **kwargs):
        super().__init__(name=name, **kwargs)
        self.value = self.add_variable(
            shape=(), initializer="zeros", name="value", aggregation="mean"
        )

    def update_state(self, value):
        self.value.assign(ops.cast(value, self.value.dtype))

    def result(self):
        # A copy: Keras may read results after a later reset_state() (fit
        # collects the epoch's logs, then evaluate() resets every metric).
        return ops.copy(self.value)


@keras.saving.register_keras_serializable(package="keras_switch")
class SwitchingModel(keras.Model):
    """A `keras.Model` whose switched layers (`SwitchedDense`, `SwitchedConv2D`) learn their own sparsity.

    Use it like `keras.Model`: functionally, `SwitchingModel(inputs,
    outputs)`, or as a base class (`class Net(SwitchingModel)`), then
    `compile()` with two optimizers and `fit()`.

    Create the model, and call `compile()`, inside `strategy.scope()` to train
    under `tf.distribute`.
    """

    def __new__(cls, *args, **kwargs):
        if cls is SwitchingModel and _is_functional_call(args, kwargs):
            return keras.Model.__new__(FunctionalSwitchingModel, *args, **kwargs)
        return super().__new__(cls, *args, **kwargs)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._init_switching_state()

    def _init_switching_state(self):
        # Counts train_step calls; the schedule reads it. Saved with the model
        # so a resumed run continues the schedule where it stopped.
        self.switching_step = keras.Variable(
            0,
            dtype="int64",
            trainable=False,
            aggregation="only_first_replica",
            name="switching_step",
        )
        self._sparsity_tracker = _LastValue(name="sparsity")
        self._switch_loss_tracker = keras.metrics.Mean(name="switch_loss")
        self.task_optimizer = None
        self.switch_optimizer = None
        self.schedule = None
        self.sparsity = None
        self._phase = None
        # An AccuracyBudget's state (sparsity.BUDGET_STATE), created by the
        # compile() that first gives one; saved with the model.
        self.budget_state = None
        # Called with each training step's index once it has run (the
        # budget's held-out checks; see budget.BudgetChecks.on_train_begin).
        self._step_hook = None
        # `switching_step` as a Python int between the steps of one fit() or
        # train_on_batch() call (reading the variable each step costs a
        # device sync); None: read the variable.
        self._step_cache = None

    # -- the two variable sets ------------------------------------------------

    @property
    def switched_layers(self):
        """Every switched layer with a switcher, in model order (their
        `neighbours` linked on the way: see `link_neighbours`)."""
        layers = switched_layers(self)
        link_neighbours(layers)
        return layers

    @property
    def switchers(self):
        unique = {}
        for layer in self.switched_layers:
            unique.setdefault(id(layer.switcher), layer.switcher)
        return list(unique.values())

    @property
    def switcher_variables(self):
        return [v for s in self.switchers for v in s.trainable_variables]

    @property
    def task_variables(self):
        switcher_ids = {id(v) for v in self.switcher_variables}
        return [v for v in self.trainable_variables if id(v) not in switcher_ids]

    # -- compile ------------------------------------------------------------

    def compile(
        self,
        task_optimizer="adam",
        switch_optimizer="adam",
        loss=None,
        metrics=None,
        target_sparsity=None,
        sparsity_penalty=None,
        target_ramp_steps=None,
        target_ramp_power=None,
        allocation=None,
        train_pruned_weights=False,
        switch_estimator="sigmoid",
        schedule=None,
        sparsity=None,
        loss_weights=None,
        weighted_metrics=None,
        run_eagerly=False,
        steps_per_execution=1,
        jit_compile="auto",
        auto_scale_loss=True,
        **kwargs,
    ):
        """Configures the model for alternating training.

        Args:
            task_optimizer, switch_optimizer: Optimizers (or names) for the
                task variables and the switcher variables; two objects.
            sparsity: A `keras_switch.sparsity` control (`TargetSparsity`,
                `SparsityPenalty`, `AccuracyBudget`: fit() then needs
                held-out data) or `None`: the pure task objective.
            target_sparsity, target_ramp_steps, target_ramp_power,
                allocation, sparsity_penalty: Shorthand for `sparsity`
                (`keras_switch.sparsity.from_shorthand`); not with it.
            train_pruned_weights: Straight-through gradient to switched-off
                weights while the mask can still change (see the module doc).
            switch_estimator: The switch step's gradient of the hard
                switches: `"sigmoid"` (`p (1 - p)`) or `"identity"` (1).
            schedule: A `SwitchSchedule`, a mode name, or `None`.
            **: The rest as in `keras.Model.compile`; `steps_per_execution`
                must be 1.

        Raises:
            ValueError: naming the argument, for a value that cannot work,
                such as a target ramp that ends after the mask freezes.
        """
        _check_compile_kwargs(kwargs, steps_per_execution)
        schedule = _resolve_schedule(schedule)
        shorthand = dict(
            target_sparsity=target_sparsity, sparsity_penalty=sparsity_penalty,
            target_ramp_steps=target_ramp_steps, target_ramp_power=target_ramp_power,
            allocation=allocation,
        )
        sparsity = _resolve_sparsity(sparsity, shorthand, schedule)
        check_bool("train_pruned_weights", train_pruned_weights)
        check_choice("switch_estimator", switch_estimator, ESTIMATORS)
        task_optimizer, switch_optimizer = _two_optimizers(task_optimizer, switch_optimizer)
        keras_args = dict(
            loss=loss, loss_weights=loss_weights, metrics=metrics,
            weighted_metrics=weighted_metrics, run_eagerly=run_eagerly,
            steps_per_execution=steps_per_execution, jit_compile=jit_compile,
            auto_scale_loss=auto_scale_loss,
        )
        super().compile(optimizer=task_optimizer, **keras_args)
        # Keras may have wrapped it in a LossScaleOptimizer (mixed_float16).
        self.task_optimizer = self.optimizer
        if auto_scale_loss and self.dtype_policy.name == "mixed_float16":
            switch_optimizer = _loss_scaled(switch_optimizer)
        self.switch_optimizer = switch_optimizer
        self.schedule = schedule
        self.sparsity = sparsity
        if isinstance(sparsity, AccuracyBudget):
            self._reset_budget_state(sparsity)
        self.train_pruned_weights = train_pruned_weights
        self.switch_estimator = switch_estimator
        self._keras_compile_args = keras_args
        self.build_optimizers()

    def _reset_budget_state(self, control):
        initial = keras.ops.convert_to_tensor(control.initial_state(), "float32")
        if self.budget_state is None:
            _keras_internals.add_state_after_build(self, "budget_state", keras.Variable(
                initial, trainable=False, aggregation="only_first_replica",
                name="budget_state"))
        else:
            self.budget_state.assign(initial)
        control.attach(self.budget_state)

    def load_own_variables(self, store):
        # A model saved compiled with an AccuracyBudget holds its state as
        # the last own variable; loaded without compile() there is no
        # variable to take it.
        own = len(self._trainable_variables) + len(self._non_trainable_variables)
        keys = list(store.keys())
        if self.budget_state is None and len(keys) == own + 1:
            store = {str(i): store[str(i)] for i in range(own)}
        super().load_own_variables(store)

    def get_compile_config(self):
        if not self.compiled or self.sparsity is None:
            return {}
        config = dict(
            self._keras_compile_args,
            # The optimizers the user gave, not Keras' loss-scale wrappers.
            task_optimizer=getattr(self.task_optimizer, "inner_optimizer", self.task_optimizer),
            switch_optimizer=getattr(self.switch_optimizer, "inner_optimizer",
                                     self.switch_optimizer),
            sparsity=self.sparsity,
            schedule=self.schedule,
            train_pruned_weights=self.train_pruned_weights,
            switch_estimator=self.switch_estimator,
        )
        return {key: _SERIALIZE(value) for key, value in config.items()}

    def compile_from_config(self, config):
        # Configs saved before `sparsity=` existed hold the shorthand keys.
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)

    def build_optimizers(self):
        """Builds each optimizer over its own variable set, once the model is
        built, so that optimizer state saved with the model loads back."""
        if not self.built or self.task_optimizer is None:
            return
        for optimizer, variables in (
            (self.task_optimizer, self.task_variables),
            (self.switch_optimizer, self.switcher_variables),
        ):
            if not optimizer.built:
                optimizer.build(variables)
                continue
            built_over = _keras_internals.optimizer_variable_count(optimizer)
            if built_over != len(variables):
                raise RuntimeError(
                    f"Optimizer '{optimizer.name}' was built over {built_over} "
                    f"variables, expected {len(variables)}. "
                    "This happens when a subclassed SwitchingModel is first "
                    "built by Keras itself under a distribution strategy: call "
                    "the model once on a batch before fit()."
                )

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Keras' TF trainer gets a batch for its symbolic build by pulling
        # one from the fit() iterator and averaging the replicas' copies with
        # `strategy.reduce`. That fails in eager mode under
        # MultiWorkerMirroredStrategy ("Attempt to convert a value
        # (PerReplica...)"), and with `steps_per_epoch` the pulled batch is
        # lost to training (a resumed run would see other batches). The build
        # needs only shapes and dtypes: the dataset's element spec has them.
        if _keras_internals.creation_strategy(self) is None:
            return  # as Keras: built when the step function is traced
        if iterator is not None and data_batch is None:
            spec = _keras_internals.dataset_element_spec(iterator)
            if spec is not None:
                with self.distribute_strategy.scope():
                    self._symbolic_build(data_batch=spec)
                return
        return super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    def plan(self, total_steps):
        """Fills in the schedule's `freeze_step="auto"` and the target's
        `ramp_steps="auto"` for a run of `total_steps` training steps, and
        checks them against each other. `fit()` calls it with its epochs
        times steps per epoch; call it yourself before `train_on_batch` or a
        custom loop. Once filled in (or given), the steps stay: a later call
        changes nothing, and they are saved with the model.

        Raises:
            ValueError: for a `total_steps` that is not a positive int, or an
                explicit ramp that ends after the planned freeze step.
        """
        self._require_compiled()
        total_steps = check_int("total_steps", total_steps, minimum=1)
        self.schedule.plan(total_steps)
        self.sparsity.plan(self.schedule, total_steps)
        self.sparsity.check_schedule(self.schedule)

    @property
    def planned(self):
        """Whether no "auto" step is left to fill in (see `plan`)."""
        return (self.task_optimizer is not None and self.schedule.planned
                and self.sparsity.planned)

    def fit(self, *args, **kwargs):
        self.build_optimizers()
        self._step_cache = None
        if isinstance(self.sparsity, AccuracyBudget):
            args, kwargs = _with_budget_checks(self, args, kwargs)
        if self.task_optimizer is not None and not self.planned:
            args, kwargs = _with_planning(self, args, kwargs)
        try:
            history = super().fit(*args, **kwargs)
        finally:  # a fit() that raised leaves no hook behind
            self._step_hook = None
        shortfall = self.target_shortfall()
        if shortfall is not None:  # a run never misses its target silently
            warnings.warn(f"SwitchingModel.fit(): {shortfall}", TargetShortfallWarning,
                          stacklevel=2)
        outcome = self.budget_outcome()
        if outcome is not None and not outcome["met"]:  # nor its budget
            warnings.warn(f"SwitchingModel.fit(): {outcome['why']}", BudgetExceededWarning,
                          stacklevel=2)
        return history

    def budget_outcome(self):
        """None without an `AccuracyBudget`; else a dict: `max_drop`,
        `reference_validation_accuracy` (the dense reference on the
        held-out data, None before it is measured), `validation_accuracy`
        (the last held-out measurement: the end of the last epoch),
        `sparsity` (over every switched layer, as `sparsity_report`),
        `met` (whether the drop is within `max_drop`) and `why` (a sentence
        saying so)."""
        if not isinstance(self.sparsity, AccuracyBudget):
            return None
        state = dict(zip(BUDGET_STATE, (float(v) for v in
                                        ops.convert_to_numpy(self.budget_state))))
        reference = state["reference"] if state["reference"] >= 0 else None
        accuracy = state["accuracy"] if state["accuracy"] >= 0 else None
        sparsity = sparsity_report(self)["overall"]
        budget = self.sparsity.max_drop
        if reference is None:
            met, why = False, (
                "the AccuracyBudget never measured its dense reference: the "
                "run ended before `reference_steps` of switching; train longer")
        else:
            drop = reference - accuracy
            met = drop <= budget
            where = f"{abs(drop) * 100:.2f} pt {'below' if drop >= 0 else 'above'}"
            why = (f"held-out accuracy {accuracy:.4f} is {where} "
                   f"the dense reference {reference:.4f} "
                   f"({'within' if met else 'over'} the budget of {budget * 100:.2f} pt) "
                   f"at sparsity {sparsity:.4f}")
        return {"max_drop": budget, "reference_validation_accuracy": reference,
                "validation_accuracy": accuracy, "sparsity": sparsity, "met": met,
                "why": why}

    def train_on_batch(self, *args, **kwargs):
        self._step_cache = None
        return super().train_on_batch(*args, **kwargs)

    def load_weights(self, *args, **kwargs):
        self._step_cache = None
        return super().load_weights(*args, **kwargs)

    # -- training -------------------------------------------------------------
    #
    # Which phases run is read from `switching_step` in Python, before each
    # step, and each distinct `Phase` gets its own traced step function, so
    # `train_step` holds no data-dependent branches. That is what makes it
    # correct under tf.distribute: an optimizer update synchronises replicas,
    # and TensorFlow does not allow that inside `tf.cond` in a replica.

    def make_train_function(self, force=False):
        if self.train_function is not None and not force:
            return self.train_function
        by_phase = {}

        def train_function(iterator):
            step = self._next_step()
            phase = self.schedule(step)
            if phase not in by_phase:
                super(SwitchingModel, self).make_train_function(force=True)
                by_phase[phase] = self.train_function
                self.train_function = train_function
            self._phase = phase  # read by train_step while it is traced
            try:
                logs = by_phase[phase](iterator)
            finally:
                self._phase = None
            self._step_cache = step + 1
            if self._step_hook is not None:
                self._step_hook(step)
            return logs

        self.train_function = train_function
        return train_function

    def current_phase(self):
        """The `SwitchSchedule` phase of the next training step."""
        self._require_compiled()
        return self.schedule(int(keras.ops.convert_to_numpy(self.switching_step)))

    def _next_step(self):
        self._require_compiled()
        if self._step_cache is None:
            return int(keras.ops.convert_to_numpy(self.switching_step))
        return self._step_cache

    def _require_compiled(self):
        if self.task_optimizer is None:
            raise RuntimeError(
                "You must call `compile()` on a SwitchingModel before training it."
            )

    def train_step(self, data):
        self._require_compiled()
        phase = self._phase
        if phase is None:
            if not tf.executing_eagerly():
                raise RuntimeError(
                    "SwitchingModel.train_step must run through fit(), "
                    "train_on_batch() or make_train_function(): they pick the "
                    "step's phase from the schedule before tracing it."
                )
            phase = self.current_phase()
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        layers = self.switched_layers
        if not self.built or not all(layer.built for layer in layers):
            self(x)  # a subclassed model builds lazily: on the first trace
        self.build_optimizers()

        masks = self._task_phase_masks(layers, phase)
        dense_gradient = self.train_pruned_weights and not phase.frozen
        y_pred = self._task_phase(
            layers, masks, x, y, sample_weight, phase.task, dense_gradient
        )
        switch_loss = 0.0
        if phase.switch:
            switch_loss = self._switch_phase(layers, x, y, sample_weight)
        self.switching_step.assign_add(1)

        self._sparsity_tracker.update_state(1.0 - _density(masks))
        self._switch_loss_tracker.update_state(switch_loss)
        return distribute.logs_for_strategy(
            self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)
        )

    def _task_phase_masks(self, layers, phase):
        if phase.mask_source == "dense":
            masks = [ops.ones_like(layer.kernel) for layer in layers]
        elif phase.mask_source == "stored":
            masks = [ops.convert_to_tensor(layer.mask) for layer in layers]
            if phase.switch:  # read now: the switch step stores new masks
                masks = [ops.copy(layer.mask) for layer in layers]
        else:
            masks = self._refresh_masks(layers)
        for layer in layers:
            layer.mask_frozen.assign(1.0 if phase.frozen else 0.0)
        return masks

    def _task_phase(self, layers, masks, x, y, sample_weight, apply, dense_gradient):
        variables = self.task_variables
        with _phase_masks(layers, masks, dense_gradient), tf.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self.compute_loss(
                x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True
            )
            _keras_internals.loss_tracker(self).update_state(
                distribute.unscale_for_replicas(loss),
                sample_weight=ops.shape(keras.tree.flatten(x)[0])[0],
            )
            scaled = self.task_optimizer.scale_loss(loss)
        if apply:
            grads = tape.gradient(scaled, variables)
            self.task_optimizer.apply(grads, variables)
        return y_pred

    def _switch_phase(self, layers, x, y, sample_weight):
        variables = self.switcher_variables
        with tf.GradientTape() as tape:
            logits = [layer.switch_logits() for layer in layers]
            masks = [straight_through(l, self.switch_estimator) for l in logits]
            with _phase_masks(layers, masks):
                y_pred = self(x, training=True)
            loss = self.compute_loss(
                x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True
            )
            loss = loss + distribute.scale_for_replicas(self.sparsity.penalty(_density(masks)))
            scaled = self.switch_optimizer.scale_loss(loss)
        grads = tape.gradient(scaled, variables)
        self.switch_optimizer.apply(grads, variables)
        # After the update: the masks the next task steps use.
        self._refresh_masks(layers)
        return ops.cast(distribute.unscale_for_replicas(loss), "float32")

    def _refresh_masks(self, layers):
        """Runs each switcher once over its layers' kernels, lets the sparsity
        control place the thresholds, stores the hard masks and returns them
        (in the order of `layers`)."""
        step = self.switching_step - self.schedule.warmup_steps
        groups = {}
        for layer in layers:
            groups.setdefault(id(layer.switcher), []).append(layer)
        masks = {}
        for group in groups.values():
            logits = [ops.stop_gradient(layer.switch_logits()) for layer in group]
            logits = self.sparsity.place_thresholds(group, logits, step)
            for layer, l in zip(group, logits):
                masks[id(layer)] = ops.cast(l > 0, layer.mask.dtype)
                layer.mask.assign(masks[id(layer)])
        return [masks[id(layer)] for layer in layers]

    def target_density(self):
        """The density a `TargetSparsity` control asks for at the current step."""
        self._require_compiled()
        if self.sparsity.target is None:
            raise ValueError(
                "target_density() needs a target: compile with `target_sparsity` "
                f"or `sparsity=TargetSparsity(...)`. Received: sparsity={self.sparsity!r}"
            )
        return self.sparsity.density(self.switching_step - self.schedule.warmup_steps)

    def target_shortfall(self):
        """None, or a sentence saying that the model's sparsity (as
        `sparsity_report` counts it) is more than 0.5 pt below the target of
        its sparsity control, and why."""
        target = getattr(self.sparsity, "target", None)
        if target is None:
            return None
        reached = sparsity_report(self)["overall"]
        if reached >= target - TARGET_TOLERANCE:
            return None
        step = int(ops.convert_to_numpy(self.switching_step))
        if not self.planned:
            return (f"sparsity {reached:.4f} is {target - reached:.4f} below the target "
                    f"{target}: the model has not been trained (its schedule is "
                    "not planned yet, see `plan`).")
        ramp_end = self.schedule.warmup_steps + self.sparsity.ramp_steps
        why = (
            f"training stopped at step {step}, before the target ramp ends at step "
            f"{ramp_end}; train longer or shorten the ramp"
            if step < ramp_end else
            "the masks were last placed before the ramp ended (they are placed "
            "at switch steps); check the schedule"
        )
        return (f"sparsity {reached:.4f} is {target - reached:.4f} below the target "
                f"{target} (tolerance {TARGET_TOLERANCE}): {why}.")

    def test_step(self, data):
        logs = super().test_step(data)
        # Switch statistics describe training; evaluation does not update them.
        for tracker in (self._sparsity_tracker, self._switch_loss_tracker):
            logs.pop(tracker.name, None)
        return distribute.logs_for_strategy(logs)

    # -- after training -------------------------------------------------------

    def freeze_switches(self):
        """Stores every layer's current mask and stops running the switcher:
        predictions then cost what a Dense model with these zeros costs."""
        for layer in self.switched_layers:
            layer.freeze_mask()

    def unfreeze_switches(self):
        for layer in self.switched_layers:
            layer.unfreeze_mask()

    @classmethod
    def from_config(cls, config, custom_objects=None):
        # Layers of one model that name the same switcher get one object.
        with sharing_scope():
            return super().from_config(config, custom_objects=custom_objects)


@keras.saving.register_keras_serializable(package="keras_switch")
class FunctionalSwitchingModel(SwitchingModel, _keras_internals.Functional):
    """What `SwitchingModel(inputs, outputs)` builds: a functional model with
    the switching `train_step`. Not meant to be used by name."""

    def __init__(self, inputs, outputs, name=None, **kwargs):
        # keras.Model.__init__ would inject Functional into SwitchingModel's
        # own bases (see _keras_internals); do its two steps directly.
        super(keras.Model, self).__init__()  # the backend Trainer's __init__
        _keras_internals.Functional.__init__(
            self, inputs, outputs, name=name, **kwargs
        )
        self._init_switching_state()
        link_neighbours(switched_layers(self))  # the layers are built by now


def _check_compile_kwargs(kwargs, steps_per_execution):
    if "optimizer" in kwargs:
        raise ValueError(
            "SwitchingModel.compile() takes `task_optimizer` and "
            "`switch_optimizer`, not `optimizer`. "
            f"Received: optimizer={kwargs['optimizer']!r}"
        )
    if kwargs:
        raise TypeError(
            "Unrecognized keyword arguments passed to "
            f"SwitchingModel.compile(): {sorted(kwargs)}"
        )
    if steps_per_execution != 1:
        raise ValueError(
            "SwitchingModel runs one training step per execution (its phase "
            "can change from step to step). Received: steps_per_execution="
            f"{steps_per_execution!r}"
        )


class _PlanRun(keras.callbacks.Callback):
    """Plans the model's "auto" steps from fit()'s epochs and steps per
    epoch, before the first step."""

    def __init__(self, switching_model):
        super().__init__()
        self._switching_model = switching_model
        self._given_list = False  # set by _put_first for a caller's CallbackList

    def on_train_begin(self, logs=None):
        epochs, steps = self.params.get("epochs"), self.params.get("steps")
        if self._given_list and not (epochs and steps):
            # Keras hands a CallbackList of the caller's the run's length
            # only through the params it was built with.
            raise ValueError(
                "SwitchingModel.fit() plans the default schedule from the run's "
                "length, and the keras.callbacks.CallbackList passed to fit() "
                "does not carry it (Keras uses such a list as given). Build it "
                "with `CallbackList(..., epochs=..., steps=...)`, pass a plain "
                "list of callbacks, or call `model.plan(total_steps)` before "
                f"fit(). Received: CallbackList params {self.params!r}"
            )
        if not steps:
            raise ValueError(
                "SwitchingModel.fit() plans the default schedule (the target "
                "ramp, then a frozen mask for the last 20% of steps) from the "
                "run's length, epochs x steps per epoch, but the number of "
                "steps per epoch is unknown for this data. Pass "
                "`steps_per_epoch`, call `model.plan(total_steps)` before "
                "fit(), or compile with explicit steps (`SwitchSchedule("
                "freeze_step=...)`, `target_ramp_steps`)."
            )
        self._switching_model.plan(epochs * steps)


def _with_planning(model, args, kwargs):
    """fit()'s arguments with `_PlanRun` first among its callbacks."""
    bound = inspect.signature(keras.Model.fit).bind(model, *args, **kwargs)
    _put_first(bound, model, _PlanRun(model))
    return bound.args[1:], bound.kwargs


def _put_first(bound, model, callback):
    """Puts `callback` first among the callbacks of bound fit() arguments
    (a list, or Keras' own CallbackList)."""
    callbacks = bound.arguments.get("callbacks")
    if isinstance(callbacks, keras.callbacks.CallbackList):
        callback._given_list = True
        callback.set_model(model)
        callback.set_params(callbacks.params)
        callbacks.callbacks.insert(0, callback)
    else:
        bound.arguments["callbacks"] = [callback, *(callbacks or [])]


def _with_budget_checks(model, args, kwargs):
    """fit()'s arguments with the held-out data the AccuracyBudget checks
    (`validation_data`, or `validation_split` of array inputs, split here
    as Keras would) and `budget.BudgetChecks` in front of the callbacks."""
    bound = inspect.signature(keras.Model.fit).bind(model, *args, **kwargs)
    arguments = bound.arguments
    validation_data = arguments.get("validation_data")
    split = arguments.get("validation_split", 0.0)
    if validation_data is None and split:
        x, y = arguments.get("x"), arguments.get("y")
        if y is None or isinstance(x, tf.data.Dataset):
            raise ValueError(
                "AccuracyBudget with `validation_split` needs array inputs "
                "`fit(x, y, ...)`; for a dataset, pass held-out data as "
                "`validation_data`.")
        (arguments["x"], arguments["y"]), validation_data = budget.split_heldout(x, y, split)
        arguments["validation_split"] = 0.0
        arguments["validation_data"] = validation_data
    if validation_data is None:
        raise ValueError(
            "AccuracyBudget keeps the held-out accuracy within `max_drop` of "
            "the dense reference, so fit() needs held-out data from the "
            "training split: pass `validation_data=(x_heldout, y_heldout)` or "
            "`validation_split=0.1` (never the test set).")
    _put_first(bound, model, budget.BudgetChecks(model, budget.heldout_arrays(validation_data)))
    return bound.args[1:], bound.kwargs


def _resolve_schedule(schedule):
    if schedule is None:
        return SwitchSchedule()
    if isinstance(schedule, str):
        return SwitchSchedule(mode=schedule)
    if isinstance(schedule, dict):
        return SwitchSchedule.from_config(schedule)
    if isinstance(schedule, SwitchSchedule):
        # A copy: fit() plans its "auto" steps for this model's run only.
        return type(schedule).from_config(schedule.get_config())
    raise TypeError(
        "Received an invalid value for `schedule`, expected a "
        "keras_switch.SwitchSchedule, a mode name or None. "
        f"Received: schedule={schedule!r}"
    )


def _resolve_sparsity(sparsity, shorthand, schedule):
    """The sparsity control, checked against the schedule; errors name the
    keywords the user passed."""
    given = sorted(key for key, value in shorthand.items() if value is not None)
    if sparsity is None:
        sparsity = from_shorthand(**shorthand)
    elif given:
        raise ValueError(
            f"Pass `sparsity` or its shorthand {given}, not both. "
            f"Received: sparsity={sparsity!r}, "
            + ", ".join(f"{key}={shorthand[key]!r}" for key in given)
        )
    elif not isinstance(sparsity, SparsityControl):
        raise TypeError(
            "Received an invalid value for `sparsity`, expected a "
            "keras_switch.sparsity control (TargetSparsity, SparsityPenalty, "
            f"AccuracyBudget, SparsityControl) or None. Received: sparsity={sparsity!r}"
        )
    else:  # a copy: fit() plans its "auto" steps for this model's run only
        sparsity = type(sparsity).from_config(sparsity.get_config())
    try:
        schedule.plan()  # "auto" steps that a given freeze step decides
        sparsity.plan(schedule)
        sparsity.check_schedule(schedule)
    except ArgumentError as error:
        raise (error.renamed(SHORTHAND) if given else error) from None
    return sparsity


def _two_optimizers(task_optimizer, switch_optimizer):
    task_optimizer = keras.optimizers.get(task_optimizer)
    switch_optimizer = keras.optimizers.get(switch_optimizer)
    if task_optimizer is None or switch_optimizer is None:
        raise ValueError(
            "SwitchingModel.compile() needs both `task_optimizer` and "
            f"`switch_optimizer`. Received: task_optimizer={task_optimizer!r}, "
            f"switch_optimizer={switch_optimizer!r}"
        )
    if task_optimizer is switch_optimizer:
        raise ValueError(
            "`task_optimizer` and `switch_optimizer` must be two different "
            "optimizer objects (each keeps its own state)."
        )
    return task_optimizer, switch_optimizer


def _loss_scaled(optimizer):
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return optimizer
    return keras.optimizers.LossScaleOptimizer(
        optimizer, name="switch_loss_scale_optimizer"
    )


def _density(masks):
    if not masks:
        return ops.zeros((), "float32")
    on = ops.sum(ops.stack([ops.sum(ops.cast(m, "float32")) for m in masks]))
    total = float(sum(math.prod(m.shape) for m in masks))
    return on / total


@contextlib.contextmanager
def _phase_masks(layers, masks, dense_gradient=False):
    """Hands each layer its mask for the forward passes inside the block."""
    with contextlib.ExitStack() as stack:
        for layer, mask in zip(layers, masks):
            stack.enter_context(layer.phase_mask(mask, dense_gradient))
        yield
