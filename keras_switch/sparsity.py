"""Sparsity controls: how dense the switched layers are at step t, and where
the switch thresholds go.

`SwitchingModel.compile(sparsity=...)` takes one of these; the old keyword
arguments are shorthand for them (`target_sparsity=s, target_ramp_steps=n`
is `TargetSparsity(s, ramp_steps=n)`, `sparsity_penalty=lam` is
`SparsityPenalty(lam)`, neither is `SparsityControl()`). The model asks its
control two things during a switch step, and nothing else:

* `penalty(density)`: the term added to the switch step's objective, given
  the fraction of switched-on connections (hard 0/1 values, straight-through
  gradient);
* `place_thresholds(layers, logits, step)`: after the switch step, moves the
  thresholds of one switcher's layers and returns their logits as they are
  after the move (`> 0` is on). `step` counts the steps since switching
  began (the end of the warm-up).

The controls:

* `SparsityControl()`: the paper's pure task objective; nothing pushes
  toward sparsity (in practice nothing is switched off, BENCHMARKS.md).
* `SparsityPenalty(weight)`: L1 on the switches, `task loss + weight *
  density`. How sparse the result gets depends on `weight`, the data and
  the budget. The penalty lowers every logit through the switcher's output
  bias, which has to cross the magnitude prior's range before connections
  go off.
* `TargetSparsity(sparsity, ramp_steps, ramp_power, allocation)`: a budget
  of k = density(step) * entries connections over all layers of a
  switcher, met exactly (up to ties) after every switch step by thresholds
  found by bisection. The density moves from 1 to `1 - sparsity` over
  `ramp_steps` along `1 - sparsity * (1 - (1 - t)^p)`, t the ramp's
  progress in [0, 1], p = `ramp_power` (3: the gradual-pruning ramp of Zhu &
  Gupta 2017 that TFMOT's PolynomialDecay uses, fast at first and slow near
  the target; 1: linear). `allocation="erk"`: each layer ramps,
  along that curve, to its Erdős–Rényi-Kernel share of the final budget
  (`erk_keep_counts`), and its `switch_offset` keeps the switcher's
  highest-scoring ones: the switch step learns the ranking *within* each
  layer. `"magnitude"`: each layer keeps as many connections as the
  switcher's magnitude prior ranks above one threshold over all layers
  (global magnitude pruning's split). `"learned"`: the switcher's one
  `threshold` over the scores of all its layers, so it also decides the
  split. `"auto"` (default): `"erk"` when every switched kernel is a
  matrix (Dense), `"magnitude"` when one is a convolution's, the split
  measured best for each (BENCHMARKS.md compares them).

* `AccuracyBudget(max_drop)` (`keras_switch.budget`, with its state and
  held-out checks): no target; held-out checks during `fit()` move the
  density the thresholds are placed at, and the run ends with the sparsest
  network whose held-out accuracy stayed within `max_drop` of its own dense
  reference.

`get()` turns what `compile()` received (a control, a config dict, or the
shorthand keywords) into a control checked against the schedule, as
`keras.optimizers.get` does for optimizers. Where the thresholds go is
computed in `keras_switch.thresholds`.

Why thresholds and not a penalty toward the target: such a penalty taught
the switcher to keep the smallest weights (BENCHMARKS.md, the recipe's
ablations).
"""

import numbers

import keras
from keras import ops

from keras_switch import thresholds
from keras_switch.checks import ArgumentError
from keras_switch.checks import FromArguments
from keras_switch.checks import check_choice
from keras_switch.checks import check_int
from keras_switch.checks import check_number
from keras_switch.schedule import AUTO
from keras_switch.schedule import AUTO_FREEZE_FRACTION
from keras_switch.schedule import planned_step
from keras_switch.thresholds import erk_keep_counts  # noqa: F401 (importable from here too)

# How a control splits the density across layers; all but "learned" are
# computed from the weights, and only those suit an AccuracyBudget (a learned
# split cannot be searched over).
ALLOCATIONS = ("auto", "magnitude", "learned", "erk")
COMPUTED_ALLOCATIONS = ("auto", "magnitude", "erk")
# A run whose measured sparsity ends further than this below its target has
# missed it (SwitchingModel.target_shortfall).
TARGET_TOLERANCE = 0.005


class TargetShortfallWarning(UserWarning):
    """`SwitchingModel.fit()` ended with the sparsity short of the target."""


class LayerSwitchedOffWarning(UserWarning):
    """`SwitchingModel.fit()` ended with every connection of a switched layer
    off, so nothing flows through it (its bias alone reaches the output)."""


class BudgetExceededWarning(UserWarning):
    """`SwitchingModel.fit()` ended with the held-out accuracy further below
    the dense reference than an `AccuracyBudget` allows."""


def __getattr__(name):
    # `AccuracyBudget` was defined here before it moved to keras_switch.budget
    # (which imports this module); `keras_switch.sparsity.AccuracyBudget`
    # keeps working.
    if name == "AccuracyBudget":
        from keras_switch.budget import AccuracyBudget

        return AccuracyBudget
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@keras.saving.register_keras_serializable(package="keras_switch")
class SparsityControl(FromArguments):
    """The pure task objective: no sparsity control (the base class).

    Subclasses override `penalty`, `place_thresholds` and `target`.
    """

    #: The overall sparsity this control promises, or None.
    target = None

    def penalty(self, density):
        """The term added to the switch step's objective (0 here)."""
        return ops.zeros((), density.dtype)

    def place_thresholds(self, layers, logits, step):
        """Moves the thresholds of one switcher's `layers`; returns their
        logits after the move (unchanged here)."""
        return logits

    def check_schedule(self, schedule):
        """Raises ArgumentError if `schedule` cannot deliver this control."""

    #: False while a step count of this control waits for `plan`.
    planned = True

    def plan(self, schedule, total_steps=None):
        """Fills in step counts given as "auto" (none here)."""

    def shortfall(self, reached, step, schedule):
        """None, or a sentence saying that `reached` (the model's sparsity,
        as `sparsity_report` counts it, after `step` training steps under
        `schedule`) is more than `TARGET_TOLERANCE` below this control's
        `target`, and why. None here: no target."""
        return None


@keras.saving.register_keras_serializable(package="keras_switch")
class SparsityPenalty(SparsityControl):
    """L1 on the switches: the switch objective is `task loss + weight *
    density`.

    Args:
        weight: The penalty's weight, a number >= 0.
    """

    def __init__(self, weight):
        self.weight = check_number("weight", weight, "a number >= 0", lambda w: w >= 0)

    def penalty(self, density):
        return self.weight * density

    def get_config(self):
        return {"weight": self.weight}


@keras.saving.register_keras_serializable(package="keras_switch")
class TargetSparsity(SparsityControl):
    """A target overall sparsity, ramped in and met exactly after each switch
    step (see the module doc).

    Args:
        sparsity: The overall sparsity of the switched layers to reach, a
            float in [0, 1).
        ramp_steps: Steps over which the target density moves from 1 to
            `1 - sparsity`, counted from the start of switching (0: the full
            target at once). `"auto"` (the default, the measured recipe): the
            ramp ends where the schedule freezes the mask, or 80% of the way
            through the run if it never does; `SwitchingModel.fit()` fills
            it in (`plan`).
        ramp_power: Shape of the ramp, a number >= 1 (3: cubic, fast then
            slow; 1: linear).
        allocation: How the budget is split across layers: `"auto"` (the
            default: `"erk"` for Dense kernels only, `"magnitude"` once a
            convolution is switched; `thresholds.resolve_allocation`),
            `"erk"` (Erdős–Rényi-Kernel, a layer keeps in proportion to
            fan-in + fan-out at the target, capped at all of it, see
            `erk_keep_counts`), `"magnitude"` (global magnitude pruning's
            split) or `"learned"` (the switcher's one threshold); measured
            in BENCHMARKS.md.
    """

    def __init__(self, sparsity, ramp_steps=AUTO, ramp_power=3, allocation="auto"):
        self.sparsity = check_number(
            "sparsity", sparsity, "a float in [0, 1)", lambda s: 0 <= s < 1
        )
        self.ramp_steps = check_int("ramp_steps", ramp_steps, 0, words=(AUTO,))
        self.ramp_power = check_number(
            "ramp_power", ramp_power, "a number >= 1", lambda p: p >= 1
        )
        self.allocation = check_choice("allocation", allocation, ALLOCATIONS)

    @property
    def target(self):
        return self.sparsity

    @property
    def planned(self):
        """False while `ramp_steps` is still `"auto"`."""
        return self.ramp_steps != AUTO

    def plan(self, schedule, total_steps=None):
        """Fills in `ramp_steps="auto"`: the ramp ends where `schedule` (with
        its own freeze step planned) freezes the mask, else 80% of the way
        from the warm-up to `total_steps`; left as it is while neither is
        known."""
        if self.planned:
            return
        if schedule.freeze_step not in (None, AUTO):
            self.ramp_steps = schedule.freeze_step - schedule.warmup_steps
        elif total_steps is not None:
            self.ramp_steps = planned_step(
                AUTO_FREEZE_FRACTION, total_steps, schedule.warmup_steps
            ) - schedule.warmup_steps

    def density(self, step):
        """The density asked for `step` steps after switching began (a
        number or a tensor; the ramp is done after `ramp_steps` steps).
        Plain Python for a number: the trainer checks schedules before
        TensorFlow may run anything."""
        if not self.planned:
            raise ValueError(
                "TargetSparsity(ramp_steps='auto') ends its ramp where the mask "
                "freezes, which `fit()` plans from the run's length. Outside "
                "fit(), call `model.plan(total_steps)` first or give `ramp_steps`."
            )
        progress = 1.0
        if self.ramp_steps and isinstance(step, numbers.Number):
            progress = min(max((step + 1) / self.ramp_steps, 0.0), 1.0)
        elif self.ramp_steps:
            progress = ops.clip(ops.cast(step + 1, "float32") / self.ramp_steps, 0.0, 1.0)
        reached = 1.0 - (1.0 - progress) ** self.ramp_power
        return 1.0 - reached * self.sparsity

    def check_schedule(self, schedule):
        """The ramp must end before the mask freezes: a mask frozen mid-ramp
        keeps the sparsity of that moment for good."""
        freeze, warmup = schedule.freeze_step, schedule.warmup_steps
        if not self.planned or freeze == AUTO:
            return  # "auto" ends the ramp at the freeze; plan() checks again
        if freeze is None or warmup + self.ramp_steps <= freeze:
            return
        reached = 1.0 - self.density(freeze - warmup)
        raise ArgumentError(
            "ramp_steps", self.ramp_steps,
            message=(
                f"The target ramp ends at step {warmup + self.ramp_steps} "
                f"(warmup_steps={warmup} + ramp_steps={self.ramp_steps}), after "
                f"the mask freezes at freeze_step={freeze}: the frozen mask "
                f"would have sparsity {reached:.3f} instead of {self.sparsity}. "
                f"Use `ramp_steps` <= {freeze - warmup} or a later `freeze_step`."
            ),
        )

    def place_thresholds(self, layers, logits, step):
        switcher = layers[0].switcher
        keep = thresholds.keep_count(self.density(step), thresholds.kernel_entries(layers))
        allocation = thresholds.resolve_allocation(self.allocation, layers)
        if allocation == "learned":
            old = ops.copy(switcher.threshold)  # read before the assign
            new = thresholds.threshold_keeping(thresholds.flat(logits) + old, keep)
            switcher.threshold.assign(new)
            return [l + (old - new) for l in logits]
        if allocation == "erk":
            return [thresholds.keep_in_layer(layer, l, count) for layer, l, count in
                    zip(layers, logits, self._erk_counts(layers, step))]
        return thresholds.magnitude_split(layers, logits, keep)

    def _erk_counts(self, layers, step):
        """Each layer ramps to its own ERK sparsity at the target along the
        same curve, so the split holds all the way (ERK of the current
        density would keep the output layer dense until late in the ramp)."""
        sizes = [thresholds.kernel_entries([l]) for l in layers]
        final = thresholds.erk_keep_counts([l.kernel.shape for l in layers],
                                           thresholds.keep_count(1.0 - self.sparsity, sum(sizes)))
        reached = (1.0 - self.density(step)) / self.sparsity if self.sparsity else 0.0
        return [ops.cast(ops.round(size - (size - ops.cast(kept, "float32")) * reached), "int32")
                for size, kept in zip(sizes, final)]

    def shortfall(self, reached, step, schedule):
        if reached >= self.sparsity - TARGET_TOLERANCE:
            return None
        missed = f"sparsity {reached:.4f} is {self.sparsity - reached:.4f} below the target {self.sparsity}"
        if not (self.planned and schedule.planned):
            return (f"{missed}: the model has not been trained (its schedule is "
                    "not planned yet, see `plan`).")
        ramp_end = schedule.warmup_steps + self.ramp_steps
        why = (
            f"training stopped at step {step}, before the target ramp ends at step "
            f"{ramp_end}; train longer or shorten the ramp"
            if step < ramp_end else
            "the masks were last placed before the ramp ended (they are placed "
            "at switch steps); check the schedule"
        )
        return f"{missed} (tolerance {TARGET_TOLERANCE}): {why}."

    def get_config(self):
        return {
            "sparsity": self.sparsity,
            "ramp_steps": self.ramp_steps,
            "ramp_power": self.ramp_power,
            "allocation": self.allocation,
        }


# The compile() keywords that are shorthand for a control, by the name the
# control gives the argument.
SHORTHAND = {
    "sparsity": "target_sparsity",
    "weight": "sparsity_penalty",
    "ramp_steps": "target_ramp_steps",
    "ramp_power": "target_ramp_power",
    "allocation": "allocation",
}
_TARGET_DEFAULTS = {"target_ramp_steps": (0, AUTO), "target_ramp_power": (3,),
                    "allocation": COMPUTED_ALLOCATIONS}


def from_shorthand(target_sparsity=None, sparsity_penalty=None, target_ramp_steps=None,
                   target_ramp_power=None, allocation=None):
    """The control that `compile()`'s shorthand keywords describe. Errors
    name the keywords. Ramp and allocation keywords at their defaults are
    accepted without a target (compile configs saved before `sparsity=`
    existed hold them); other values need `target_sparsity`."""
    given = {"target_ramp_steps": target_ramp_steps, "target_ramp_power": target_ramp_power,
             "allocation": allocation}
    given = {key: value for key, value in given.items() if value is not None}
    if target_sparsity is not None and sparsity_penalty is not None:
        raise ArgumentError("target_sparsity", target_sparsity, message=(
            "Pass either `target_sparsity` or `sparsity_penalty`, not both. "
            f"Received: target_sparsity={target_sparsity!r}, "
            f"sparsity_penalty={sparsity_penalty!r}"))
    try:
        if target_sparsity is not None:
            ramp = {ours: given[theirs] for ours, theirs in SHORTHAND.items() if theirs in given}
            return TargetSparsity(target_sparsity, **ramp)
        for key, value in given.items():
            if value not in _TARGET_DEFAULTS[key] or isinstance(value, bool):
                raise ArgumentError(key, value, message=(
                    f"`{key}` only applies with `target_sparsity`. "
                    f"Received: {key}={value!r}, target_sparsity=None"))
        if sparsity_penalty is not None:
            return SparsityPenalty(sparsity_penalty)
    except ArgumentError as error:
        raise error.renamed(SHORTHAND) from None
    return SparsityControl()


def get(identifier=None, schedule=None, **shorthand):
    """The sparsity control `compile()` asks for, checked against `schedule`.

    Args:
        identifier: A `SparsityControl` (copied: `fit()` plans its "auto"
            steps for one model's run only), its config dict
            (`keras.saving.serialize_keras_object`), or None: the control
            the `shorthand` keywords describe (`from_shorthand`).
        schedule: The `SwitchSchedule` the control runs under; its "auto"
            steps that a given freeze step decides are filled in, then the
            control's (`plan`), and the two are checked against each other.
        **shorthand: `compile()`'s keywords `target_sparsity`,
            `sparsity_penalty`, `target_ramp_steps`, `target_ramp_power`,
            `allocation` (None: not given).

    Returns:
        The control.

    Raises:
        ValueError: for `identifier` and shorthand given together, or a
            control the schedule cannot deliver (named as the caller spelled
            it: the shorthand keyword when one was given).
        TypeError: for an identifier that is not a control.
    """
    given = sorted(key for key, value in shorthand.items() if value is not None)
    if isinstance(identifier, dict):
        identifier = keras.saving.deserialize_keras_object(identifier)
    if identifier is None:
        control = from_shorthand(**shorthand)
    elif given:
        raise ValueError(
            f"Pass `sparsity` or its shorthand {given}, not both. "
            f"Received: sparsity={identifier!r}, "
            + ", ".join(f"{key}={shorthand[key]!r}" for key in given)
        )
    elif not isinstance(identifier, SparsityControl):
        raise TypeError(
            "Received an invalid value for `sparsity`, expected a "
            "keras_switch.sparsity control (TargetSparsity, SparsityPenalty, "
            f"AccuracyBudget, SparsityControl) or None. Received: sparsity={identifier!r}"
        )
    else:
        control = type(identifier).from_config(identifier.get_config())
    if schedule is not None:
        try:
            schedule.plan()  # "auto" steps that a given freeze step decides
            control.plan(schedule)
            control.check_schedule(schedule)
        except ArgumentError as error:
            raise (error.renamed(SHORTHAND) if given else error) from None
    return control
