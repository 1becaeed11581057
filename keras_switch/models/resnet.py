"""CIFAR-style ResNet-18/34 with a fully connected head (switched when
given a switcher)."""

import keras

from keras_switch.models.head import dense_head
from keras_switch.models.head import switched_if

_WIDTHS = (64, 128, 256, 512)


def _conv_bn(x, filters, strides, name, relu=True, kernel_size=3):
    """Conv2D (no bias, `same` padding) -> BatchNorm -> optional ReLU."""
    x = keras.layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding="same",
        use_bias=False,
        name=f"{name}_conv",
    )(x)
    x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
    if relu:
        x = keras.layers.ReLU(name=f"{name}_relu")(x)
    return x


def _basic_block(x, filters, strides, name):
    """Two 3x3 conv-BN layers plus the shortcut, then ReLU. The shortcut is
    a 1x1 conv-BN projection when the shape changes, the identity otherwise."""
    shortcut = x
    if strides != 1 or x.shape[-1] != filters:
        shortcut = _conv_bn(
            x, filters, strides, f"{name}_proj", relu=False, kernel_size=1
        )
    x = _conv_bn(x, filters, strides, f"{name}_1")
    x = _conv_bn(x, filters, 1, f"{name}_2", relu=False)
    x = keras.layers.Add(name=f"{name}_add")([shortcut, x])
    return keras.layers.ReLU(name=f"{name}_out")(x)


def _resnet(blocks, name, input_shape, num_classes, switcher, head_units):
    """Stem, four BasicBlock stages, global average pooling, FC head."""
    inputs = keras.Input(input_shape, name="image")
    x = _conv_bn(inputs, _WIDTHS[0], 1, "stem")
    for stage, (filters, count) in enumerate(zip(_WIDTHS, blocks), start=1):
        for block in range(1, count + 1):
            strides = 2 if stage > 1 and block == 1 else 1
            x = _basic_block(x, filters, strides, f"stage{stage}_block{block}")
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = dense_head(x, num_classes, head_units=head_units)
    return switched_if(keras.Model(inputs, outputs, name=name), switcher)


def resnet18(
    input_shape=(32, 32, 3), num_classes=10, switcher=None, head_units=(512,)
):
    """ResNet-18 for 32x32 images: a plain functional `keras.Model`, or
    with a `switcher` a `SwitchingModel` with its FC head switched.

    Plain Keras trunk: 3x3 stem conv 64 (stride 1, no max-pool), then
    BasicBlock stages of [2, 2, 2, 2] blocks with widths 64, 128, 256, 512;
    stages 2-4 start with stride 2 and a 1x1 projection shortcut; every conv
    is followed by BatchNorm and ReLU. Global average pooling gives 512
    features. Head: one `Dense` ReLU layer per entry of `head_units` (`fc1`, ...), then
    the `Dense(num_classes)` logits.

    Args:
        input_shape: Shape of one image, `(height, width, channels)`.
        num_classes: Number of output logits.
        switcher: `None` for the plain Keras model; a `Switcher` for a
            `SwitchingModel` whose FC layers it switches (`switch_model`).
        head_units: Widths of the hidden FC layers; `()` gives a single
            output layer.
    """
    return _resnet(
        (2, 2, 2, 2), "resnet18", input_shape, num_classes, switcher, head_units
    )


def resnet34(
    input_shape=(32, 32, 3), num_classes=10, switcher=None, head_units=(512,)
):
    """ResNet-34 for 32x32 images: a plain functional `keras.Model`, or
    with a `switcher` a `SwitchingModel` with its FC head switched.

    As `resnet18` with BasicBlock stages of [3, 4, 6, 3] blocks.

    Args:
        input_shape: Shape of one image, `(height, width, channels)`.
        num_classes: Number of output logits.
        switcher: `None` for the plain Keras model; a `Switcher` for a
            `SwitchingModel` whose FC layers it switches (`switch_model`).
        head_units: Widths of the hidden FC layers; `()` gives a single
            output layer.
    """
    return _resnet(
        (3, 4, 6, 3), "resnet34", input_shape, num_classes, switcher, head_units
    )
