"""`SwitchedConv2D`: a Conv2D layer whose kernel entries a switcher turns on or off."""

import keras
from keras import ops

from keras_switch.layers.mask import SwitchedKernel


@keras.saving.register_keras_serializable(package="keras_switch")
class SwitchedConv2D(SwitchedKernel, keras.layers.Conv2D):
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
        if kwargs.pop("lora_rank", None) or kwargs.pop("lora_alpha", None):
            raise ValueError(
                "SwitchedConv2D does not support LoRA (`lora_rank`): switch the "
                "full kernel, or merge the LoRA weights into it first."
            )
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

    def build(self, input_shape):
        super().build(input_shape)
        self._build_switches()

    def call(self, inputs, training=None):
        outputs = self.convolution_op(inputs, self.effective_kernel(bool(training)))
        if self.use_bias:
            if self.data_format == "channels_last":
                shape = (1,) * (self.rank + 1) + (self.filters,)
            else:
                shape = (1, self.filters) + (1,) * self.rank
            outputs = ops.add(outputs, ops.reshape(self.bias, shape))
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs

    # Conv2D saves only its kernel and bias; every variable (the mask, the
    # offset, the frozen flag) must survive a `.keras` round trip.
    def save_own_variables(self, store):
        keras.layers.Layer.save_own_variables(self, store)

    def load_own_variables(self, store):
        keras.layers.Layer.load_own_variables(self, store)

    def get_config(self):
        return self._with_switcher(super().get_config())
