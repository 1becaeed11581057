"""VGG-16 (with BatchNorm) and a fully connected head (switched when given
a switcher)."""

import keras

from keras_switch.models.head import dense_head
from keras_switch.models.head import switched_if

# Conv widths of the 13 3x3 conv layers; "M" is a 2x2 max-pool.
_VGG16_PLAN = (
    64, 64, "M",
    128, 128, "M",
    256, 256, 256, "M",
    512, 512, 512, "M",
    512, 512, 512, "M",
)  # fmt: skip


def vgg16(
    input_shape=(32, 32, 3), num_classes=10, switcher=None, head_units=(512, 512)
):
    """VGG-16 with BatchNorm: a plain functional `keras.Model`, or
    with a `switcher` a `SwitchingModel` with its FC head switched.

    Plain Keras trunk: 13 3x3 `same` convs (64, 64, M, 128, 128, M,
    256 x3, M, 512 x3, M, 512 x3, M; M a 2x2 max-pool), each followed by
    BatchNorm and ReLU, then flatten (512 features for 32x32). Head:
    one `Dense` ReLU layer per entry
    of `head_units` (`fc1`, `fc2`), each followed by `Dropout(0.5)`, then the
    `Dense(num_classes)` logits (`fc3`).

    Args:
        input_shape: Shape of one image, `(height, width, channels)`.
        num_classes: Number of output logits.
        switcher: `None` for the plain Keras model; a `Switcher` for a
            `SwitchingModel` whose FC layers it switches (`switch_model`).
        head_units: Widths of the hidden FC layers; `()` gives a single
            output layer.
    """
    inputs = keras.Input(input_shape, name="image")
    x = inputs
    for entry in _VGG16_PLAN:
        if entry == "M":
            x = keras.layers.MaxPooling2D(2)(x)
            continue
        x = keras.layers.Conv2D(entry, 3, padding="same", use_bias=False)(x)
        x = keras.layers.BatchNormalization()(x)
        x = keras.layers.ReLU()(x)
    x = keras.layers.Flatten()(x)
    outputs = dense_head(x, num_classes, head_units=head_units, dropout=0.5
    )
    return switched_if(keras.Model(inputs, outputs, name="vgg16"), switcher)
