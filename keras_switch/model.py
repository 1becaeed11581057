"""`SwitchingModel`: trains a task network and its switcher alternately.

One training step (`train_step`), in this order, as the `SwitchSchedule`
phase of the step (read from `switching_step`) says:

1. **Task phase.** The mask of the phase (while switching: the mask the
   last switch step stored in each layer's `mask` variable, so the switcher
   does not run here; all-ones during the dense warm-up; the stored mask
   once frozen) is held fixed; one gradient step of `task_optimizer` on the
   task variables (everything trainable except the switchers). With
   `train_pruned_weights=True` (off by default: it measured worse on
   LeNet-300-100, see BENCHMARKS.md) the gradient reaches the
   switched-off weights too while switching (straight-through: the forward
   pass uses `kernel * mask`, the update is the unmasked gradient), so a
   pruned weight keeps learning and the switcher, which reads the weights,
   can switch it back on; once the mask is frozen it is plain masked
   fine-tuning.
2. **Switch phase** (when the schedule says so). The switcher's masks are
   recomputed from the updated kernels with the straight-through estimator;
   one gradient step of `switch_optimizer` on the switcher variables only,
   on the same objective: task loss + sparsity control. Then the switcher's
   new hard masks are computed once and stored for the next task steps.

Sparsity control (the pure task loss switches nothing off in practice):

* neither `target_sparsity` nor `sparsity_penalty` -> none (the paper's pure
  task objective);
* `sparsity_penalty=lam` -> L1 on the switches: the switch objective is
  `task loss + lam * density`, where `density` is the fraction of switched-on
  connections over all switched layers, its value from the hard 0/1 masks
  and its gradient the straight-through one. How sparse the result gets
  depends on `lam`, the data and the budget; a large `lam` can teach the
  switcher to rank by the wrong features (see below).
* `target_sparsity=s` -> a global threshold: after each switch step, the
  switcher's `threshold` is set between the scores of the k-th and (k+1)-th
  highest-scoring connections over all its layers, k = (1 - s) * entries, so
  exactly the target density is on, and the switch step learns the
  *ranking* from the task loss. The per-layer densities are the switcher's
  choice. The target density moves from 1 to `1 - s` over
  `target_ramp_steps` steps after the warm-up, along `1 - s * (1 - (1 -
  t)^p)` for the ramp's progress `t` in [0, 1] and `p =
  target_ramp_power` (3: the gradual-pruning ramp of Zhu & Gupta 2017 that
  TFMOT's PolynomialDecay uses, fast at first and slow near the target; 1:
  linear).

Why not a penalty toward the target: measured on digits (64-64-32-10,
Adam 1e-2, penalty `5 * |density - target|`), a penalty that
reaches the switcher's feature weights pushes down the weight of every
positive feature (magnitude first) until the switcher keeps the *smallest*
weights and the network dies (kept mean |w| 0.012 vs pruned 0.12); a penalty
on the bias alone loses to the task loss, which inflates every score.
"""

import contextlib
import math

import keras
import tensorflow as tf
from keras import ops

from keras_switch import _keras_internals
from keras_switch.layers import switched_layers
from keras_switch.layers import ESTIMATORS
from keras_switch.layers import straight_through
from keras_switch.schedule import SwitchSchedule
from keras_switch.switcher import sharing_scope

_SERIALIZE = keras.saving.serialize_keras_object
# Halvings of the score range when placing a threshold: the 24 bits of a
# float32 mantissa, so past float32 resolution of the scores' range.
_BISECTION_STEPS = 24
ALLOCATIONS = ("magnitude", "learned")


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
    """A `keras.Model` whose `SwitchedDense` layers learn their own sparsity.

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
        self._switching_args = None
        self._phase = None
        # `switching_step` as a Python int between the steps of one fit() or
        # train_on_batch() call (reading the variable each step costs a
        # device sync); None: read the variable.
        self._step_cache = None

    # -- the two variable sets ------------------------------------------------

    @property
    def switched_layers(self):
        """Every `SwitchedDense` with a switcher, in model order."""
        return switched_layers(self)

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
        target_ramp_steps=0,
        target_ramp_power=3,
        allocation="magnitude",
        train_pruned_weights=False,
        switch_estimator="sigmoid",
        schedule=None,
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
            task_optimizer: Optimizer (or its name) for the task variables.
            switch_optimizer: Optimizer (or its name) for the switcher
                variables. Must be a different object from `task_optimizer`.
            loss, metrics, loss_weights, weighted_metrics, run_eagerly,
                steps_per_execution, jit_compile, auto_scale_loss: As in
                `keras.Model.compile`.
            target_sparsity: `None`, or the overall FC sparsity to reach, a
                float in [0, 1) (global-threshold control, see the module
                doc).
            sparsity_penalty: `None`, or the weight of an L1 penalty on the
                switch density (>= 0). Not together with `target_sparsity`.
                Neither: the pure task loss.
            target_ramp_steps: Steps over which the target density moves
                from 1 to `1 - target_sparsity`, counted from the end of the
                warm-up (0: the full target from the start).
            target_ramp_power: Shape of that ramp, a number >= 1 (3: cubic,
                fast then slow; 1: linear). See the module doc.
            allocation: How `target_sparsity` is split across layers:
                `"magnitude"` (each layer keeps as many connections as global
                magnitude pruning would give it, and the switcher picks
                which) or `"learned"` (one threshold over the switcher's
                scores of all layers: the switcher decides both).
            train_pruned_weights: Whether task steps pass the gradient to
                switched-off weights while the mask can still change
                (straight-through), so that pruned weights keep learning and
                can come back. Masked fine-tuning either way once frozen.
            switch_estimator: The straight-through gradient of the hard
                switches in the switch step: `"sigmoid"` (`d mask / d logit
                := p (1 - p)`, concentrated on switches near their
                threshold) or `"identity"` (`:= 1` for every switch). The
                forward pass uses the hard 0/1 mask either way.
            schedule: A `keras_switch.SwitchSchedule`, a mode name
                (`"every_batch"`, `"alternate"`), or `None` for
                `SwitchSchedule()` (task step then switch step on every
                batch).
        """
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
        schedule = _resolve_schedule(schedule)
        target_sparsity, sparsity_penalty = _check_sparsity_control(
            target_sparsity, sparsity_penalty
        )
        if (
            isinstance(target_ramp_steps, bool)
            or not isinstance(target_ramp_steps, int)
            or target_ramp_steps < 0
        ):
            raise ValueError(
                "Received an invalid value for `target_ramp_steps`, expected "
                f"an integer >= 0. Received: target_ramp_steps={target_ramp_steps!r}"
            )
        if (
            isinstance(target_ramp_power, bool)
            or not isinstance(target_ramp_power, (int, float))
            or not target_ramp_power >= 1
        ):
            raise ValueError(
                "Received an invalid value for `target_ramp_power`, expected "
                f"a number >= 1. Received: target_ramp_power={target_ramp_power!r}"
            )
        if allocation not in ALLOCATIONS:
            raise ValueError(
                "Received an invalid value for `allocation`, expected one of "
                f"{ALLOCATIONS}. Received: allocation={allocation!r}"
            )
        if not isinstance(train_pruned_weights, bool):
            raise ValueError(
                "Received an invalid value for `train_pruned_weights`, expected "
                f"a bool. Received: train_pruned_weights={train_pruned_weights!r}"
            )
        if switch_estimator not in ESTIMATORS:
            raise ValueError(
                "Received an invalid value for `switch_estimator`, expected one "
                f"of {ESTIMATORS}. Received: switch_estimator={switch_estimator!r}"
            )
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
        super().compile(
            optimizer=task_optimizer,
            loss=loss,
            loss_weights=loss_weights,
            metrics=metrics,
            weighted_metrics=weighted_metrics,
            run_eagerly=run_eagerly,
            steps_per_execution=steps_per_execution,
            jit_compile=jit_compile,
            auto_scale_loss=auto_scale_loss,
        )
        # Keras may have wrapped it in a LossScaleOptimizer (mixed_float16).
        self.task_optimizer = self.optimizer
        if (
            auto_scale_loss
            and self.dtype_policy.name == "mixed_float16"
            and not isinstance(switch_optimizer, keras.optimizers.LossScaleOptimizer)
        ):
            switch_optimizer = keras.optimizers.LossScaleOptimizer(
                switch_optimizer, name="switch_loss_scale_optimizer"
            )
        self.switch_optimizer = switch_optimizer
        self.schedule = schedule
        self.target_sparsity = target_sparsity
        self.sparsity_penalty = sparsity_penalty
        self.target_ramp_steps = target_ramp_steps
        self.target_ramp_power = float(target_ramp_power)
        self.allocation = allocation
        self.train_pruned_weights = train_pruned_weights
        self.switch_estimator = switch_estimator
        self._switching_args = dict(
            task_optimizer=task_optimizer,
            switch_optimizer=switch_optimizer,
            loss=loss,
            metrics=metrics,
            target_sparsity=target_sparsity,
            sparsity_penalty=sparsity_penalty,
            target_ramp_steps=target_ramp_steps,
            target_ramp_power=target_ramp_power,
            allocation=allocation,
            train_pruned_weights=train_pruned_weights,
            switch_estimator=switch_estimator,
            schedule=schedule,
            loss_weights=loss_weights,
            weighted_metrics=weighted_metrics,
            run_eagerly=run_eagerly,
            steps_per_execution=steps_per_execution,
            jit_compile=jit_compile,
            auto_scale_loss=auto_scale_loss,
        )
        self.build_optimizers()

    def get_compile_config(self):
        if not self.compiled or self._switching_args is None:
            return {}
        args = dict(self._switching_args)
        # Serialize the optimizers the user gave (not the loss-scale wrapper).
        for key in ("task_optimizer", "switch_optimizer"):
            args[key] = getattr(args[key], "inner_optimizer", args[key])
        return {key: _SERIALIZE(value) for key, value in args.items()}

    def compile_from_config(self, config):
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

    def fit(self, *args, **kwargs):
        self.build_optimizers()
        self._step_cache = None
        return super().fit(*args, **kwargs)

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
        return _for_multi_worker(
            self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)
        )

    def _task_phase_masks(self, layers, phase):
        if phase.mask == "dense":
            masks = [ops.ones_like(layer.kernel) for layer in layers]
        elif phase.mask == "stored":
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
                _unscale_for_replicas(loss),
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
            penalty = self._sparsity_term(_density(masks))
            loss = loss + _scale_for_replicas(penalty)
            scaled = self.switch_optimizer.scale_loss(loss)
        grads = tape.gradient(scaled, variables)
        self.switch_optimizer.apply(grads, variables)
        # After the update: the masks the next task steps use.
        self._refresh_masks(layers)
        return ops.cast(_unscale_for_replicas(loss), "float32")

    def _sparsity_term(self, density):
        if self.target_sparsity is not None or not self.sparsity_penalty:
            return ops.zeros((), density.dtype)
        return self.sparsity_penalty * density

    def target_density(self):
        """The density `target_sparsity` asks for at the current step."""
        since = self.switching_step - self.schedule.warmup_steps
        progress = 1.0
        if self.target_ramp_steps:
            progress = ops.clip(
                ops.cast(since + 1, "float32") / self.target_ramp_steps, 0.0, 1.0
            )
        reached = 1.0 - (1.0 - progress) ** self.target_ramp_power
        return 1.0 - reached * self.target_sparsity

    def _refresh_masks(self, layers):
        """Runs each switcher once over its layers' kernels, stores their hard
        masks and returns them (in the order of `layers`).

        With `target_sparsity`, first places thresholds so that exactly the
        target fraction of each switcher's connections is on: with
        `allocation="learned"`, the switcher's one `threshold` over the
        scores of all its layers; with `"magnitude"`, each layer keeps as many
        connections as the switcher's magnitude prior ranks above one global
        threshold (global magnitude pruning's split), and that layer's
        `switch_offset` keeps the highest-scoring of them.
        """
        groups = {}
        for layer in layers:
            groups.setdefault(id(layer.switcher), []).append(layer)
        masks = {}
        for group in groups.values():
            logits = [ops.stop_gradient(layer.switch_logits()) for layer in group]
            if self.target_sparsity is not None:
                logits = self._place_thresholds(group, logits)
            for layer, l in zip(group, logits):
                masks[id(layer)] = ops.cast(l > 0, layer.mask.dtype)
                layer.mask.assign(masks[id(layer)])
        return [masks[id(layer)] for layer in layers]

    def _place_thresholds(self, group, logits):
        """Moves the thresholds of one switcher's layers to the target
        density; returns their logits as they are after the move."""
        switcher = group[0].switcher
        sizes = [math.prod(layer.kernel.shape) for layer in group]
        keep = _keep_count(self.target_density(), sum(sizes))
        flat = lambda tensors: ops.concatenate([ops.reshape(t, (-1,)) for t in tensors])
        if self.allocation == "learned":
            old = ops.copy(switcher.threshold)  # read before the assign
            new = _threshold_keeping(flat(logits) + old, keep)
            switcher.threshold.assign(new)
            return [l + (old - new) for l in logits]
        if not switcher.magnitude_prior:
            raise ValueError(
                "allocation='magnitude' needs a switcher with a magnitude prior. "
                f"Received: magnitude_prior={switcher.magnitude_prior} "
                f"(switcher '{switcher.name}')"
            )
        priors = [switcher.prior(layer.kernel) for layer in group]
        cut = _threshold_keeping(flat(priors), keep)
        moved = []
        for layer, l, prior in zip(group, logits, priors):
            layer_keep = ops.sum(ops.cast(prior > cut, "int32"))
            old = ops.copy(layer.switch_offset)  # read before the assign
            new = _threshold_keeping(ops.reshape(l, (-1,)) + old, layer_keep)
            layer.switch_offset.assign(new)
            moved.append(l + (old - new))
        return moved

    def test_step(self, data):
        logs = super().test_step(data)
        # Switch statistics describe training; evaluation does not update them.
        for tracker in (self._sparsity_tracker, self._switch_loss_tracker):
            logs.pop(tracker.name, None)
        return _for_multi_worker(logs)

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


def _resolve_schedule(schedule):
    if schedule is None:
        return SwitchSchedule()
    if isinstance(schedule, str):
        return SwitchSchedule(mode=schedule)
    if isinstance(schedule, dict):
        return SwitchSchedule.from_config(schedule)
    if isinstance(schedule, SwitchSchedule):
        return schedule
    raise TypeError(
        "Received an invalid value for `schedule`, expected a "
        "keras_switch.SwitchSchedule, a mode name or None. "
        f"Received: schedule={schedule!r}"
    )


def _check_sparsity_control(target_sparsity, sparsity_penalty):
    if target_sparsity is not None:
        if isinstance(target_sparsity, bool) or not isinstance(
            target_sparsity, (int, float)
        ) or not 0.0 <= target_sparsity < 1.0:
            raise ValueError(
                "Received an invalid value for `target_sparsity`, expected None "
                f"or a float in [0, 1). Received: target_sparsity={target_sparsity!r}"
            )
        target_sparsity = float(target_sparsity)
        if sparsity_penalty is not None:
            raise ValueError(
                "Pass either `target_sparsity` or `sparsity_penalty`, not both. "
                f"Received: target_sparsity={target_sparsity}, "
                f"sparsity_penalty={sparsity_penalty!r}"
            )
    if sparsity_penalty is not None:
        if isinstance(sparsity_penalty, bool) or not isinstance(
            sparsity_penalty, (int, float)
        ) or sparsity_penalty < 0:
            raise ValueError(
                "Received an invalid value for `sparsity_penalty`, expected None "
                f"or a number >= 0. Received: sparsity_penalty={sparsity_penalty!r}"
            )
        sparsity_penalty = float(sparsity_penalty)
    return target_sparsity, sparsity_penalty


def _keep_count(density, total):
    """round(density * total), clipped to [1, total], as an int32 tensor."""
    keep = ops.cast(ops.round(density * total), "int32")
    return ops.clip(keep, 1, total)


def _threshold_keeping(scores, keep):
    """A threshold with the `keep` highest of the 1-D `scores` above it (more
    only on exact ties; none when `keep` is 0).

    Found by bisection on the count above it (24 halvings of the score range,
    each a comparison and a sum): about 5x cheaper than sorting the 266k
    scores of LeNet-300-100, which dominated the switch step.
    """
    # Invariant: count(scores > low) >= keep > count(scores > high).
    low = ops.min(scores) - 1.0
    high = ops.max(scores)
    keep = ops.cast(keep, "int32")
    for _ in range(_BISECTION_STEPS):
        middle = 0.5 * (low + high)
        enough = ops.sum(ops.cast(scores > middle, "int32")) >= keep
        low = ops.where(enough, middle, low)
        high = ops.where(enough, high, middle)
    return ops.where(keep > 0, low, high)


def _for_multi_worker(logs):
    """Under MultiWorkerMirroredStrategy, Keras 3 reduces each replica's logs
    with `strategy.reduce("MEAN", value, axis=0)`, which fails on scalars
    ("Invalid reduction dimension 0 for input with 0 dimensions", TF issue
    72388). Shape (1,) values reduce to the scalar mean over replicas, which
    is what the logs hold elsewhere."""
    strategy = tf.distribute.get_strategy()
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return logs
    return {
        key: ops.reshape(value, (1,)) if len(ops.shape(value)) == 0 else value
        for key, value in logs.items()
    }


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


def _num_replicas():
    return tf.distribute.get_strategy().num_replicas_in_sync


def _scale_for_replicas(value):
    # Gradients are summed over replicas: a term every replica computes in
    # full is divided by their number, as Keras does for the task loss.
    replicas = _num_replicas()
    return value / replicas if replicas > 1 else value


def _unscale_for_replicas(value):
    replicas = _num_replicas()
    return value * replicas if replicas > 1 else value
