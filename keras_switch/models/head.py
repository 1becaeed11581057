"""The fully connected head shared by the task networks, and the one way a
zoo builder turns its plain model into a switched one."""

import keras

from keras_switch.convert import switch_model


def dense_head(x, num_classes, head_units=(), dropout=0.0):
    """Appends the fully connected head to the tensor `x`.

    One `Dense` with ReLU per entry of `head_units` (named `fc1`, `fc2`,
    ...), then a `Dense(num_classes)` output layer of logits (the last `fc`
    name): the layers `switch_model` switches by default.

    Args:
        x: Symbolic 2-D tensor `(batch, features)` that feeds the head.
        num_classes: Number of output logits.
        head_units: Widths of the hidden layers, in order; `()` gives a
            single output layer.
        dropout: Rate of a `Dropout` after each hidden layer (0: none).

    Returns:
        The symbolic logits, shape `(batch, num_classes)`.
    """
    for index, units in enumerate(head_units, start=1):
        x = keras.layers.Dense(units, activation="relu", name=f"fc{index}")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name=f"fc{index}_dropout")(x)
    name = f"fc{len(head_units) + 1}"
    return keras.layers.Dense(num_classes, name=name)(x)


def switched_if(model, switcher):
    """`model` itself with `switcher=None`, else `switch_model(model,
    switcher=switcher)`: its Dense layers (the FC head) switched."""
    return model if switcher is None else switch_model(model, switcher=switcher)
