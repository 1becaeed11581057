"""`SwitchingModel`: trains a task network and its switcher alternately.

One training step (`_phase_step`), in this order, as the `SwitchSchedule`
phase of the step says (read from `switching_step` before the step and
passed to it):

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

The model owns only this alternation (`compile()` and `fit()`, what they
configure and report, are `keras_switch.compile_fit`'s). When each phase
runs is the schedule's business (`keras_switch.schedule`, which also plans a run's
"auto" steps); how dense the layers must be and where the thresholds go is
the sparsity control's (`keras_switch.sparsity`, `keras_switch.budget`);
the masked kernel is the layer's (`keras_switch.layers`); gradients and the
compiled, distributed step function are the backend's
(`keras_switch.backend`).
"""

import contextlib
import functools
import math

import keras
from keras import ops

from keras_switch import _keras_internals
from keras_switch import backend
from keras_switch.compile_fit import CompileAndFit
from keras_switch.layers import link_neighbours
from keras_switch.layers import straight_through
from keras_switch.layers import switched_layers
from keras_switch.switcher import sharing_scope


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


class _Hooks:
    """A list out of Keras' tracking (it holds callables, not state)."""

    def __init__(self):
        self.items = []


class _Untracked:
    """A value out of Keras' (and torch's) tracking of layer attributes: a
    model attribute holding its own layers and variables would be tracked
    as more of them."""

    def __init__(self):
        self.value = None


@keras.saving.register_keras_serializable(package="keras_switch")
class SwitchingModel(CompileAndFit, keras.Model):
    """A `keras.Model` whose switched layers (`SwitchedDense`, `SwitchedConv2D`) learn their own sparsity.

    Use it like `keras.Model`: functionally, `SwitchingModel(inputs,
    outputs)`, or as a base class (`class Net(SwitchingModel)`), then
    `compile()` with two optimizers and `fit()`.

    Create the model, and call `compile()`, inside `strategy.scope()` to train
    under `tf.distribute`.

    Attributes:
        step_hooks: Callables `hook(step)` run after each training step of
            `fit()` / `train_on_batch()` (outside the compiled step, in
            Python; `step` counts from 0). The `AccuracyBudget`'s held-out
            checks use it; `fit()` removes the hooks added during it.
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
        # so a resumed run continues the schedule where it stopped. JAX
        # computes in 32-bit integers unless told otherwise.
        self.switching_step = keras.Variable(
            0, dtype="int64" if keras.backend.backend() == "tensorflow" else "int32", trainable=False, aggregation="only_first_replica",
            name="switching_step")
        self._sparsity_tracker = _LastValue(name="sparsity")
        self._switch_loss_tracker = keras.metrics.Mean(name="switch_loss")
        self.task_optimizer = None
        self.switch_optimizer = None
        self.schedule = None
        self.sparsity = None
        # An AccuracyBudget's `budget.BudgetState`, made by the compile()
        # that first gives one; saved with the model.
        self.budget_state = None
        self._hooks = _Hooks()
        # `switching_step` as a Python int between the steps of one fit() or
        # train_on_batch() call (reading the variable each step costs a
        # device sync); None: read the variable.
        self._step_cache = None
        # (switched layers, task variables, switcher variables) of the steps
        # of the current train function, read at its first step: a compiled
        # step reads them once when traced, and an eager one (PyTorch) then
        # reads them as it would. None: read them at the next step.
        self._step_sets = _Untracked()

    @property
    def step_hooks(self):
        return self._hooks.items

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

    def current_phase(self):
        """The `SwitchSchedule` phase of the next training step."""
        self._require_compiled()
        return self.schedule(int(ops.convert_to_numpy(self.switching_step)))

    def _next_step(self):
        self._require_compiled()
        if self._step_cache is None:
            return int(ops.convert_to_numpy(self.switching_step))
        return self._step_cache

    def _require_compiled(self):
        if self.task_optimizer is None:
            raise RuntimeError(
                "You must call `compile()` on a SwitchingModel before training it."
            )

    # -- the training step ----------------------------------------------------
    #
    # Which phases run is read from `switching_step` in Python, before each
    # step, and each distinct `Phase` gets its own compiled step function,
    # which receives the phase as an argument: the step holds no
    # data-dependent branches. That is what makes it correct under
    # tf.distribute: an optimizer update synchronises replicas, and
    # TensorFlow does not allow that inside `tf.cond` in a replica.

    def make_train_function(self, force=False):
        if self.train_function is not None and not force:
            return self.train_function
        by_phase = {}
        self._step_sets.value = None

        def train_function(iterator):
            step = self._next_step()
            phase = self.schedule(step)
            if phase not in by_phase:
                by_phase[phase] = backend.step_function(
                    self, functools.partial(self._phase_step, phase))
            logs = by_phase[phase](iterator)
            self._step_cache = step + 1
            for hook in list(self.step_hooks):
                hook(step)
            return logs

        self.train_function = backend.train_function(self, train_function)
        return self.train_function

    def train_step(self, data):
        """One training step of the current phase, run eagerly (`fit()` and
        `train_on_batch()` run each phase's step compiled instead).

        Raises:
            RuntimeError: inside a function being compiled, where the phase
                cannot be read.
        """
        if backend.tracing():
            raise RuntimeError(
                "SwitchingModel.train_step must run through fit(), "
                "train_on_batch() or make_train_function(): they pick the "
                "step's phase from the schedule before tracing it."
            )
        return self._phase_step(self.current_phase(), data)

    def _phase_step(self, phase, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        if self._step_sets.value is None:
            layers = self.switched_layers
            if not self.built or not all(layer.built for layer in layers):
                self(x)  # a subclassed model builds lazily: on the first trace
            self.build_optimizers()
            self._step_sets.value = (layers, self.task_variables, self.switcher_variables)
        layers, task_variables, switcher_variables = self._step_sets.value

        masks = self._task_phase_masks(layers, phase)
        dense_gradient = self.train_pruned_weights and not phase.frozen
        y_pred = self._task_phase(layers, masks, x, y, sample_weight, phase.task,
                                  dense_gradient, task_variables)
        if phase.switch:
            # A mean over the switch steps only: the others add nothing.
            self._switch_loss_tracker.update_state(
                self._switch_phase(layers, x, y, sample_weight, switcher_variables))
        self.switching_step.assign_add(1)
        self._sparsity_tracker.update_state(_sparsity(masks))
        return backend.logs_for_strategy(
            self.compute_metrics(x, y, y_pred, sample_weight=sample_weight))

    def _task_phase_masks(self, layers, phase):
        if phase.mask_source == "dense":
            masks = [ops.ones(layer.kernel.shape, layer.kernel.dtype) for layer in layers]
        elif phase.mask_source == "stored":
            masks = [ops.convert_to_tensor(layer.mask) for layer in layers]
            if phase.switch:  # read now: the switch step stores new masks
                masks = [ops.copy(layer.mask) for layer in layers]
        else:
            masks = self._refresh_masks(layers)
        for layer in layers:
            layer.mask_frozen.assign(1.0 if phase.frozen else 0.0)
        return masks

    def _task_phase(self, layers, masks, x, y, sample_weight, apply, dense_gradient, variables):
        def loss_fn():
            with _phase_masks(layers, masks, dense_gradient):
                y_pred = self(x, training=True)
            loss = self.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight,
                                     training=True)
            _keras_internals.loss_tracker(self).update_state(
                backend.unscale_for_replicas(loss),
                sample_weight=ops.shape(keras.tree.flatten(x)[0])[0])
            return self.task_optimizer.scale_loss(loss), y_pred

        if not apply:
            return loss_fn()[1]
        y_pred, grads = backend.gradients(loss_fn, variables)
        backend.apply_gradients(self.task_optimizer, grads, variables)
        return y_pred

    def _switch_phase(self, layers, x, y, sample_weight, variables):
        def loss_fn():
            logits = [layer.switch_logits() for layer in layers]
            masks = [straight_through(l, self.switch_estimator) for l in logits]
            with _phase_masks(layers, masks):
                y_pred = self(x, training=True)
            loss = self.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight,
                                     training=True)
            loss = loss + backend.scale_for_replicas(self.sparsity.penalty(_density(masks)))
            return self.switch_optimizer.scale_loss(loss), loss

        loss, grads = backend.gradients(loss_fn, variables)
        backend.apply_gradients(self.switch_optimizer, grads, variables)
        self._refresh_masks(layers)  # after the update: the masks the next task steps use
        return ops.cast(backend.unscale_for_replicas(loss), "float32")

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

    def test_step(self, *args):
        # `(data)`, or `(state, data)` -> `(logs, state)` on JAX.
        result = super().test_step(*args)
        logs = result[0] if isinstance(result, tuple) else result
        # Switch statistics describe training; evaluation does not update them.
        for tracker in (self._sparsity_tracker, self._switch_loss_tracker):
            logs.pop(tracker.name, None)
        logs = backend.logs_for_strategy(logs)
        return (logs, *result[1:]) if isinstance(result, tuple) else logs

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
        _keras_internals.Functional.__init__(self, inputs, outputs, name=name, **kwargs)
        self._init_switching_state()
        link_neighbours(switched_layers(self))  # the layers are built by now


def _density(masks):
    if not masks:
        return ops.zeros((), "float32")
    on = ops.sum(ops.stack([ops.sum(ops.cast(m, "float32")) for m in masks]))
    total = float(sum(math.prod(m.shape) for m in masks))
    return on / total


def _sparsity(masks):
    """The share of switched-off entries (counted off, so all-on is exactly 0)."""
    if not masks:
        return ops.ones((), "float32")
    off = ops.sum(ops.stack([ops.sum(1.0 - ops.cast(m, "float32")) for m in masks]))
    return off / float(sum(math.prod(m.shape) for m in masks))


@contextlib.contextmanager
def _phase_masks(layers, masks, dense_gradient=False):
    """Hands each layer its mask for the forward passes inside the block."""
    with contextlib.ExitStack() as stack:
        for layer, mask in zip(layers, masks):
            stack.enter_context(layer.phase_mask(mask, dense_gradient))
        yield
