"""Task networks: LeNet-300-100, LeNet-5, ResNet18/34, VGG16, MobileNet, a
small ViT.

Every builder returns a plain functional `keras.Model` of logits whose fully
connected layers are named `fc1`, `fc2`, ...; given a `switcher=`, it returns
the `keras_switch.SwitchingModel` that `switch_model` makes of it, with those
FC layers switched. `build_model(name, ..., switched_layers=...)` picks a
builder from `MODELS` by name and switches the FC layers (`"fc"`) or every
layer with a switched counterpart (`"all"`: Dense, convolutions, MobileNet's
depthwise convolutions included).
"""

from keras_switch.checks import check_choice
from keras_switch.convert import COUNTERPARTS
from keras_switch.convert import switch_model

from keras_switch.models.lenet import lenet_5
from keras_switch.models.lenet import lenet_300_100
from keras_switch.models.mobilenet import mobilenet
from keras_switch.models.resnet import resnet18
from keras_switch.models.resnet import resnet34
from keras_switch.models.vgg import vgg16
from keras_switch.models.vit import vit

MODELS = {
    "lenet300": lenet_300_100,
    "lenet5": lenet_5,
    "resnet18": resnet18,
    "resnet34": resnet34,
    "vgg16": vgg16,
    "mobilenet": mobilenet,
    "vit": vit,
}


def _every_dense_and_conv(layer):
    """Every layer `switch_model` has a switched counterpart for."""
    return type(layer) in COUNTERPARTS


# Which layers `build_model` switches: `switch_model`'s `layers` argument.
SWITCHED_LAYERS = {"fc": None, "all": _every_dense_and_conv}


def build_model(name, input_shape, num_classes, switcher=None, switched_layers="fc",
                **kwargs):
    """Builds the task network registered in `MODELS` under `name`, switched.

    Args:
        name: A key of `MODELS`.
        input_shape: Shape of one input example.
        num_classes: Number of output logits.
        switcher: The shared `Switcher`; a new default one when `None`.
        switched_layers: `"fc"` (the fully connected layers, the paper's
            choice) or `"all"` (every layer with a switched counterpart,
            `keras_switch.convert.COUNTERPARTS`: Dense, Conv2D,
            DepthwiseConv2D, ...).
        **kwargs: Further arguments of that builder (e.g. `head_units`).

    Returns:
        A functional `keras_switch.SwitchingModel`.

    Raises:
        ValueError: If `name` is not a key of `MODELS`, or `switched_layers`
            is not one of `SWITCHED_LAYERS`.
    """
    check_choice("switched_layers", switched_layers, tuple(SWITCHED_LAYERS))
    if name not in MODELS:
        raise ValueError(
            "Received an invalid value for `model`, expected one of "
            f"{list(MODELS)}. Received: model={name!r}"
        )
    plain = MODELS[name](input_shape=input_shape, num_classes=num_classes, **kwargs)
    return switch_model(plain, layers=SWITCHED_LAYERS[switched_layers], switcher=switcher)


__all__ = [
    "MODELS",
    "SWITCHED_LAYERS",
    "build_model",
    "lenet_300_100",
    "lenet_5",
    "mobilenet",
    "resnet18",
    "resnet34",
    "vgg16",
]
