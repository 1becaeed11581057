"""From the config to the library's objects: the switched model, its
`SwitchSchedule`, its sparsity control and the compiled optimizers.

The values that become arguments of library objects are checked by those
objects, once (docs/design.md): nothing here checks them again. A library
object's `keras_switch.checks.ArgumentError` carries the argument's name;
`config_errors` turns it into a `ConfigError` that names the config key and
its value, in front of the library's own explanation. Everything here runs
before the workdir is claimed, so such an error leaves nothing written.
"""

import contextlib

import keras

import keras_switch
from keras_switch import data as switch_data
from keras_switch import models as switch_models
from keras_switch.checks import ArgumentError
from keras_switch.checks import check_choice
from keras_switch.sparsity import from_shorthand
from trainers import preflight
from trainers import warm_start
from trainers.preflight import ConfigError

# The config key behind each library argument, by the object it goes to.
SCHEDULE_KEYS = {
    "mode": "schedule.mode",
    "switch_every": "schedule.switch_every",
    "warmup_steps": "schedule.warmup_epochs",
    "freeze_step": "schedule.freeze_epochs",
}
SPARSITY_KEYS = {  # compile()'s shorthand names, and TargetSparsity's own
    "target_sparsity": "target_sparsity",
    "sparsity_penalty": "sparsity_penalty",
    "target_ramp_steps": "schedule.ramp_epochs",
    "ramp_steps": "schedule.ramp_epochs",
    "target_ramp_power": "schedule.ramp_power",
    "allocation": "allocation",
}
BUDGET_KEYS = {
    "max_drop": "accuracy_budget",
    "freeze_step": "schedule.freeze_epochs",
    "reference_steps": "schedule.freeze_epochs",
    "allocation": "allocation",
}
COMPILE_KEYS = {
    "train_pruned_weights": "train_pruned_weights",
    "switch_estimator": "switch_estimator",
}


@contextlib.contextmanager
def config_errors(config, keys, hint=None):
    """Re-raises a library `ArgumentError` inside the block as a ConfigError
    naming the config key (`keys`: {argument: dotted key}, or a function of
    the argument) and the value the config holds, plus `hint` if given."""
    try:
        yield
    except ArgumentError as error:
        key = keys(error.argument) if callable(keys) else keys.get(error.argument)
        if key is None:
            raise ConfigError(str(error)) from None
        value = config
        for part in key.split("."):
            value = value.get(part) if hasattr(value, "get") else None
        raise ConfigError(
            f"config.{key}={value!r}: {error}" + (f" ({hint})" if hint else "")
        ) from None


def schedule_and_sparsity(config, steps_per_epoch):
    """The config's `SwitchSchedule` and sparsity control, with its epochs
    turned into steps; checked against each other (a target ramp must end
    before the mask freezes)."""
    schedule = config.schedule
    freeze_step = None
    if schedule.freeze_epochs:
        freeze_step = (config.num_epochs - schedule.freeze_epochs) * steps_per_epoch
    with config_errors(config, SCHEDULE_KEYS):
        switch_schedule = keras_switch.SwitchSchedule(
            mode=schedule.mode,
            switch_every=schedule.switch_every,
            warmup_steps=schedule.warmup_epochs * steps_per_epoch,
            freeze_step=freeze_step,
        )
    if config.get("accuracy_budget") is not None:
        return switch_schedule, _accuracy_budget(config, switch_schedule)
    ramp = {}
    if config.target_sparsity is not None:  # the ramp keys only shape a target
        ramp = dict(target_ramp_steps=schedule.ramp_epochs * steps_per_epoch,
                    target_ramp_power=schedule.ramp_power, allocation=config.allocation)
    with config_errors(config, SPARSITY_KEYS):
        sparsity = from_shorthand(target_sparsity=config.target_sparsity,
                                  sparsity_penalty=config.sparsity_penalty, **ramp)
    last = config.num_epochs - schedule.freeze_epochs
    with config_errors(config, SPARSITY_KEYS, hint=(
        f"in epochs: warmup_epochs={schedule.warmup_epochs} + ramp_epochs="
        f"{schedule.ramp_epochs} must be <= num_epochs - freeze_epochs = {last}"
    )):
        sparsity.check_schedule(switch_schedule)
    return switch_schedule, sparsity


def _accuracy_budget(config, schedule):
    """The config's AccuracyBudget (config.accuracy_budget), alone: a target
    or a penalty with it is a ConfigError."""
    for key in ("target_sparsity", "sparsity_penalty"):
        if config.get(key) is not None:
            raise ConfigError(
                f"config.accuracy_budget={config.accuracy_budget!r} and config.{key}="
                f"{config.get(key)!r}: give one sparsity control. The budget decides "
                "the sparsity itself: --config.target_sparsity=None "
                f"--config.accuracy_budget={config.accuracy_budget!r}")
    with config_errors(config, BUDGET_KEYS, hint=(
        "the budget's dense reference and its search must fit between "
        "schedule.warmup_epochs and num_epochs - schedule.freeze_epochs"
    )):
        budget = keras_switch.AccuracyBudget(config.accuracy_budget,
                                              allocation=config.allocation)
        budget.plan(schedule)
        budget.check_schedule(schedule)
    return budget


def build_model(config, input_shape):
    """The config's model on inputs of `input_shape`, the layers
    `config.switched_layers` names switched by one switcher built from
    `config.switcher`. `config.model` is a zoo architecture's name, or a
    `.keras` file: the user's own model, loaded (safe mode) and switched.
    Call it inside the strategy's scope.

    Raises:
        ConfigError: for bad switcher settings or `switched_layers`, and for
            a model file that does not load, does not fit the dataset
            (input shape, number of classes) or has nothing to switch.
    """
    num_classes = switch_data.DATASETS[config.dataset]["num_classes"]
    with config_errors(config, lambda argument: f"switcher.{argument}"):
        switcher = keras_switch.Switcher(**dict(config.switcher))
    if preflight.is_model_file(config.model):
        return _switch_model_file(config, tuple(input_shape), num_classes, switcher)
    with config_errors(config, {"switched_layers": "switched_layers"}):
        return switch_models.build_model(
            config.model, tuple(input_shape), num_classes, switcher=switcher,
            switched_layers=config.switched_layers,
        )


def _switch_model_file(config, input_shape, num_classes, switcher):
    """The user's saved model `config.model`, switched (see `build_model`)."""
    path = config.model
    with config_errors(config, {"switched_layers": "switched_layers"}):
        check_choice("switched_layers", config.switched_layers,
                     tuple(switch_models.SWITCHED_LAYERS))
    plain = warm_start.load_keras_file(path, "config.model")
    want_input = (None,) + input_shape
    have_input = tuple(getattr(plain, "input_shape", ()) or ())
    if len(have_input) != len(want_input) or any(
            have not in (None, want) for have, want in zip(have_input[1:], want_input[1:])):
        raise ConfigError(
            f"config.model={path} takes inputs of shape {have_input}; "
            f"config.dataset={config.dataset!r} gives {want_input}.")
    have_output = tuple(plain.output_shape) if plain.built else ()
    if have_output[-1:] != (num_classes,):
        raise ConfigError(
            f"config.model={path} outputs shape {have_output}; "
            f"config.dataset={config.dataset!r} has {num_classes} classes, so the "
            f"trainer expects (None, {num_classes}) logits.")
    try:
        return keras_switch.switch_model(
            plain, layers=switch_models.SWITCHED_LAYERS[config.switched_layers],
            switcher=switcher)
    except (TypeError, ValueError) as error:
        raise ConfigError(
            f"config.model={path} cannot be switched with "
            f"config.switched_layers={config.switched_layers!r}: {error}") from None


def compile_model(model, config, steps_per_epoch, sparsity=None):
    """Compiles `model` with the config's optimizers, schedule and sparsity
    control (inside the strategy's scope); `sparsity(schedule)`, if given,
    returns the control to use instead (a benchmark's design variant)."""
    schedule, control = schedule_and_sparsity(config, steps_per_epoch)
    sparsity = control if sparsity is None else sparsity(schedule)
    with config_errors(config, COMPILE_KEYS):
        model.compile(
            optimizer=_optimizer(config.task_optimizer),
            switch_optimizer=_optimizer(config.switch_optimizer),
            loss=keras.losses.SparseCategoricalCrossentropy(
                from_logits=not outputs_probabilities(model)),
            metrics=["accuracy"],
            sparsity=sparsity,
            train_pruned_weights=config.train_pruned_weights,
            switch_estimator=config.switch_estimator,
            schedule=schedule,
        )


def outputs_probabilities(model):
    """Whether `model` (one output) ends in a softmax: a user's saved model
    may; the zoo's give logits."""
    last = model.layers[-1]
    return (isinstance(last, keras.layers.Softmax)
            or getattr(last, "activation", None) is keras.activations.softmax)


def _optimizer(settings):
    return keras.optimizers.get(
        {"class_name": settings.name, "config": {"learning_rate": settings.learning_rate}}
    )
