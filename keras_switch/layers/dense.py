"""`SwitchedDense`: a Dense layer whose connections a switcher turns on or off."""

import keras
from keras import ops

from keras_switch.layers.mask import SwitchedKernel


@keras.saving.register_keras_serializable(package="keras_switch")
class SwitchedDense(SwitchedKernel, keras.layers.Layer):
    """Densely connected layer with a learned 0/1 switch on every connection.

    `output = activation(dot(input, kernel * mask) + bias)`, where `mask` is
    the hard 0/1 output of a (usually shared) `Switcher` read off the current
    `kernel`. With `switcher=None` the layer is exactly `keras.layers.Dense`.

    Which mask is used:

    * inference (`training` false): the deterministic hard mask
      `switcher(kernel) > 0`, or the stored mask once the mask is frozen
      (`freeze_mask()`); a frozen layer never runs the switcher;
    * `training=True` outside a `SwitchingModel`: the hard mask in the forward
      pass and the straight-through gradient `d mask / d logits :=
      sigmoid'(logits)` in the backward pass, so a plain `fit()` trains the
      switcher jointly with the kernel;
    * inside `SwitchingModel.train_step` the model hands each layer the mask
      of the current phase (see `SwitchingModel`).

    Gradient to the kernel is `grad(kernel * mask) * mask`: switched-off
    weights receive no update, so they are kept, frozen, for the switcher to
    reconsider later. A `SwitchingModel` compiled with
    `train_pruned_weights=True` instead passes the gradient to switched-off
    weights too while the mask can still change (see there).

    Args:
        units: Positive integer, dimensionality of the output space.
        activation: Activation function to use (default: none).
        use_bias: Whether the layer uses a bias vector.
        kernel_initializer: Initializer for the `kernel` weights matrix.
        bias_initializer: Initializer for the bias vector.
        kernel_regularizer: Regularizer applied to the (unmasked) kernel.
        bias_regularizer: Regularizer applied to the bias vector.
        activity_regularizer: Regularizer applied to the output.
        kernel_constraint: Constraint applied to the (unmasked) kernel.
        bias_constraint: Constraint applied to the bias vector.
        switcher: A `keras_switch.Switcher` (share one instance across the
            layers of a model) or `None` for a plain Dense layer.
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Input shape:
        N-D tensor with shape `(batch_size, ..., input_dim)`.

    Output shape:
        N-D tensor with shape `(batch_size, ..., units)`.
    """

    def __init__(
        self,
        units,
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
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        if isinstance(units, bool) or not isinstance(units, int) or units <= 0:
            raise ValueError(
                "Received an invalid value for `units`, expected a positive "
                f"integer. Received: units={units!r}"
            )
        self.units = units
        self.activation = keras.activations.get(activation)
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.bias_constraint = keras.constraints.get(bias_constraint)
        self._init_switches(switcher)
        self.input_spec = keras.layers.InputSpec(min_ndim=2)
        self.supports_masking = True

    def build(self, input_shape):
        input_dim = input_shape[-1]
        self.kernel = self.add_weight(
            name="kernel",
            shape=(input_dim, self.units),
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias",
                shape=(self.units,),
                initializer=self.bias_initializer,
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )
        else:
            self.bias = None
        self._build_switches()
        self.input_spec = keras.layers.InputSpec(
            min_ndim=2, axes={-1: input_dim}
        )

    # -- Dense ---------------------------------------------------------------

    def call(self, inputs, training=None):
        x = ops.matmul(inputs, self.effective_kernel(bool(training)))
        if self.bias is not None:
            x = ops.add(x, self.bias)
        if self.activation is not None:
            x = self.activation(x)
        return x

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "activation": keras.activations.serialize(self.activation),
                "use_bias": self.use_bias,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
                "bias_initializer": keras.initializers.serialize(
                    self.bias_initializer
                ),
                "kernel_regularizer": keras.regularizers.serialize(
                    self.kernel_regularizer
                ),
                "bias_regularizer": keras.regularizers.serialize(
                    self.bias_regularizer
                ),
                "kernel_constraint": keras.constraints.serialize(
                    self.kernel_constraint
                ),
                "bias_constraint": keras.constraints.serialize(
                    self.bias_constraint
                ),
            }
        )
        return self._with_switcher(config)
