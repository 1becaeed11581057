"""LeNet-300-100 with switched fully connected layers."""

import keras

from keras_switch.layers import SwitchedDense
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
