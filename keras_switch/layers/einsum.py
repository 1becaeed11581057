"""`SwitchedEinsumDense`: an EinsumDense layer whose kernel entries a
switcher turns on or off (MultiHeadAttention's projections, keras-hub-style
blocks), and how its kernel is read as a matrix."""

import keras
from keras import ops

from keras_switch.layers.mask import SwitchedKernel


@keras.saving.register_keras_serializable(package="keras_switch")
class SwitchedEinsumDense(SwitchedKernel, keras.layers.EinsumDense):
    """`keras.layers.EinsumDense` with a learned 0/1 switch on every kernel entry.

    Same arguments and computation, `einsum(equation, inputs, kernel *
    mask) + bias`, then the activation; with `switcher=None` it is exactly
    EinsumDense. The mask, its freezing and the training phases work as in
    `SwitchedDense`.

    The switcher reads the kernel as a matrix `[in, out]` whose rows are the
    kernel axes the equation contracts (they appear in the input and not in
    the output) and whose columns are the rest, each group in the kernel's
    order (see `einsum_layout`). A query projection `"abc,cde->abde"` reads
    its kernel `[d_model, heads, head_dim]` as `[d_model, heads *
    head_dim]`, an attention output `"abcd,cde->abe"` its `[heads,
    head_dim, d_model]` as `[heads * head_dim, d_model]`: one row per input
    unit, one column per output unit, as a Dense kernel.

    Not supported from EinsumDense: `lora_rank` and quantization (switch
    the float model; quantize the stripped export).

    Args:
        *args: `keras.layers.EinsumDense`'s positional arguments
            (`equation`, `output_shape`, ...).
        switcher: A `keras_switch.Switcher` or `None` for a plain EinsumDense.
        **kwargs: `keras.layers.EinsumDense`'s keyword arguments and the base
            layer's (`name`, `dtype`).

    Raises:
        ValueError: for `lora_rank` or a `quantization_config`.
    """

    def __init__(self, *args, switcher=None, **kwargs):
        if kwargs.pop("lora_rank", None) or kwargs.pop("lora_alpha", None):
            raise ValueError(
                "SwitchedEinsumDense does not support LoRA (`lora_rank`): switch "
                "the full kernel, or merge the LoRA weights into it first."
            )
        if kwargs.get("quantization_config") is not None:
            raise ValueError(
                "SwitchedEinsumDense does not support quantization "
                f"(quantization_config={kwargs['quantization_config']!r}): switch the "
                "float model, then quantize the stripped export."
            )
        kwargs.pop("quantization_config", None)
        super().__init__(*args, **kwargs)
        self._init_switches(switcher)

    def build(self, input_shape):
        super().build(input_shape)
        self._build_switches()

    def switch_layout(self):
        return einsum_layout(self.equation)

    def call(self, inputs, training=None):
        x = ops.einsum(self.equation, inputs, self.effective_kernel(bool(training)))
        if self.bias is not None:
            x = ops.add(x, self.bias)
        if self.activation is not None:
            x = self.activation(x)
        return x

    def quantize(self, mode=None, **kwargs):
        raise ValueError(
            f"Layer '{self.name}' is switched: quantize the stripped model "
            "(keras_switch.strip_switches) instead."
        )

    # EinsumDense saves only its kernel and bias; every variable (the mask,
    # the offset, the frozen flag) must survive a `.keras` round trip.
    def save_own_variables(self, store):
        keras.layers.Layer.save_own_variables(self, store)

    def load_own_variables(self, store):
        keras.layers.Layer.load_own_variables(self, store)

    def get_config(self):
        config = super().get_config()
        config.pop("quantization_config", None)
        return self._with_switcher(config)


def einsum_layout(equation):
    """`SwitchedKernel.switch_layout` for an EinsumDense `equation`
    (`"<input>,<kernel>-><output>"`): the kernel's contracted axes (in the
    input, not in the output) first, as rows, then the others, as columns.

    Raises:
        ValueError: if the kernel contracts no axis or keeps none (nothing
            to read as input or output units).
    """
    inputs, rest = equation.split(",", 1)
    kernel, output = rest.split("->", 1)
    kernel = kernel.replace("...", "")
    rows = [i for i, letter in enumerate(kernel) if letter in inputs and letter not in output]
    cols = [i for i, letter in enumerate(kernel) if i not in rows]
    if not rows or not cols:
        raise ValueError(
            f"Cannot switch an EinsumDense with equation {equation!r}: its kernel "
            f"{kernel!r} needs at least one contracted axis (in the input, not the "
            "output) and one other axis."
        )
    return tuple(rows + cols), len(rows)
