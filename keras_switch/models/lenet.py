"""LeNet-300-100 and LeNet-5 with switched fully connected layers."""

import keras

from keras_switch.layers import SwitchedDense
from keras_switch.models.head import switched_head
from keras_switch.model import SwitchingModel
from keras_switch.switcher import Switcher


def lenet_300_100(input_shape=(28, 28), num_classes=10, switcher=None):
    """LeNet-300-100 (784-300-100-10, ReLU) as a functional SwitchingModel.

    All three FC layers are switched, the output layer included, and all
    count toward the overall FC sparsity. The model outputs logits.

    Args:
        input_shape: Shape of one input example (flattened inside).
        num_classes: Number of output logits.
        switcher: The shared `Switcher`; a new default one when `None`.
    """
    switcher = Switcher() if switcher is None else switcher
    inputs = keras.Input(input_shape, name="image")
    x = keras.layers.Flatten()(inputs)
    x = SwitchedDense(300, activation="relu", switcher=switcher, name="fc1")(x)
    x = SwitchedDense(100, activation="relu", switcher=switcher, name="fc2")(x)
    outputs = SwitchedDense(num_classes, switcher=switcher, name="fc3")(x)
    return SwitchingModel(inputs, outputs, name="lenet_300_100")


def lenet_5(input_shape=(28, 28), num_classes=10, switcher=None):
    """LeNet-5 as a functional SwitchingModel.

    Plain Keras trunk: Conv2D 6@5x5 (`same`) ReLU, 2x2 max-pool, Conv2D
    16@5x5 (`valid`) ReLU, 2x2 max-pool, flatten (400 features for 28x28).
    Switched head, all three layers sharing one switcher: `fc1` 120 ReLU,
    `fc2` 84 ReLU, `fc3` `num_classes` logits.

    Args:
        input_shape: `(height, width)` (a channel axis is added inside) or
            `(height, width, channels)`.
        num_classes: Number of output logits.
        switcher: The shared `Switcher`; a new default one when `None`.

    Raises:
        ValueError: If `input_shape` is not of rank 2 or 3.
    """
    if len(input_shape) not in (2, 3):
        raise ValueError(
            "Received an invalid value for `input_shape`, expected "
            "(height, width) or (height, width, channels). "
            f"Received: input_shape={input_shape!r}"
        )
    switcher = Switcher() if switcher is None else switcher
    inputs = keras.Input(input_shape, name="image")
    x = inputs
    if len(input_shape) == 2:
        x = keras.layers.Reshape((*input_shape, 1))(x)
    x = keras.layers.Conv2D(6, 5, padding="same", activation="relu")(x)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Conv2D(16, 5, padding="valid", activation="relu")(x)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Flatten()(x)
    outputs = switched_head(x, num_classes, switcher, head_units=(120, 84))
    return SwitchingModel(inputs, outputs, name="lenet_5")
