"""`SwitchSchedule`: which phases run at a given training step.

A pure, serializable function of the step counter, read inside
`SwitchingModel.train_step`, so a plain `model.fit()` follows it with no
callback.

Time line (steps count `train_step` calls, from 0):

    [0, warmup_steps)          dense warm-up: task steps on the full (all-on)
                               kernel; the switcher is not trained.
    [warmup_steps, freeze_step) switching: task and switch steps as `mode`
                               says.
    [freeze_step, ...)         frozen: the mask of the last switching step is
                               kept; task steps only.

Modes during switching (`s` = steps since `warmup_steps`):

    "every_batch"  a task step on every batch, and a switch step after it on
                   every `switch_every`-th batch (`s % switch_every ==
                   switch_every - 1`); `switch_every=1`: task then switch on
                   each batch.
    "alternate"    batches alternate: task step on even `s`, switch step on
                   odd `s`.

The switcher runs only on switch steps (and once at the first switching
step): each switch step ends by storing the switcher's new hard masks, and
the task steps in between use the stored masks. With `switch_every=k` a
training step therefore costs about a Dense step plus `1/k` of a switch step.

Defaults are the measured recipe (BENCHMARKS.md), planned by
`SwitchingModel.fit()` from the run's length (`plan(total_steps)`):
`freeze_step="auto"` freezes the mask for the last 20% of the steps after
the warm-up; `switch_every="auto"` is a switch step every 100 batches
(a training step then costs little more than a Dense one; BENCHMARKS.md,
"Training step time and memory"), or often enough for 32 switch steps in a shorter run;
a `TargetSparsity` with `ramp_steps="auto"` reaches its target where the
mask freezes. `PlanRun` is the callback that does it; `get()` turns what
`compile(schedule=...)` received into a schedule.
"""

import collections
import inspect

import keras

from keras_switch.checks import ArgumentError
from keras_switch.checks import FromArguments
from keras_switch.checks import check_choice
from keras_switch.checks import check_int

MODES = ("every_batch", "alternate")

STAGES = ("warmup", "switching", "frozen")

AUTO = "auto"
# The recipe (BENCHMARKS.md): the mask is final for the last 20% of switching
# (2 of 10 epochs on the LeNets), after a ramp over the first 80%.
AUTO_FREEZE_FRACTION = 0.8
# switch_every="auto": a switch step every 100 batches (the recipe), or more
# often when the switching stage is short, so that it holds at least 32
# switch steps.
DEFAULT_SWITCH_EVERY = 100
MIN_SWITCH_STEPS = 32


def planned_step(fraction, total_steps, warmup_steps):
    """The step `fraction` of the way from the end of the warm-up to
    `total_steps` (at least one step after the warm-up)."""
    return warmup_steps + max(1, round(fraction * (total_steps - warmup_steps)))


class Phase(collections.namedtuple("Phase", ["task", "switch", "stage", "mask_source"])):
    """What one training step does.

    `task`: run a task step. `switch`: run a switch step after it (which ends
    by storing the switcher's new masks). `stage`: `"warmup"` (dense, the
    switcher untouched), `"switching"` or `"frozen"` (the stored mask is
    final, also at inference). `mask_source`: where the task step's mask
    comes from: `"dense"` (all on, warm-up), `"switcher"` (ask the switcher
    now and store its hard mask: the first switching step and the freeze
    step) or `"stored"` (the mask the last switch step stored: the switcher
    does not run on task-only steps).
    """

    __slots__ = ()

    @property
    def mask(self):
        """`mask_source`, by its earlier name."""
        return self.mask_source

    @property
    def frozen(self):
        return self.stage == "frozen"


@keras.saving.register_keras_serializable(package="keras_switch")
class SwitchSchedule(FromArguments):
    """When the task network and the switcher are updated.

    Args:
        mode: One of `"every_batch"` or `"alternate"` (see the module doc).
        switch_every: With `mode="every_batch"`, one switch step every this
            many task steps (positive int), or `"auto"` (the default, the
            measured recipe): every 100 steps, or often enough for 32 switch
            steps before the mask freezes (or the run ends) in a shorter run.
            `"alternate"` takes no value here (1).
        warmup_steps: Dense warm-up steps before switching starts (>= 0).
        freeze_step: Step from which the mask is frozen and only the task
            network trains; `None` to switch until the end; `"auto"` (the
            default): 80% of the way from the warm-up to the end of the run,
            which `SwitchingModel.fit()` fills in from its epochs and steps
            (`plan`).
    """

    def __init__(
        self, mode="every_batch", switch_every=None, warmup_steps=0, freeze_step=AUTO
    ):
        check_choice("mode", mode, MODES)
        if switch_every is None:
            switch_every = AUTO if mode == "every_batch" else 1
        switch_every = check_int("switch_every", switch_every, 1, words=(AUTO,))
        check_int("warmup_steps", warmup_steps, minimum=0)
        freeze_step = check_int("freeze_step", freeze_step, warmup_steps + 1, words=(AUTO, None))
        if mode == "alternate" and switch_every != 1:
            raise ArgumentError("switch_every", switch_every, message=(
                "`switch_every` only applies to mode='every_batch'. "
                f"Received: mode={mode!r}, switch_every={switch_every}"
            ))
        self.mode = mode
        self.switch_every = switch_every
        self.warmup_steps = warmup_steps
        self.freeze_step = freeze_step

    @property
    def planned(self):
        """False while `freeze_step` or `switch_every` is still `"auto"`."""
        return AUTO not in (self.freeze_step, self.switch_every)

    def plan(self, total_steps=None):
        """Fills in the `"auto"` steps for a run of `total_steps` steps (what
        it can without them when None: `switch_every` from a given
        `freeze_step`)."""
        if self.freeze_step == AUTO and total_steps is not None:
            self.freeze_step = planned_step(AUTO_FREEZE_FRACTION, total_steps,
                                            self.warmup_steps)
        end = total_steps if self.freeze_step is None else self.freeze_step
        if self.switch_every == AUTO and end not in (None, AUTO):
            switching = max(1, end - self.warmup_steps)
            self.switch_every = max(1, min(DEFAULT_SWITCH_EVERY, switching // MIN_SWITCH_STEPS))

    def __call__(self, step):
        """The `Phase` of training step `step` (a Python int, from 0)."""
        step = int(step)
        if not self.planned:
            raise ValueError(
                "This SwitchSchedule has steps left as 'auto' "
                f"(freeze_step={self.freeze_step!r}, switch_every="
                f"{self.switch_every!r}), which `fit()` fills in from the run's "
                "length. Outside fit() (train_on_batch, a custom loop), call "
                "`model.plan(total_steps)` first, or give them (`freeze_step`: "
                "an int, or None for no frozen tail; `switch_every`: an int)."
            )
        if step < self.warmup_steps:
            return Phase(task=True, switch=False, stage="warmup", mask_source="dense")
        if self.freeze_step is not None and step >= self.freeze_step:
            # The first frozen step takes the switcher's mask once and keeps it.
            source = "switcher" if step == self.freeze_step else "stored"
            return Phase(task=True, switch=False, stage="frozen", mask_source=source)
        since = step - self.warmup_steps
        source = "switcher" if since == 0 else "stored"
        if self.mode == "every_batch":
            switch = since % self.switch_every == self.switch_every - 1
            return Phase(task=True, switch=switch, stage="switching", mask_source=source)
        switch = since % 2 == 1
        return Phase(task=not switch, switch=switch, stage="switching", mask_source=source)

    def get_config(self):
        return {
            "mode": self.mode,
            "switch_every": self.switch_every,
            "warmup_steps": self.warmup_steps,
            "freeze_step": self.freeze_step,
        }



def get(identifier=None):
    """The schedule `compile(schedule=...)` asks for, like
    `keras.optimizers.get`: a `SwitchSchedule` (copied: `fit()` plans its
    "auto" steps for one model's run only), a mode name, its config dict,
    or None (the default recipe).

    Raises:
        TypeError: for any other value.
    """
    if identifier is None:
        return SwitchSchedule()
    if isinstance(identifier, str):
        return SwitchSchedule(mode=identifier)
    if isinstance(identifier, dict):
        return SwitchSchedule.from_config(identifier)
    if isinstance(identifier, SwitchSchedule):
        return type(identifier).from_config(identifier.get_config())
    raise TypeError(
        "Received an invalid value for `schedule`, expected a "
        "keras_switch.SwitchSchedule, a mode name or None. "
        f"Received: schedule={identifier!r}"
    )


class PlanRun(keras.callbacks.Callback):
    """Plans a `SwitchingModel`'s "auto" steps (`model.plan`) from fit()'s
    epochs and steps per epoch, before the first step. `SwitchingModel.fit()`
    puts it first among the callbacks (`with_callback_first`) while any step
    is left as "auto".

    Raises (at the start of fit()):
        ValueError: when the run's length is unknown (no steps per epoch, or
            a caller's `CallbackList` built without them).
    """

    def __init__(self, switching_model):
        super().__init__()
        self._switching_model = switching_model
        self.given_list = False  # set by with_callback_first for a caller's CallbackList

    def on_train_begin(self, logs=None):
        epochs, steps = self.params.get("epochs"), self.params.get("steps")
        if self.given_list and not (epochs and steps):
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


def fit_arguments(model, args, kwargs):
    """`keras.Model.fit`'s arguments `(args, kwargs)` for `model`, bound by
    name (`inspect.BoundArguments`), so that they can be read and changed."""
    return inspect.signature(keras.Model.fit).bind(model, *args, **kwargs)


def with_callback_first(bound, callback):
    """Puts `callback` first among the callbacks of bound fit() arguments
    (`fit_arguments`): a list, or Keras' own CallbackList, which Keras uses
    as given (the callback then reads its params, and `given_list` is set
    on it if it has one)."""
    callbacks = bound.arguments.get("callbacks")
    if isinstance(callbacks, keras.callbacks.CallbackList):
        if hasattr(callback, "given_list"):
            callback.given_list = True
        callback.set_model(bound.arguments["self"])
        callback.set_params(callbacks.params)
        callbacks.callbacks.insert(0, callback)
    else:
        bound.arguments["callbacks"] = [callback, *(callbacks or [])]
    return bound
