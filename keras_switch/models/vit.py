"""A small Vision Transformer for 28x28 grey images (Fashion-MNIST, MNIST):
patches -> encoder blocks -> head, every projection a plain Keras layer."""

import keras

from keras_switch.models.head import dense_head
from keras_switch.models.head import switched_if


@keras.saving.register_keras_serializable(package="keras_switch")
class PositionEmbedding(keras.layers.Layer):
    """Adds a learned embedding per position to a sequence `[batch, length,
    dim]` (initialised small, `RandomNormal(stddev=0.02)`)."""

    def build(self, input_shape):
        self.embedding = self.add_weight(
            name="embedding", shape=tuple(input_shape[1:]),
            initializer=keras.initializers.RandomNormal(stddev=0.02))

    def call(self, inputs):
        return inputs + self.embedding


def vit(
    input_shape=(28, 28),
    num_classes=10,
    switcher=None,
    patch_size=7,
    dim=64,
    depth=4,
    num_heads=4,
    mlp_dim=128,
    head_units=(),
):
    """A small ViT: a plain functional `keras.Model`, or with a `switcher`
    a `SwitchingModel` with its Dense layers switched.

    The image (a channel axis added to a 2-D input) is cut into
    non-overlapping `patch_size` squares, each flattened and projected to
    `dim` (`patch_embedding`, a Dense layer) plus a learned position
    embedding. Then `depth` pre-norm encoder blocks, each `x + MHA(LN(x))`
    (`block{i}_attention`, `num_heads` heads of `dim // num_heads`) and
    `x + Dense(dim)(gelu(Dense(mlp_dim)(LN(x))))` (`block{i}_mlp_in`,
    `block{i}_mlp_out`), residuals written by operator; a final LayerNorm,
    average pooling over the patches and the head (`dense_head`: `fc1`, ...).
    `build_model(..., switched_layers="all")` also switches the attention
    projections.

    Args:
        input_shape: Shape of one image, `(height, width)` or `(height,
            width, channels)`, both multiples of `patch_size`.
        num_classes: Number of output logits.
        switcher: `None` for the plain Keras model; a `Switcher` for a
            `SwitchingModel` whose Dense layers it switches.
        patch_size, dim, depth, num_heads, mlp_dim: The encoder's sizes.
        head_units: Widths of the hidden FC layers of the head.

    Raises:
        ValueError: if the image is not a whole number of patches, or `dim`
            not a multiple of `num_heads`.
    """
    height, width = input_shape[:2]
    if height % patch_size or width % patch_size:
        raise ValueError(
            f"Received an invalid value for `patch_size`, expected a divisor of the "
            f"image's {height}x{width}. Received: patch_size={patch_size!r}")
    if dim % num_heads:
        raise ValueError(
            f"Received an invalid value for `num_heads`, expected a divisor of "
            f"dim={dim}. Received: num_heads={num_heads!r}")
    channels = input_shape[2] if len(input_shape) == 3 else 1
    inputs = keras.Input(input_shape, name="image")
    x = keras.layers.Reshape((height, width, channels))(inputs)
    rows, cols = height // patch_size, width // patch_size
    x = keras.layers.Reshape((rows, patch_size, cols, patch_size, channels))(x)
    x = keras.layers.Permute((1, 3, 2, 4, 5))(x)
    x = keras.layers.Reshape((rows * cols, patch_size * patch_size * channels))(x)
    x = keras.layers.Dense(dim, name="patch_embedding")(x)
    x = PositionEmbedding(name="position_embedding")(x)
    for i in range(1, depth + 1):
        h = keras.layers.LayerNormalization(epsilon=1e-6, name=f"block{i}_norm1")(x)
        h = keras.layers.MultiHeadAttention(num_heads, dim // num_heads,
                                            name=f"block{i}_attention")(h, h)
        x = x + h
        h = keras.layers.LayerNormalization(epsilon=1e-6, name=f"block{i}_norm2")(x)
        h = keras.layers.Dense(mlp_dim, activation="gelu", name=f"block{i}_mlp_in")(h)
        x = x + keras.layers.Dense(dim, name=f"block{i}_mlp_out")(h)
    x = keras.layers.LayerNormalization(epsilon=1e-6, name="final_norm")(x)
    x = keras.layers.GlobalAveragePooling1D()(x)
    outputs = dense_head(x, num_classes, head_units=head_units)
    return switched_if(keras.Model(inputs, outputs, name="vit"), switcher)
