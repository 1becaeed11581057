"""The switched fully connected head shared by the task networks."""

import keras

from keras_switch.layers import SwitchedDense


def switched_head(x, num_classes, switcher, head_units=(), dropout=0.0):
    """Appends the switched fully connected head to the tensor `x`.

    One `SwitchedDense` with ReLU per entry of `head_units` (named `fc1`,
    `fc2`, ...), then a `SwitchedDense(num_classes)` output layer of logits
    (the last `fc` name); every layer uses `switcher`.

    Args:
        x: Symbolic 2-D tensor `(batch, features)` that feeds the head.
        num_classes: Number of output logits.
        switcher: The `Switcher` shared by every layer of the head.
        head_units: Widths of the hidden switched layers, in order; `()`
            gives a single switched output layer.
        dropout: Rate of a `Dropout` after each hidden layer (0: none).

    Returns:
        The symbolic logits, shape `(batch, num_classes)`.
    """
    for index, units in enumerate(head_units, start=1):
        x = SwitchedDense(
            units, activation="relu", switcher=switcher, name=f"fc{index}"
        )(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name=f"fc{index}_dropout")(x)
    name = f"fc{len(head_units) + 1}"
    return SwitchedDense(num_classes, switcher=switcher, name=name)(x)
