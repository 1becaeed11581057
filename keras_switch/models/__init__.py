"""Task networks with switched fully connected layers.

Every builder returns a functional `keras_switch.SwitchingModel` of logits
whose convolution trunk is plain Keras and whose fully connected layers are
`SwitchedDense` layers sharing one `Switcher`. `build_model(name, ...)` picks
a builder from `MODELS` by name.
"""

from keras_switch.models.lenet import lenet_5
from keras_switch.models.lenet import lenet_300_100
from keras_switch.models.mobilenet import mobilenet
from keras_switch.models.resnet import resnet18
from keras_switch.models.resnet import resnet34
from keras_switch.models.vgg import vgg16

MODELS = {
    "lenet300": lenet_300_100,
    "lenet5": lenet_5,
    "resnet18": resnet18,
    "resnet34": resnet34,
    "vgg16": vgg16,
    "mobilenet": mobilenet,
}


def build_model(name, input_shape, num_classes, switcher=None, **kwargs):
    """Builds the task network registered in `MODELS` under `name`.

    Args:
        name: A key of `MODELS`.
        input_shape: Shape of one input example.
        num_classes: Number of output logits.
        switcher: The shared `Switcher`; a new default one when `None`.
        **kwargs: Further arguments of that builder (e.g. `head_units`).

    Returns:
        A functional `keras_switch.SwitchingModel`.

    Raises:
        ValueError: If `name` is not a key of `MODELS`.
    """
    if name not in MODELS:
        raise ValueError(
            "Received an invalid value for `model`, expected one of "
            f"{list(MODELS)}. Received: model={name!r}"
        )
    builder = MODELS[name]
    return builder(
        input_shape=input_shape,
        num_classes=num_classes,
        switcher=switcher,
        **kwargs,
    )


__all__ = [
    "MODELS",
    "build_model",
    "lenet_300_100",
    "lenet_5",
    "mobilenet",
    "resnet18",
    "resnet34",
    "vgg16",
]
