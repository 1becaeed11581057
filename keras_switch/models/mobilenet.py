"""MobileNet v1 for 32x32 images with a fully connected head (switched when
given a switcher)."""

import keras

from keras_switch.models.head import dense_head
from keras_switch.models.head import switched_if

# (pointwise filters, depthwise stride) of the 13 depthwise-separable blocks:
# the ImageNet plan with the first conv at stride 1, so 32x32 ends at 2x2.
_BLOCKS = (
    (64, 1),
    (128, 2), (128, 1),
    (256, 2), (256, 1),
    (512, 2), (512, 1), (512, 1), (512, 1), (512, 1), (512, 1),
    (1024, 2), (1024, 1),
)  # fmt: skip


def _separable_block(x, filters, strides):
    """3x3 depthwise conv -> BN -> ReLU -> 1x1 pointwise conv -> BN -> ReLU."""
    x = keras.layers.DepthwiseConv2D(
        3, strides=strides, padding="same", use_bias=False
    )(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Conv2D(filters, 1, use_bias=False)(x)
    x = keras.layers.BatchNormalization()(x)
    return keras.layers.ReLU()(x)


def mobilenet(
    input_shape=(32, 32, 3),
    num_classes=10,
    switcher=None,
    head_units=(),
    width_multiplier=1.0,
):
    """MobileNet v1 for 32x32 images: a plain functional `keras.Model`, or
    with a `switcher` a `SwitchingModel` with its FC head switched.

    Plain Keras trunk: 3x3 conv 32 at stride 1, then 13 depthwise-separable
    blocks with pointwise widths 64, 128, 128, 256, 256, 512 x6, 1024, 1024
    (stride 2 at the first 128, 256, 512 and 1024 blocks, so 32x32 ends at
    2x2); every conv is followed by BatchNorm and ReLU. Global average
    pooling. Head: one `Dense` ReLU layer per entry of `head_units` (`fc1`, ...), then
    the `Dense(num_classes)` logits; the default `()` is a single
    switched output layer.

    Args:
        input_shape: Shape of one image, `(height, width, channels)`.
        num_classes: Number of output logits.
        switcher: `None` for the plain Keras model; a `Switcher` for a
            `SwitchingModel` whose FC layers it switches (`switch_model`).
        head_units: Widths of the hidden FC layers.
        width_multiplier: Scales every conv width (at least 1 channel).

    Raises:
        ValueError: If `width_multiplier` is not a positive number.
    """
    if (
        isinstance(width_multiplier, bool)
        or not isinstance(width_multiplier, (int, float))
        or width_multiplier <= 0
    ):
        raise ValueError(
            "Received an invalid value for `width_multiplier`, expected a "
            f"positive number. Received: width_multiplier={width_multiplier!r}"
        )

    def width(filters):
        return max(1, int(filters * width_multiplier))

    inputs = keras.Input(input_shape, name="image")
    x = keras.layers.Conv2D(width(32), 3, padding="same", use_bias=False)(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    for filters, strides in _BLOCKS:
        x = _separable_block(x, width(filters), strides)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = dense_head(x, num_classes, head_units=head_units)
    return switched_if(keras.Model(inputs, outputs, name="mobilenet"), switcher)
