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
  the target; 1: linear). `allocation="erk"` (default): each layer ramps,
  along that curve, to its Erdős–Rényi-Kernel share of the final budget
  (`erk_keep_counts`), and its `switch_offset` keeps the switcher's
  highest-scoring ones: the switch step learns the ranking *within* each
  layer. `"magnitude"`: each layer keeps as many connections as the
  switcher's magnitude prior ranks above one threshold over all layers
  (global magnitude pruning's split; the default before issue 17, 0.6 pt
  worse at 99.5%). `"learned"`: the switcher's one `threshold` over the
  scores of all its layers, so it also decides the split (measured worse,
  BENCHMARKS.md).

* `AccuracyBudget(max_drop)`: no target; held-out checks during `fit()`
  (`keras_switch.budget`) move the density the thresholds are placed at,
  and the run ends with the sparsest network whose held-out accuracy stayed
  within `max_drop` of its own dense reference (the class doc says how, and
  why each choice).

Why thresholds and not a penalty toward the target: such a penalty taught
the switcher to keep the smallest weights (BENCHMARKS.md, "What the numbers
say (issue 4)").
"""

import math
import numbers

import keras
from keras import ops

from keras_switch.checks import ArgumentError
from keras_switch.checks import FromArguments
from keras_switch.checks import check_choice
from keras_switch.checks import check_int
from keras_switch.checks import check_number
from keras_switch.schedule import AUTO
from keras_switch.schedule import AUTO_FREEZE_FRACTION
from keras_switch.schedule import planned_step

ALLOCATIONS = ("magnitude", "learned", "erk")
# A run whose measured sparsity ends further than this below its target has
# missed it (SwitchingModel.target_shortfall).
TARGET_TOLERANCE = 0.005

# Halvings of the score range when placing a threshold: the 24 bits of a
# float32 mantissa, so past float32 resolution of the scores' range.
_BISECTION_STEPS = 24


class TargetShortfallWarning(UserWarning):
    """`SwitchingModel.fit()` ended with the sparsity short of the target."""


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
        allocation: How the budget is split across layers: `"erk"` (the
            default: Erdős–Rényi-Kernel, a layer keeps in proportion to
            fan-in + fan-out at the target, capped at all of it, see
            `erk_keep_counts`; +0.6 pt over `"magnitude"` at 99.5% on
            LeNet-300-100, within noise at 90-99%, BENCHMARKS.md),
            `"magnitude"` (global magnitude pruning's split, the default
            before issue 17) or `"learned"` (the switcher's one threshold).
    """

    def __init__(self, sparsity, ramp_steps=AUTO, ramp_power=3, allocation="erk"):
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
        keep = keep_count(self.density(step), sum(math.prod(l.kernel.shape) for l in layers))
        if self.allocation == "learned":
            old = ops.copy(switcher.threshold)  # read before the assign
            new = threshold_keeping(_flat(logits) + old, keep)
            switcher.threshold.assign(new)
            return [l + (old - new) for l in logits]
        if self.allocation == "erk":
            return [_keep_in_layer(layer, l, count) for layer, l, count in
                    zip(layers, logits, self._erk_counts(layers, step))]
        return _magnitude_split(layers, logits, keep)

    def _erk_counts(self, layers, step):
        """Each layer ramps to its own ERK sparsity at the target along the
        same curve, so the split holds all the way (ERK of the current
        density instead kept the output layer dense until late in the ramp:
        0.2 pt below global magnitude pruning at 99.5% where this is 0.7
        above, BENCHMARKS.md)."""
        sizes = [math.prod(l.kernel.shape) for l in layers]
        final = erk_keep_counts([l.kernel.shape for l in layers],
                                keep_count(1.0 - self.sparsity, sum(sizes)))
        reached = (1.0 - self.density(step)) / self.sparsity if self.sparsity else 0.0
        return [ops.cast(ops.round(size - (size - ops.cast(kept, "float32")) * reached), "int32")
                for size, kept in zip(sizes, final)]

    def get_config(self):
        return {
            "sparsity": self.sparsity,
            "ramp_steps": self.ramp_steps,
            "ramp_power": self.ramp_power,
            "allocation": self.allocation,
        }


# AccuracyBudget's state, one float32 vector on the model (saved in its
# checkpoints): these are its entries.
BUDGET_STATE = ("density", "reference", "best_density", "step", "accuracy",
                "best_accuracy", "smoothed")
# Weight of a new check in the smoothed held-out accuracy the controller
# decides on (an exponential moving average): single checks swing by about
# 0.4 pt with SGD's noise, as much as a 0.5 pt budget (BENCHMARKS.md).
SMOOTHING = 0.5
# reference_steps="auto": the dense phase that measures the reference is this
# fraction of the steps from the warm-up to the freeze (0.8 of the LeNets' 10
# epochs): pruning that starts later ends less accurate (BENCHMARKS.md).
AUTO_REFERENCE_FRACTION = 0.1
# check_every="auto": about this many held-out checks in the search (one
# every 100 steps on the LeNets), each aligned to end just before a switch step.
AUTO_CHECKS = 30
# The search's first step in log density (a prune of 26% of what is left per
# check; 15 checks reach 99%), and the smallest the bisection halves it to.
INITIAL_LOG_STEP = 0.3
# The share of the budget the search may spend against the best held-out
# accuracy so far: the network is still learning while it is pruned, which
# hides part of what pruning costs (BENCHMARKS.md, "Automatic sparsity").
DEFAULT_SEARCH_MARGIN = 0.25
MIN_LOG_STEP = 0.02


class BudgetExceededWarning(UserWarning):
    """`SwitchingModel.fit()` ended with the held-out accuracy further below
    the dense reference than an `AccuracyBudget` allows."""


@keras.saving.register_keras_serializable(package="keras_switch")
class AccuracyBudget(SparsityControl):
    """The sparsest network whose held-out accuracy stays within `max_drop` of
    its own dense reference, found in one run: the user gives the accuracy
    they can spare, the run finds the sparsity.

    How (the designs tried are in BENCHMARKS.md, "Automatic sparsity",
    "Designs tried", on seed 0 of LeNet-300-100; the protocol ran on seeds
    1-3):

    1. **Reference.** The network trains dense for `reference_steps` after
       the warm-up (all switches on), then its accuracy on the held-out data
       (`fit(validation_data=...)` or `validation_split`, taken from the
       training split) is the reference. Early (10% of the way to the
       freeze), as the fixed-target recipe prunes from its first steps; a
       reference at 50% of the way stopped far earlier (93.3% against
       95.0% at a 0.5 pt budget on seed 0).
    2. **Search.** Every `check_every` steps, just before a switch step, the
       held-out accuracy of the network as it trains (its stored masks) is
       measured and smoothed (`SMOOTHING`: single checks swing by about as
       much as a 0.5 pt budget). While the smoothed accuracy is within
       `search_margin * max_drop` of the best smoothed accuracy so far (the
       dense reference at first), the density is lowered by a step in log
       density (first `INITIAL_LOG_STEP`: 26% of what is left); when it is
       not, the step is halved and the density goes back up by it (a
       bisection on the boundary, like LOBSTER's back-off, arXiv
       2011.09905). The switcher places the thresholds at the controller's
       density each switch step, split over layers as `allocation` says:
       which connections stay is the switcher's choice, how many is the
       held-out data's. Against the best so far rather than the dense
       reference alone, and with a quarter of the budget: the network keeps
       learning while it is pruned, which hides what pruning costs (a dense
       network would have kept improving too); the full budget against the
       best so far (reference at 25%) pruned LeNet-300-100 to 98.8% at
       1.8 pt below its own dense run for a 1 pt budget. On one seed the
       designs' points lie within noise of each other's curves; none
       dominates.
    3. **Fine-tune.** At the freeze step the density goes to the sparsest one
       that was within budget at a check, and the mask stays frozen for the
       rest of the run (the schedule's frozen tail).

    A Lagrangian form (minimise density + λ (loss − budget), λ by dual
    ascent) was not tried: the switcher's own penalty route (SparsityPenalty)
    lowers every logit through one bias and was measured far behind placed
    thresholds (BENCHMARKS.md, issue 4); the controller keeps the placed
    thresholds and moves only their count.

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
        search_margin: The share of `max_drop` the search may lose against
            the best smoothed held-out accuracy so far, in (0, 1] (default
            0.25, see 2. above).
        allocation: How the density is split across layers: `"magnitude"`
            (the default: global magnitude pruning's split, which moves
            smoothly with the density) or `"erk"` (Erdős–Rényi-Kernel of the
            current density).
    """

    def __init__(self, max_drop, reference_steps=AUTO, check_every=AUTO,
                 allocation="magnitude", search_margin=DEFAULT_SEARCH_MARGIN):
        self.max_drop = check_number(
            "max_drop", max_drop, "a fraction in (0, 1), e.g. 0.005 for 0.5 pt",
            lambda d: 0 < d < 1)
        self.search_margin = check_number(
            "search_margin", search_margin, "a number in (0, 1]", lambda m: 0 < m <= 1)
        self.reference_steps = check_int("reference_steps", reference_steps, 1, words=(AUTO,))
        self.check_every = check_int("check_every", check_every, 1, words=(AUTO,))
        self.allocation = check_choice("allocation", allocation, ("magnitude", "erk"))
        self._state = None

    def attach(self, state):
        """Hands the control the model's state variable (`BUDGET_STATE`)."""
        self._state = state

    @staticmethod
    def initial_state():
        return [1.0, -1.0, 1.0, INITIAL_LOG_STEP, -1.0, -1.0, -1.0]

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
        """The density the controller asks for now (a tensor)."""
        if self._state is None:
            raise ValueError(
                "This AccuracyBudget is not attached to a model: compile a "
                "SwitchingModel with it (`compile(sparsity=...)`).")
        return self._state[BUDGET_STATE.index("density")]

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
        """The controller: the new state (a list, see `BUDGET_STATE`) after
        a held-out check with `accuracy` after training step `step`."""
        density, reference, best, log_step, _, best_accuracy, smoothed = state
        if reference < 0:
            if step + 1 - schedule.warmup_steps >= self.reference_steps:
                reference, best, best_accuracy, smoothed = accuracy, 1.0, accuracy, accuracy
                density = math.exp(-log_step)
        else:
            smoothed = SMOOTHING * accuracy + (1 - SMOOTHING) * smoothed
            best_accuracy = max(best_accuracy, smoothed)
            if best_accuracy - smoothed <= self.search_margin * self.max_drop:
                best = min(best, density)
                density = density * math.exp(-log_step)
            else:
                log_step = max(log_step / 2, MIN_LOG_STEP)
                density = min(1.0, density * math.exp(log_step))
        if step + 1 >= schedule.freeze_step:  # the mask freezes next: the sparsest within budget
            density = best
        return [density, reference, best, log_step, accuracy, best_accuracy, smoothed]

    def place_thresholds(self, layers, logits, step):
        keep = keep_count(self.density(), sum(math.prod(l.kernel.shape) for l in layers))
        if self.allocation == "magnitude":
            return _magnitude_split(layers, logits, keep)
        counts = erk_keep_counts([l.kernel.shape for l in layers], keep)
        return [_keep_in_layer(layer, l, count) for layer, l, count in zip(layers, logits, counts)]

    def get_config(self):
        return {
            "max_drop": self.max_drop,
            "reference_steps": self.reference_steps,
            "check_every": self.check_every,
            "allocation": self.allocation,
            "search_margin": self.search_margin,
        }


def _magnitude_split(layers, logits, keep):
    """Global magnitude pruning's split of `keep` connections over `layers`
    (one threshold over the switcher's magnitude priors), each layer keeping
    its share by its own scores; returns the logits after the move."""
    switcher = layers[0].switcher
    if not switcher.magnitude_prior:
        raise ValueError(
            "allocation='magnitude' needs a switcher with a magnitude prior. "
            f"Received: magnitude_prior={switcher.magnitude_prior} "
            f"(switcher '{switcher.name}')"
        )
    priors = [switcher.prior(layer.kernel) for layer in layers]
    cut = threshold_keeping(_flat(priors), keep)
    return [_keep_in_layer(layer, l, ops.sum(ops.cast(prior > cut, "int32")))
            for layer, l, prior in zip(layers, logits, priors)]


def _keep_in_layer(layer, logits, keep):
    """Moves `layer.switch_offset` so that its `keep` highest-scoring
    connections are on; returns the logits after the move."""
    old = ops.copy(layer.switch_offset)  # read before the assign
    new = threshold_keeping(ops.reshape(logits, (-1,)) + old, keep)
    layer.switch_offset.assign(new)
    return logits + (old - new)


def erk_keep_counts(shapes, keep):
    """Connections each kernel keeps under Erdős–Rényi-Kernel allocation
    (Evci et al. 2020, RigL): `eps * sum(shape)` for one `eps` over all
    kernels, a kernel that would get more than all of its entries keeping
    all of them (and `eps` found again for the rest), the counts summing to
    `keep` up to rounding. Against global magnitude pruning it gives a large
    first layer more of a tiny budget: at 99.5% on LeNet-300-100 magnitude
    pruning at ERK's split scored +0.55 pt over its own split (BENCHMARKS.md,
    issue 17).

    Returns int32 tensors, one per shape."""
    sizes = [float(math.prod(shape)) for shape in shapes]
    weights = [float(sum(shape)) for shape in shapes]
    keep = ops.cast(keep, "float32")

    def share(dense):  # eps once the `dense` kernels keep all their entries
        fixed = sum(ops.where(d, size, 0.0) for d, size in zip(dense, sizes))
        free = sum(ops.where(d, 0.0, w) for d, w in zip(dense, weights))
        return (keep - fixed) / ops.maximum(free, 1.0)

    dense = [ops.zeros((), "bool") for _ in shapes]
    for _ in shapes:  # each pass can only add dense kernels
        eps = share(dense)
        dense = [ops.logical_or(d, eps * w >= size)
                 for d, w, size in zip(dense, weights, sizes)]
    eps = share(dense)
    return [ops.cast(ops.round(ops.where(d, size, ops.minimum(eps * w, size))), "int32")
            for d, w, size in zip(dense, weights, sizes)]


def keep_count(density, total):
    """round(density * total), clipped to [1, total], as an int32 tensor."""
    keep = ops.cast(ops.round(density * total), "int32")
    return ops.clip(keep, 1, total)


def threshold_keeping(scores, keep):
    """A threshold with the `keep` highest of the 1-D `scores` above it (more
    only on exact ties; none when `keep` is 0).

    Found by bisection on the count above it (24 halvings of the score range,
    each a comparison and a sum): much cheaper than sorting the 266k scores
    of LeNet-300-100, which dominated the switch step (BENCHMARKS.md,
    "Cost").
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


def _flat(tensors):
    return ops.concatenate([ops.reshape(t, (-1,)) for t in tensors])


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
                    "allocation": ("magnitude", "erk")}


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
