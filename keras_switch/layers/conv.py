"""Switched convolutions: `SwitchedConv1D`, `SwitchedConv2D` and
`SwitchedDepthwiseConv2D`, Keras' convolutions whose kernel entries a
switcher turns on or off. `SwitchedConvolution` holds what they share."""

import keras
from keras import ops

from keras_switch.layers.mask import SwitchedKernel


class SwitchedConvolution(SwitchedKernel):
    """What every switched convolution shares: the LoRA refusal, building
    the switches after the kernel, the call (the class's own convolution of
    the masked kernel, the bias, the activation), saving every variable and
    the switcher in the config. A class names its convolution in
    `convolve(inputs, kernel)`."""

    def _refuse_lora(self, kwargs):
        """Pops LoRA out of `kwargs` (refused) before the Keras class sees it."""
        if kwargs.pop("lora_rank", None) or kwargs.pop("lora_alpha", None):
            raise ValueError(
                f"{type(self).__name__} does not support LoRA (`lora_rank`): "
                "switch the full kernel, or merge the LoRA weights into it first."
            )
        return kwargs

    def build(self, input_shape):
        super().build(input_shape)
        self._build_switches()

    def convolve(self, inputs, kernel):
        """The class's convolution of `inputs` with `kernel` (no bias)."""
        return self.convolution_op(inputs, kernel)

    def call(self, inputs, training=None):
        outputs = self.convolve(inputs, self.effective_kernel(bool(training)))
        if self.use_bias:
            channels = self.bias.shape[0]
            if self.data_format == "channels_last":
                shape = (1,) * (self.rank + 1) + (channels,)
            else:
                shape = (1, channels) + (1,) * self.rank
            outputs = ops.add(outputs, ops.reshape(self.bias, shape))
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs

    # Keras' convolutions save only their kernel and bias; every variable
    # (the mask, the offset, the frozen flag) must survive a `.keras` round trip.
    def save_own_variables(self, store):
        keras.layers.Layer.save_own_variables(self, store)

    def load_own_variables(self, store):
        keras.layers.Layer.load_own_variables(self, store)

    def get_config(self):
        return self._with_switcher(super().get_config())


@keras.saving.register_keras_serializable(package="keras_switch")
class SwitchedConv2D(SwitchedConvolution, keras.layers.Conv2D):
    """2D convolution with a learned 0/1 switch on every kernel entry.

    `keras.layers.Conv2D` (same arguments, same computation) with its kernel
    multiplied by the mask of a (usually shared) `Switcher`; with
    `switcher=None` it is exactly Conv2D. The switcher reads the kernel
    `[kh, kw, c_in, filters]` as a matrix `[kh * kw * c_in, filters]` (see
    `SwitchedKernel`); the mask, its freezing and the training phases work
    as in `SwitchedDense`. Not supported from Conv2D: `lora_rank`.

    Every argument but `switcher` is `keras.layers.Conv2D`'s (`filters`,
    `kernel_size`, `strides`, `padding`, `data_format`, `dilation_rate`,
    `groups`, `activation`, `use_bias`, the initializers, regularizers and
    constraints).

    Args:
        switcher: A `keras_switch.Switcher` or `None` for a plain Conv2D.
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.
    """

    def __init__(
        self,
        filters,
        kernel_size,
        strides=(1, 1),
        padding="valid",
        data_format=None,
        dilation_rate=(1, 1),
        groups=1,
        activation=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        switcher=None,
        **kwargs,
    ):
        kwargs = self._refuse_lora(kwargs)
        super().__init__(
            filters=filters,
            kernel_size=kernel_size,
            strides=strides,
            padding=padding,
            data_format=data_format,
            dilation_rate=dilation_rate,
            groups=groups,
            activation=activation,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer,
            bias_regularizer=bias_regularizer,
            activity_regularizer=activity_regularizer,
            kernel_constraint=kernel_constraint,
            bias_constraint=bias_constraint,
            **kwargs,
        )
        self._init_switches(switcher)


@keras.saving.register_keras_serializable(package="keras_switch")
class SwitchedConv1D(SwitchedConvolution, keras.layers.Conv1D):
    """1D convolution with a learned 0/1 switch on every kernel entry.

    `keras.layers.Conv1D` (same arguments, same computation, `"causal"`
    padding included) with its kernel multiplied by the mask of a (usually
    shared) `Switcher`; with `switcher=None` it is exactly Conv1D. The
    switcher reads the kernel `[k, c_in, filters]` as a matrix `[k * c_in,
    filters]`: one row per input connection of a filter, one column per
    filter, as for `SwitchedConv2D`. Not supported from Conv1D: `lora_rank`.

    Args:
        *args: `keras.layers.Conv1D`'s positional arguments (`filters`,
            `kernel_size`, ...).
        switcher: A `keras_switch.Switcher` or `None` for a plain Conv1D.
        **kwargs: `keras.layers.Conv1D`'s keyword arguments and the base
            layer's (`name`, `dtype`).
    """

    def __init__(self, *args, switcher=None, **kwargs):
        super().__init__(*args, **self._refuse_lora(kwargs))
        self._init_switches(switcher)

    def convolve(self, inputs, kernel):
        padding = self.padding
        if padding == "causal":
            inputs = ops.pad(inputs, self._compute_causal_padding())
            padding = "valid"
        return ops.conv(inputs, kernel, strides=list(self.strides), padding=padding,
                        dilation_rate=self.dilation_rate, data_format=self.data_format)


@keras.saving.register_keras_serializable(package="keras_switch")
class SwitchedDepthwiseConv2D(SwitchedConvolution, keras.layers.DepthwiseConv2D):
    """Depthwise 2D convolution with a learned 0/1 switch on every kernel entry.

    `keras.layers.DepthwiseConv2D` (same arguments, same computation) with
    its kernel multiplied by the mask of a (usually shared) `Switcher`; with
    `switcher=None` it is exactly DepthwiseConv2D.

    The switcher reads the kernel `[kh, kw, c_in, depth_multiplier]` as a
    matrix `[kh * kw, c_in * depth_multiplier]`: one column per output
    channel, whose rows are its only inputs (the window's positions on its
    one input channel), so a column's features are an output unit's
    incoming weights as in every other switched layer. Read the Conv2D way,
    `[kh * kw * c_in, depth_multiplier]`, a depthwise kernel with
    `depth_multiplier=1` would be one column, and the column features would
    describe the whole layer instead of a channel.

    Args:
        *args: `keras.layers.DepthwiseConv2D`'s positional arguments
            (`kernel_size`, ...).
        switcher: A `keras_switch.Switcher` or `None` for a plain DepthwiseConv2D.
        **kwargs: `keras.layers.DepthwiseConv2D`'s keyword arguments and
            the base layer's (`name`, `dtype`).
    """

    def __init__(self, *args, switcher=None, **kwargs):
        super().__init__(*args, **self._refuse_lora(kwargs))
        self._init_switches(switcher)

    def switch_layout(self):
        return (0, 1, 2, 3), 2

    def convolve(self, inputs, kernel):
        return ops.depthwise_conv(inputs, kernel, strides=self.strides, padding=self.padding,
                                  dilation_rate=self.dilation_rate,
                                  data_format=self.data_format)
