"""Argument checks shared by the library's objects, the error they raise,
and the config protocol of its plain-Python objects.

Each library object (`Switcher`, `SwitchSchedule`, the sparsity controls,
`SwitchingModel.compile`) checks its own arguments, once, in its
constructor. The error is an `ArgumentError`: a `ValueError` that also
carries the argument's name and value, so that a caller who spells the
argument differently (`compile(target_ramp_steps=...)` for
`TargetSparsity(ramp_steps=...)`, the trainer's `config.schedule.ramp_epochs`)
can say it in its own words without checking the value again.
"""

import numbers
import re


class ArgumentError(ValueError):
    """An argument value that cannot work.

    Attributes:
        argument: The name of the argument, as the raising object spells it.
        value: The value received.
    """

    def __init__(self, argument, value, expected=None, message=None):
        if message is None:
            message = (
                f"Received an invalid value for `{argument}`, expected "
                f"{expected}. Received: {argument}={value!r}"
            )
        super().__init__(message)
        self.argument = argument
        self.value = value

    def renamed(self, names):
        """The same error in a caller's argument names (`{ours: theirs}`)."""
        message = str(self)
        for ours, theirs in names.items():
            # Whole names only: `ramp_steps` inside `target_ramp_steps` stays.
            message = re.sub(rf"(?<![\w.]){re.escape(ours)}(?=[`=])", theirs, message)
        return ArgumentError(
            names.get(self.argument, self.argument), self.value, message=message
        )


def check_int(name, value, minimum, words=()):
    """`value` as an int >= `minimum` (bools are not ints here), or `value`
    unchanged if it is one of `words` (strings, or None)."""
    if (value is None or isinstance(value, str)) and value in words:
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        shown = "".join(f" or {word!r}" for word in words)
        raise ArgumentError(name, value, f"an integer >= {minimum}{shown}")
    return int(value)


def check_number(name, value, expected, accept):
    """`value` as a float for which `accept(value)` holds; `expected` says
    what is accepted, in words."""
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not accept(float(value))
    ):
        raise ArgumentError(name, value, expected)
    return float(value)


def check_choice(name, value, choices):
    if not isinstance(value, str) or value not in choices:
        raise ArgumentError(name, value, f"one of {tuple(choices)}")
    return value


def check_bool(name, value):
    if not isinstance(value, bool):
        raise ArgumentError(name, value, "a bool")
    return value


class FromArguments:
    """A plain-Python library object (not a Keras layer) whose config is its
    constructor's arguments: `get_config()` returns them, `from_config`
    passes them back, `repr` shows them."""

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"
