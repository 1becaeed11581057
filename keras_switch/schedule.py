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
"""

import collections

import keras

from keras_switch.checks import ArgumentError
from keras_switch.checks import FromArguments
from keras_switch.checks import check_choice
from keras_switch.checks import check_int

MODES = ("every_batch", "alternate")

STAGES = ("warmup", "switching", "frozen")


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
            many task steps (positive int).
        warmup_steps: Dense warm-up steps before switching starts (>= 0).
        freeze_step: Step from which the mask is frozen and only the task
            network trains, or `None` to switch until the end.
    """

    def __init__(
        self, mode="every_batch", switch_every=1, warmup_steps=0, freeze_step=None
    ):
        check_choice("mode", mode, MODES)
        check_int("switch_every", switch_every, minimum=1)
        check_int("warmup_steps", warmup_steps, minimum=0)
        if freeze_step is not None:
            check_int("freeze_step", freeze_step, minimum=warmup_steps + 1)
        if mode == "alternate" and switch_every != 1:
            raise ArgumentError("switch_every", switch_every, message=(
                "`switch_every` only applies to mode='every_batch'. "
                f"Received: mode={mode!r}, switch_every={switch_every}"
            ))
        self.mode = mode
        self.switch_every = switch_every
        self.warmup_steps = warmup_steps
        self.freeze_step = freeze_step

    def __call__(self, step):
        """The `Phase` of training step `step` (a Python int, from 0)."""
        step = int(step)
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

