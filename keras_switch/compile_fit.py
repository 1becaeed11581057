"""What `SwitchingModel` adds to `keras.Model`'s `compile()` and `fit()`.

`compile()` takes two optimizers, a schedule (`keras_switch.schedule.get`)
and a sparsity control (`keras_switch.sparsity.get`, or an
`AccuracyBudget` with its state, `keras_switch.budget`), saved with the
model; `fit()` plans the run's "auto" steps from its length
(`schedule.PlanRun`), runs an `AccuracyBudget`'s held-out checks, and warns
when the run missed its target (`target_shortfall`) or budget
(`budget_outcome`). The training step itself is `keras_switch.model`'s.
"""

import warnings

import keras
from keras import ops

from keras_switch import _keras_internals
from keras_switch import budget
from keras_switch import schedule as schedule_lib
from keras_switch import sparsity as sparsity_lib
from keras_switch.checks import check_bool
from keras_switch.checks import check_choice
from keras_switch.checks import check_int
from keras_switch.layers import ESTIMATORS
from keras_switch.report import sparsity_report

_SERIALIZE = keras.saving.serialize_keras_object
NO_SPARSITY_WARNING = (
    "SwitchingModel.compile() got no sparsity control: the switcher trains on "
    "the task loss alone and prunes almost nothing. Pass target_sparsity=... "
    "(or sparsity=ks.AccuracyBudget(...)) to prune.")


class CompileAndFit:
    """`SwitchingModel`'s `compile()`, `fit()` and what they configure; a
    base class of `SwitchingModel`, before `keras.Model` (see the module
    doc)."""

    def compile(
        self, optimizer="adam", loss=None, loss_weights=None, metrics=None,
        weighted_metrics=None, run_eagerly=False, steps_per_execution=1,
        jit_compile="auto", auto_scale_loss=True, *, switch_optimizer="adam",
        sparsity=None, target_sparsity=None, sparsity_penalty=None,
        target_ramp_steps=None, target_ramp_power=None, allocation=None,
        schedule=None, train_pruned_weights=False, switch_estimator="sigmoid",
        task_optimizer=None, **kwargs,
    ):
        """Configures the model for alternating training.

        The positional arguments are `keras.Model.compile`'s, in its order;
        what switching adds is keyword-only. `loss`, `loss_weights`,
        `metrics`, `weighted_metrics`, `run_eagerly`, `jit_compile` and
        `auto_scale_loss` are as in `keras.Model.compile`.

        Args:
            optimizer: The optimizer (or name) of the task variables:
                everything trainable except the switcher.
            steps_per_execution: Must be 1 (the phase can change every step).
            switch_optimizer: The optimizer (or name) of the switcher
                variables; another object than `optimizer`.
            sparsity: A `keras_switch.sparsity` control (`TargetSparsity`,
                `SparsityPenalty`, `AccuracyBudget`: fit() then needs
                held-out data) or `None`: the task objective alone, which
                prunes almost nothing (a warning says so).
            target_sparsity: Shorthand for `sparsity=TargetSparsity(...)`
                (`keras_switch.sparsity.get`), whose `ramp_steps`,
                `ramp_power` and `allocation` are given as
                `target_ramp_steps`, `target_ramp_power` and `allocation`;
                not with `sparsity`.
            sparsity_penalty: Shorthand for
                `sparsity=SparsityPenalty(sparsity_penalty)`; not with
                `sparsity`.
            schedule: A `SwitchSchedule`, a mode name, or `None`
                (`keras_switch.schedule.get`).
            train_pruned_weights: Straight-through gradient to switched-off
                weights while the mask can still change (see
                `keras_switch.model`).
            switch_estimator: The switch step's gradient of the hard
                switches: `"sigmoid"` (`p (1 - p)`) or `"identity"` (1).
            task_optimizer: The former name of `optimizer`; files saved with
                it still load.

        Raises:
            TypeError: for an optimizer passed where Keras' order puts
                `loss`, and for unknown keywords.
            ValueError: naming the argument, for a value that cannot work,
                such as a target ramp that ends after the mask freezes.
        """
        optimizer = _task_optimizer(optimizer, task_optimizer, loss)
        _check_compile_kwargs(kwargs, steps_per_execution)
        schedule = schedule_lib.get(schedule)
        sparsity = sparsity_lib.get(
            sparsity, schedule, target_sparsity=target_sparsity,
            sparsity_penalty=sparsity_penalty, target_ramp_steps=target_ramp_steps,
            target_ramp_power=target_ramp_power, allocation=allocation)
        check_bool("train_pruned_weights", train_pruned_weights)
        check_choice("switch_estimator", switch_estimator, ESTIMATORS)
        task_optimizer, switch_optimizer = _two_optimizers(optimizer, switch_optimizer)
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
        if isinstance(sparsity, budget.AccuracyBudget):
            budget.attach_state(self, sparsity)
        self.train_pruned_weights = train_pruned_weights
        self.switch_estimator = switch_estimator
        self._keras_compile_args = keras_args
        self.build_optimizers()
        if type(sparsity) is sparsity_lib.SparsityControl:  # the task loss alone
            warnings.warn(NO_SPARSITY_WARNING, UserWarning, stacklevel=2)

    def get_compile_config(self):
        if not self.compiled or self.sparsity is None:
            return {}
        config = dict(
            self._keras_compile_args,
            # The optimizers the user gave, not Keras' loss-scale wrappers.
            optimizer=getattr(self.task_optimizer, "inner_optimizer", self.task_optimizer),
            switch_optimizer=getattr(self.switch_optimizer, "inner_optimizer",
                                     self.switch_optimizer),
            sparsity=self.sparsity, schedule=self.schedule,
            train_pruned_weights=self.train_pruned_weights,
            switch_estimator=self.switch_estimator,
        )
        return {key: _SERIALIZE(value) for key, value in config.items()}

    def compile_from_config(self, config):
        # Configs saved before `sparsity=` existed hold the shorthand keys.
        self.compile(**keras.saving.deserialize_keras_object(config))

    def load_own_variables(self, store):
        own = len(self._trainable_variables) + len(self._non_trainable_variables)
        super().load_own_variables(budget.load_own_variables(self, store, own))

    def build_optimizers(self):
        """Builds each optimizer over its own variable set, once the model is
        built, so that optimizer state saved with the model loads back.

        Raises:
            RuntimeError: for an optimizer built over other variables.
        """
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

    def _symbolic_build(self, iterator=None, data_batch=None):
        # Keras' own builds `self.optimizer` (the task optimizer) over every
        # trainable variable once the model is built; each of ours is built
        # over its own set instead.
        optimizer, self.optimizer = self.optimizer, None
        try:
            super()._symbolic_build(iterator=iterator, data_batch=data_batch)
        finally:
            self.optimizer = optimizer
        self.build_optimizers()

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        if not _keras_internals.symbolic_build(self, iterator, data_batch):
            super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    # -- the run --------------------------------------------------------------

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
        """`keras.Model.fit`, planning the run's "auto" steps first
        (`schedule.PlanRun`), with an `AccuracyBudget`'s held-out checks
        (`budget.with_budget_checks`); warns at the end, with
        `TargetShortfallWarning` or `BudgetExceededWarning`, when the run
        missed its target or budget, and with `LayerSwitchedOffWarning`
        when a layer ended with every connection off."""
        self.build_optimizers()
        self._step_cache = None
        if isinstance(self.sparsity, budget.AccuracyBudget):
            args, kwargs = budget.with_budget_checks(self, args, kwargs)
        if self.task_optimizer is not None and not self.planned:
            bound = schedule_lib.fit_arguments(self, args, kwargs)
            schedule_lib.with_callback_first(bound, schedule_lib.PlanRun(self))
            args, kwargs = bound.args[1:], bound.kwargs
        hooks = list(self.step_hooks)
        try:
            history = super().fit(*args, **kwargs)
        finally:  # a fit() that raised leaves no hook behind
            self.step_hooks[:] = hooks
        report = sparsity_report(self)  # once: it runs the switcher over every kernel
        shortfall = self._target_shortfall(report["overall"])
        if shortfall is not None:  # a run never misses its target silently
            warnings.warn(f"SwitchingModel.fit(): {shortfall}",
                          sparsity_lib.TargetShortfallWarning, stacklevel=2)
        outcome = self._budget_outcome(report["overall"])
        if outcome is not None and not outcome["met"]:  # nor its budget
            warnings.warn(f"SwitchingModel.fit(): {outcome['why']}",
                          sparsity_lib.BudgetExceededWarning, stacklevel=2)
        off = [row["name"] for row in report["layers"] if row["sparsity"] >= 1]
        if off:  # a split over layers can leave one with nothing
            warnings.warn(
                f"SwitchingModel.fit(): every connection of {off} is switched off, so "
                "nothing flows through them. A lower target, or "
                "allocation='erk' (which keeps part of every layer), avoids it.",
                sparsity_lib.LayerSwitchedOffWarning, stacklevel=2)
        return history

    def budget_outcome(self):
        """None without an `AccuracyBudget`; else a dict: `max_drop`,
        `reference_validation_accuracy` (the dense reference on the
        held-out data, None before it is measured), `validation_accuracy`
        (the last held-out measurement: the end of the last epoch),
        `sparsity` (over every switched layer, as `sparsity_report`),
        `met` (whether the drop is within `max_drop`) and `why` (a sentence
        saying so)."""
        return self._budget_outcome()

    def _budget_outcome(self, sparsity=None):
        """`budget_outcome()` at the overall `sparsity` already counted
        (None: counted here)."""
        if not isinstance(self.sparsity, budget.AccuracyBudget):
            return None
        if sparsity is None:
            sparsity = sparsity_report(self)["overall"]
        return budget.outcome(self.sparsity, self.budget_state, sparsity)

    def target_density(self):
        """The density a `TargetSparsity` control asks for at the current step.

        Raises:
            ValueError: when the control has no target.
        """
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
        its sparsity control, and why (`SparsityControl.shortfall`)."""
        return self._target_shortfall()

    def _target_shortfall(self, sparsity=None):
        """`target_shortfall()` at the overall `sparsity` already counted
        (None: counted here)."""
        if getattr(self.sparsity, "target", None) is None:
            return None
        if sparsity is None:
            sparsity = sparsity_report(self)["overall"]
        return self.sparsity.shortfall(sparsity, int(ops.convert_to_numpy(self.switching_step)),
                                       self.schedule)

    def train_on_batch(self, *args, **kwargs):
        self._step_cache = None
        return super().train_on_batch(*args, **kwargs)

    def load_weights(self, *args, **kwargs):
        self._step_cache = None
        return super().load_weights(*args, **kwargs)


def _task_optimizer(optimizer, task_optimizer, loss):
    """The task optimizer of `compile(optimizer, loss, ...,
    task_optimizer=...)`, checked."""
    if task_optimizer is not None:
        if not (isinstance(optimizer, str) and optimizer == "adam"):
            raise ValueError(
                "SwitchingModel.compile() takes the task optimizer once: as "
                "`optimizer` (or its former name `task_optimizer`), not both. "
                f"Received: optimizer={optimizer!r}, task_optimizer={task_optimizer!r}")
        optimizer = task_optimizer
    if _is_optimizer(loss):
        raise TypeError(
            "SwitchingModel.compile() takes Keras' order, compile(optimizer, "
            "loss, ...): its second positional argument is the loss. Pass the "
            "switcher's optimizer by keyword, `switch_optimizer=`. "
            f"Received: loss={loss!r}")
    return optimizer


def _is_optimizer(value):
    """Whether `value` is an optimizer or an optimizer's name and not a loss's."""
    if isinstance(value, keras.optimizers.Optimizer):
        return True
    if not isinstance(value, str):
        return False
    try:
        keras.losses.get(value)
        return False
    except ValueError:
        pass
    try:
        return keras.optimizers.get(value) is not None
    except ValueError:
        return False


def _check_compile_kwargs(kwargs, steps_per_execution):
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


def _two_optimizers(task_optimizer, switch_optimizer):
    task_optimizer = keras.optimizers.get(task_optimizer)
    switch_optimizer = keras.optimizers.get(switch_optimizer)
    if task_optimizer is None or switch_optimizer is None:
        raise ValueError(
            "SwitchingModel.compile() needs both `optimizer` and "
            f"`switch_optimizer`. Received: optimizer={task_optimizer!r}, "
            f"switch_optimizer={switch_optimizer!r}"
        )
    if task_optimizer is switch_optimizer:
        raise ValueError(
            "`optimizer` and `switch_optimizer` must be two different "
            "optimizer objects (each keeps its own state)."
        )
    return task_optimizer, switch_optimizer


def _loss_scaled(optimizer):
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return optimizer
    return keras.optimizers.LossScaleOptimizer(optimizer, name="switch_loss_scale_optimizer")
