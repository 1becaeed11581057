"""`AccuracyBudget`: the sparsest network within an accuracy budget, in one
run. Its one home: the controller (`AccuracyBudget.update`), its state on
the model (`BudgetState`: named variables saved with the model; the one
7-entry vector of earlier versions still loads), the held-out checks
(`BudgetChecks`, run after the steps the control names through
`SwitchingModel.step_hooks`; they log `heldout_accuracy`, `budget_density`,
`budget_reference` and `budget_best_accuracy` at each epoch's end, NaN
while not measured), fit()'s held-out data (`with_budget_checks`) and
whether the run met its budget (`outcome`).
"""

import contextlib
import math

import keras
import numpy as np
from keras import ops

from keras_switch import _keras_internals
from keras_switch import backend
from keras_switch import heldout
from keras_switch import schedule as schedule_lib
from keras_switch import thresholds
from keras_switch.checks import ArgumentError
from keras_switch.checks import check_choice
from keras_switch.checks import check_int
from keras_switch.checks import check_number
from keras_switch.layers import switched_layers
from keras_switch.schedule import AUTO
from keras_switch.sparsity import COMPUTED_ALLOCATIONS
from keras_switch.sparsity import SparsityControl

# Weight of a new check in the smoothed held-out accuracy the controller
# decides on (an exponential moving average): single checks swing by about
# 0.4 pt with SGD's noise, as much as a 0.5 pt budget (BENCHMARKS.md).
SMOOTHING = 0.5
# reference_steps="auto": the dense phase that measures the reference is this
# fraction of the steps from the warm-up to the freeze.
AUTO_REFERENCE_FRACTION = 0.1
# check_every="auto": about this many held-out checks in the search, each
# aligned to end just before a switch step.
AUTO_CHECKS = 30
# The search's first step in log density (a prune of 26% of what is left per
# check), and the smallest the bisection halves it to.
INITIAL_LOG_STEP = 0.3
MIN_LOG_STEP = 0.02
# The share of the budget the search may spend against the best held-out
# accuracy so far (BENCHMARKS.md, "Automatic sparsity").
DEFAULT_SEARCH_MARGIN = 0.25
# Held-out examples per forward pass of a check.
_BATCH = 1024


@keras.saving.register_keras_serializable(package="keras_switch")
class AccuracyBudget(SparsityControl):
    """The sparsest network whose held-out accuracy stays within `max_drop` of
    its own dense reference, found in one run (the designs tried and the
    measurements behind each choice: BENCHMARKS.md, "Automatic sparsity").

    1. **Reference.** After `reference_steps` of dense training past the
       warm-up, the accuracy on the held-out data (`fit(validation_data=...)`
       or `validation_split`, from the training split) is the reference.
    2. **Search.** Every `check_every` steps, just before a switch step, the
       held-out accuracy with the stored masks is measured and smoothed.
       While it is within `search_margin * max_drop` of the best smoothed
       accuracy so far, the density goes down a step in log density; when
       not, the step is halved and the density goes back up by it. The
       switcher places the thresholds at that density, split over layers as
       `allocation` says: which connections stay is the switcher's choice,
       how many is the held-out data's.
    3. **Fine-tune.** At the freeze step the density goes to the sparsest
       one within budget at a check, frozen for the rest of the run.

    `SwitchingModel.budget_outcome()` says at the end whether the final
    network's held-out accuracy is within budget (`fit()` warns with
    `BudgetExceededWarning` if not).

    Args:
        max_drop: The held-out accuracy the run may lose against the dense
            reference, a fraction in (0, 1) (0.005 = 0.5 pt).
        reference_steps: Dense steps after the warm-up before the reference
            is measured; `"auto"` (the default): 10% of the steps from the
            warm-up to the freeze.
        check_every: Steps between held-out checks, a multiple of the
            schedule's `switch_every`; `"auto"` (the default): about 30
            checks in the search.
        allocation: How the density is split across layers: `"auto"` (the
            default: for a budget, `"magnitude"`, with Dense and
            convolution kernels alike;
            `thresholds.resolve_allocation`), `"magnitude"` (global magnitude
            pruning's split, which moves smoothly with the density) or
            `"erk"` (Erdős–Rényi-Kernel of the current density).
        search_margin: The share of `max_drop` the search may lose against
            the best smoothed held-out accuracy so far, in (0, 1] (default
            0.25: the network keeps learning while it is pruned, which hides
            part of what pruning costs).

    Raises:
        ValueError: naming the argument, for a value out of its range.
    """

    def __init__(self, max_drop, reference_steps=AUTO, check_every=AUTO,
                 allocation="auto", search_margin=DEFAULT_SEARCH_MARGIN):
        self.max_drop = check_number(
            "max_drop", max_drop, "a fraction in (0, 1), e.g. 0.005 for 0.5 pt",
            lambda d: 0 < d < 1)
        self.search_margin = check_number(
            "search_margin", search_margin, "a number in (0, 1]", lambda m: 0 < m <= 1)
        self.reference_steps = check_int("reference_steps", reference_steps, 1, words=(AUTO,))
        self.check_every = check_int("check_every", check_every, 1, words=(AUTO,))
        self.allocation = check_choice("allocation", allocation, COMPUTED_ALLOCATIONS)
        self._state = None

    def attach(self, state):
        """Hands the control the model's `BudgetState`."""
        self._state = state

    @staticmethod
    def initial_state():
        """The state a run starts from (a dict, see `BudgetState.read`):
        dense, nothing measured."""
        return {"density": 1.0, "best_density": 1.0, "log_step": INITIAL_LOG_STEP,
                "reference": None, "accuracy": None, "best_accuracy": None, "smoothed": None}

    @property
    def planned(self):
        return AUTO not in (self.reference_steps, self.check_every)

    def plan(self, schedule, total_steps=None):
        """Fills in the "auto" steps once the schedule's freeze step and
        switch interval are known."""
        if schedule.freeze_step in (None, AUTO) or schedule.switch_every == AUTO:
            return
        span = schedule.freeze_step - schedule.warmup_steps
        if self.reference_steps == AUTO:
            self.reference_steps = max(1, round(AUTO_REFERENCE_FRACTION * span))
        if self.check_every == AUTO:
            every = schedule.switch_every
            search = max(1, span - self.reference_steps)
            self.check_every = every * max(1, round(search / (AUTO_CHECKS * every)))

    def check_schedule(self, schedule):
        """The budget needs a frozen tail (the chosen sparsity is fine-tuned
        there), a reference measured before it, and checks aligned with the
        switch steps."""
        if schedule.freeze_step is None:
            raise ArgumentError("freeze_step", None, message=(
                "AccuracyBudget fine-tunes the sparsity it chose with the mask "
                "frozen: give the schedule a freeze_step ('auto' or a step). "
                "Received: freeze_step=None"))
        if not self.planned or not schedule.planned:
            return
        span = schedule.freeze_step - schedule.warmup_steps
        if self.reference_steps + self.check_every > span:
            raise ArgumentError("reference_steps", self.reference_steps, message=(
                f"AccuracyBudget measures its reference after reference_steps="
                f"{self.reference_steps} and then searches with a check every "
                f"{self.check_every} steps, all before the mask freezes "
                f"{span} steps after the warm-up: nothing would be searched. "
                "Use a smaller `reference_steps` or a later freeze_step."))
        if self.check_every % schedule.switch_every:
            raise ArgumentError("check_every", self.check_every, message=(
                f"`check_every` must be a multiple of the schedule's switch_every="
                f"{schedule.switch_every} (each check ends just before a switch "
                f"step). Received: check_every={self.check_every}"))

    def density(self, step=None):
        """The density the controller asks for now (its state's variable)."""
        if self._state is None:
            raise ValueError(
                "This AccuracyBudget is not attached to a model: compile a "
                "SwitchingModel with it (`compile(sparsity=...)`).")
        return self._state.density

    def is_check(self, step, schedule):
        """Whether a held-out check follows training step `step` (from 0):
        the first one `reference_steps` into switching, then every
        `check_every` steps, each just before a switch step, and the last
        step before the freeze."""
        since = step + 1 - schedule.warmup_steps
        if step + 1 == schedule.freeze_step:
            return True
        return (self.reference_steps <= since and step + 1 < schedule.freeze_step
                and (since + 1) % self.check_every == 0)

    def update(self, state, accuracy, step, schedule):
        """The controller: the new state (a dict, see `BudgetState.read`)
        after a held-out check with `accuracy` after training step `step`."""
        state = dict(state, accuracy=accuracy)
        if state["reference"] is None:
            if step + 1 - schedule.warmup_steps >= self.reference_steps:
                state.update(reference=accuracy, best_density=1.0, best_accuracy=accuracy,
                             smoothed=accuracy, density=math.exp(-state["log_step"]))
        else:
            smoothed = SMOOTHING * accuracy + (1 - SMOOTHING) * state["smoothed"]
            state.update(smoothed=smoothed, best_accuracy=max(state["best_accuracy"], smoothed))
            if state["best_accuracy"] - smoothed <= self.search_margin * self.max_drop:
                state["best_density"] = min(state["best_density"], state["density"])
                state["density"] *= math.exp(-state["log_step"])
            else:
                state["log_step"] = max(state["log_step"] / 2, MIN_LOG_STEP)
                state["density"] = min(1.0, state["density"] * math.exp(state["log_step"]))
        if step + 1 >= schedule.freeze_step:  # the mask freezes next: the sparsest within budget
            state["density"] = state["best_density"]
        return state

    def place_thresholds(self, layers, logits, step):
        keep = thresholds.keep_count(self.density(), thresholds.kernel_entries(layers))
        if thresholds.resolve_allocation(self.allocation, layers, budget=True) == "magnitude":
            return thresholds.magnitude_split(layers, logits, keep)
        counts = thresholds.erk_keep_counts([l.kernel.shape for l in layers], keep)
        return [thresholds.keep_in_layer(layer, l, count)
                for layer, l, count in zip(layers, logits, counts)]

    def get_config(self):
        return {
            "max_drop": self.max_drop,
            "reference_steps": self.reference_steps,
            "check_every": self.check_every,
            "allocation": self.allocation,
            "search_margin": self.search_margin,
        }


class BudgetState:
    """An `AccuracyBudget`'s state: one named scalar variable each (`NAMES`),
    tracked by the model (saved with it; same value on every replica); the
    `*_measured` flags (0 or 1) say whether the measured values hold one."""

    #: The variables, in the order the model saves them.
    NAMES = ("density", "best_density", "log_step", "reference", "accuracy",
             "best_accuracy", "smoothed", "reference_measured", "accuracy_measured")
    # What `read` returns as None until measured, and the flag that says so.
    _MEASURED = {"reference": "reference_measured", "best_accuracy": "reference_measured",
                 "smoothed": "reference_measured", "accuracy": "accuracy_measured"}
    # The one vector saved before this class existed: its entries, by name.
    LEGACY_VECTOR = ("density", "reference", "best_density", "log_step", "accuracy",
                     "best_accuracy", "smoothed")

    def __init__(self):
        self.variables = [
            keras.Variable(0.0, dtype="float32", trainable=False,
                           aggregation="only_first_replica", name=f"budget_{name}")
            for name in self.NAMES]
        self.reset()

    def __getattr__(self, name):
        if name in BudgetState.NAMES:
            return self.variables[BudgetState.NAMES.index(name)]
        raise AttributeError(name)

    def reset(self):
        """Back to the start of a run: dense, nothing measured."""
        self.write(AccuracyBudget.initial_state())

    def read(self):
        """The state as a dict of floats, None for what is not measured yet."""
        values = dict(zip(self.NAMES, (float(ops.convert_to_numpy(v)) for v in self.variables)))
        state = {name: values[name] for name in self.NAMES if not name.endswith("_measured")}
        for name, flag in self._MEASURED.items():
            if not values[flag]:
                state[name] = None
        return state

    def write(self, state):
        """Assigns `state` (a dict as `read` returns)."""
        values = {name: (0.0 if value is None else value) for name, value in state.items()}
        for name, flag in self._MEASURED.items():
            values[flag] = float(state[name] is not None)
        for name, variable in zip(self.NAMES, self.variables):
            variable.assign(np.float32(values[name]))

    def write_legacy(self, vector):
        """Assigns the state from the 7-entry vector saved before named
        variables (its entries `LEGACY_VECTOR`; -1 meant "not measured")."""
        values = dict(zip(self.LEGACY_VECTOR, (float(v) for v in vector)))
        self.write({name: (None if name in self._MEASURED and values[name] < 0 else value)
                    for name, value in values.items()})


def attach_state(model, control):
    """Gives `model` a `BudgetState` at the start of a run (the one it has,
    reset, or a new one tracked by the model, so saved with it) and hands
    it to `control`."""
    if model.budget_state is None:
        state = BudgetState()
        _keras_internals.add_state_after_build(model, "_budget_variables", state.variables)
        model.budget_state = state
    else:
        model.budget_state.reset()
    control.attach(model.budget_state)


def load_own_variables(model, store, own):
    """The part of a model's saved own-variable `store` that Keras loads into
    its `own` variables: entries of a budget state the model has no
    variables for (loaded without compile) are dropped, and the 7-entry
    vector of earlier versions is read into the model's `BudgetState`."""
    keys = list(store.keys())
    state = getattr(model, "budget_state", None)
    if len(keys) == own:
        return store
    budget_entries = len(BudgetState.NAMES) if state is not None else 0
    base = own - budget_entries
    legacy = len(keys) == base + 1 and np.shape(store[str(base)]) == (len(BudgetState.LEGACY_VECTOR),)
    if state is not None and legacy:
        state.write_legacy(np.asarray(store[str(base)]))
        return {str(i): store[str(i)] for i in range(base)} | {
            str(base + i): v.value for i, v in enumerate(state.variables)}
    if state is None and len(keys) in (own + 1, own + len(BudgetState.NAMES)):
        return {str(i): store[str(i)] for i in range(own)}
    return store  # Keras names the mismatch


def with_budget_checks(model, args, kwargs):
    """fit()'s arguments with the held-out data the AccuracyBudget checks
    (`validation_data`, or `validation_split` of array inputs, split here
    as Keras would) and `BudgetChecks` first among the callbacks.

    Raises:
        ValueError: when fit() has no held-out data, or `validation_split`
            of a dataset.
    """
    bound = schedule_lib.fit_arguments(model, args, kwargs)
    arguments = bound.arguments
    validation_data = arguments.get("validation_data")
    split = arguments.get("validation_split", 0.0)
    if validation_data is None and split:
        x, y = arguments.get("x"), arguments.get("y")
        if y is None or heldout.is_dataset(x):
            raise ValueError(
                "AccuracyBudget with `validation_split` needs array inputs "
                "`fit(x, y, ...)`; for a dataset, pass held-out data as "
                "`validation_data`.")
        (arguments["x"], arguments["y"]), validation_data = heldout.split(x, y, split)
        arguments["validation_split"] = 0.0
        arguments["validation_data"] = validation_data
    if validation_data is None:
        raise ValueError(
            "AccuracyBudget keeps the held-out accuracy within `max_drop` of "
            "the dense reference, so fit() needs held-out data from the "
            "training split: pass `validation_data=(x_heldout, y_heldout)` or "
            "`validation_split=0.1` (never the test set).")
    schedule_lib.with_callback_first(bound, BudgetChecks(model, heldout.as_arrays(validation_data)))
    return bound.args[1:], bound.kwargs


def outcome(control, state, sparsity):
    """Whether a run with `control` (an `AccuracyBudget`) and its
    `BudgetState` met the budget, at overall `sparsity`: the dict
    `SwitchingModel.budget_outcome()` returns."""
    values = state.read()
    reference, accuracy = values["reference"], values["accuracy"]
    budget = control.max_drop
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
            "validation_accuracy": accuracy, "sparsity": sparsity, "met": met, "why": why}


class BudgetChecks(keras.callbacks.Callback):
    """Measures held-out accuracy for the model's `AccuracyBudget` and
    updates its state (see the module doc).

    Args:
        switching_model: The compiled `SwitchingModel`.
        heldout: `(x, y)` numpy arrays; `y` class indices (`[n]` or
            `[n, 1]`) or one-hot rows.

    Raises:
        ValueError: for held-out data with no examples.
    """

    def __init__(self, switching_model, heldout):
        super().__init__()
        self._switching_model = switching_model
        x, y = heldout
        y = np.asarray(y)
        self._labels = np.argmax(y, axis=-1) if y.ndim == 2 and y.shape[-1] > 1 else y.reshape(-1)
        self._x = x
        self._count = len(self._labels)
        if not self._count:
            raise ValueError("The AccuracyBudget's held-out data has no examples.")
        self._forward = None

    def accuracy(self):
        """Held-out accuracy of the network with its stored masks.

        Raises:
            ValueError: for outputs that are not `[batch, classes >= 2]`.
        """
        model = self._switching_model
        if self._forward is None:
            layers = switched_layers(model)

            def forward(x):
                with contextlib.ExitStack() as stack:
                    for layer in layers:
                        stack.enter_context(layer.phase_mask(ops.convert_to_tensor(layer.mask)))
                    return model(x, training=False)

            self._forward = backend.compiled(forward, model)
        correct = 0
        for start in range(0, self._count, _BATCH):
            x = keras.tree.map_structure(lambda a: a[start:start + _BATCH], self._x)
            scores = ops.convert_to_numpy(self._forward(x))
            if scores.ndim != 2 or scores.shape[-1] < 2:
                raise ValueError(
                    "AccuracyBudget measures accuracy as the argmax of the "
                    "model's class scores, `[batch, classes]` with classes >= 2. "
                    f"Received: outputs of shape {scores.shape}")
            correct += int(np.sum(np.argmax(scores, axis=-1)
                                  == self._labels[start:start + _BATCH]))
        return correct / self._count

    def on_train_begin(self, logs=None):
        # A step hook rather than on_train_batch_end, which turns off Keras'
        # asynchronous batch callbacks and copies every step's logs to the
        # host. SwitchingModel.fit() removes it when the run ends.
        self._switching_model.step_hooks.append(self._after_step)

    def _after_step(self, step):
        model = self._switching_model
        if model.sparsity.is_check(step, model.schedule):
            state = model.budget_state
            state.write(model.sparsity.update(state.read(), self.accuracy(), step, model.schedule))

    def on_epoch_end(self, epoch, logs=None):
        state = self._switching_model.budget_state
        values = state.read()
        # Measured again at the last epoch's end (the outcome) and before the
        # first check; otherwise the last check's accuracy stands (each pass
        # over the held-out data costs time: BENCHMARKS.md, "Cost").
        if values["accuracy"] is None or epoch + 1 >= self.params.get("epochs", epoch + 1):
            values["accuracy"] = self.accuracy()
            state.write(values)
        if logs is not None:
            shown = {key: math.nan if value is None else value for key, value in values.items()}
            logs.update(heldout_accuracy=shown["accuracy"], budget_density=shown["density"],
                        budget_reference=shown["reference"],
                        budget_best_accuracy=shown["best_accuracy"])
