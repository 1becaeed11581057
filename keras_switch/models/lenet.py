"""LeNet-300-100 and LeNet-5: plain Keras models, or switched ones (their
FC layers) when given a switcher."""

import keras

from keras_switch.models.head import dense_head
from keras_switch.models.head import switched_if


def lenet_300_100(input_shape=(28, 28), num_classes=10, switcher=None):
    """LeNet-300-100 (784-300-100-10, ReLU): `fc1`, `fc2`, `fc3`, logits.

    A plain functional `keras.Model`; with a `switcher`, a `SwitchingModel`
    with all three FC layers switched, the output layer included (all count
    toward the overall FC sparsity).

    Args:
        input_shape: Shape of one input example (flattened inside).
        num_classes: Number of output logits.
        switcher: `None` for the plain Keras model; a `Switcher` for a
            `SwitchingModel` whose FC layers it switches (`switch_model`).
    """
    inputs = keras.Input(input_shape, name="image")
    x = keras.layers.Flatten()(inputs)
    outputs = dense_head(x, num_classes, head_units=(300, 100))
    return switched_if(keras.Model(inputs, outputs, name="lenet_300_100"), switcher)


def lenet_5(input_shape=(28, 28), num_classes=10, switcher=None):
    """LeNet-5: a plain functional `keras.Model`, or with a `switcher` a
    `SwitchingModel` with its three FC layers switched.

    Plain Keras trunk: Conv2D 6@5x5 (`same`) ReLU, 2x2 max-pool, Conv2D
    16@5x5 (`valid`) ReLU, 2x2 max-pool, flatten (400 features for 28x28).
    Head (switched, sharing one switcher, when a `switcher` is given): `fc1` 120 ReLU,
    `fc2` 84 ReLU, `fc3` `num_classes` logits.

    Args:
        input_shape: `(height, width)` (a channel axis is added inside) or
            `(height, width, channels)`.
        num_classes: Number of output logits.
        switcher: `None` for the plain Keras model; a `Switcher` for a
            `SwitchingModel` whose FC layers it switches (`switch_model`).

    Raises:
        ValueError: If `input_shape` is not of rank 2 or 3.
    """
    if len(input_shape) not in (2, 3):
        raise ValueError(
            "Received an invalid value for `input_shape`, expected "
            "(height, width) or (height, width, channels). "
            f"Received: input_shape={input_shape!r}"
        )
    inputs = keras.Input(input_shape, name="image")
    x = inputs
    if len(input_shape) == 2:
        x = keras.layers.Reshape((*input_shape, 1))(x)
    x = keras.layers.Conv2D(6, 5, padding="same", activation="relu", name="conv1")(x)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Conv2D(16, 5, padding="valid", activation="relu", name="conv2")(x)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Flatten()(x)
    outputs = dense_head(x, num_classes, head_units=(120, 84))
    return switched_if(keras.Model(inputs, outputs, name="lenet_5"), switcher)
