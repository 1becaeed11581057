"""`SwitchedDense`: a Dense layer whose connections a switcher turns on or off."""

import contextlib

import keras
from keras import ops

from keras_switch import _keras_internals
from keras_switch.checks import check_choice
from keras_switch.switcher import Switcher
from keras_switch.switcher import deserialize_shared
from keras_switch.switcher import serialize_shared


ESTIMATORS = ("sigmoid", "identity")


def straight_through(logits, estimator="sigmoid"):
    """The straight-through estimator of the switches.

    Forward: the hard mask `logits > 0` (exactly 0 or 1). Backward, with
    `estimator="sigmoid"`: the gradient of `sigmoid(logits)`, i.e.
    `d mask / d logits := p (1 - p)`, largest for switches near their
    threshold; with `"identity"`: `d mask / d logits := 1` for every switch.
    """
    check_choice("estimator", estimator, ESTIMATORS)
    surrogate = logits if estimator == "identity" else ops.sigmoid(logits)
    hard = ops.cast(logits > 0, surrogate.dtype)
    # `surrogate - stop_gradient(surrogate)` is exactly 0, so the forward
    # value is exactly the hard mask (`hard + surrogate - ...` is not: 1 + p
    # - p rounds to 1 +- 1 ulp).
    return hard + (surrogate - ops.stop_gradient(surrogate))


@keras.saving.register_keras_serializable(package="keras_switch")
class SwitchedDense(keras.layers.Layer):
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
        if switcher is not None and not isinstance(switcher, Switcher):
            raise TypeError(
                "Received an invalid value for `switcher`, expected a "
                "`keras_switch.Switcher` instance or None. "
                f"Received: switcher={switcher!r}"
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
        self.switcher = switcher
        self.input_spec = keras.layers.InputSpec(min_ndim=2)
        self.supports_masking = True
        # Set by SwitchingModel (trace time only) to impose the mask of the
        # current training phase; None means "decide from `training`".
        self._phase_mask = None
        self._phase_dense_gradient = False

    @property
    def switched(self):
        return self.switcher is not None

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
        if self.switched:
            if not self.switcher.built:
                self.switcher.build((input_dim, self.units))
            # The stored mask: what a frozen layer uses, and the last mask the
            # task network was trained with. Same value on every replica.
            self.mask = self.add_weight(
                name="mask",
                shape=(input_dim, self.units),
                initializer="ones",
                trainable=False,
                aggregation="only_first_replica",
            )
            # Subtracted from this layer's switch logits. 0 unless a
            # SwitchingModel sets it (per-layer budgets, see there).
            self.switch_offset = self.add_weight(
                name="switch_offset",
                shape=(),
                initializer="zeros",
                trainable=False,
                aggregation="only_first_replica",
            )
            self.mask_frozen = self.add_weight(
                name="mask_frozen",
                shape=(),
                initializer="zeros",
                trainable=False,
                aggregation="only_first_replica",
            )
        self.input_spec = keras.layers.InputSpec(
            min_ndim=2, axes={-1: input_dim}
        )

    # -- the mask, and the masked kernel: computed here and nowhere else ----

    def hard_mask(self):
        """Deterministic 0/1 mask the switcher gives the current kernel."""
        return ops.cast(self.switch_logits() > 0, self.compute_dtype)

    def switch_logits(self):
        """The switcher's logits for this kernel, less `switch_offset`."""
        return self.switcher(self.kernel) - self.switch_offset

    def straight_through_mask(self):
        """Hard mask forward; gradient of sigmoid(logits) backward."""
        return straight_through(self.switch_logits())

    def current_mask(self, training=False):
        """The mask the layer multiplies its kernel with right now."""
        if not self.switched:
            return ops.ones_like(self.kernel)
        if self._phase_mask is not None:
            return self._phase_mask
        live = self.straight_through_mask if training else self.hard_mask
        return ops.cond(
            self.mask_frozen > 0.5, lambda: ops.convert_to_tensor(self.mask), live
        )

    def effective_kernel(self, training=False):
        """`kernel * mask`: the only place the mask meets the kernel."""
        if not self.switched:
            return self.kernel
        masked = self.kernel * ops.cast(self.current_mask(training), self.kernel.dtype)
        if self._phase_dense_gradient:
            # Same value; the gradient reaches every kernel entry unmasked.
            return self.kernel + ops.stop_gradient(masked - self.kernel)
        return masked

    @contextlib.contextmanager
    def phase_mask(self, mask, dense_gradient=False):
        """Use `mask` as this layer's mask inside the `with` block.

        With `dense_gradient`, the forward pass still uses `kernel * mask`,
        but the gradient to the kernel is not masked (straight-through):
        switched-off weights keep learning."""
        previous = self._phase_mask, self._phase_dense_gradient
        self._phase_mask, self._phase_dense_gradient = mask, dense_gradient
        try:
            yield
        finally:
            self._phase_mask, self._phase_dense_gradient = previous

    def freeze_mask(self, mask=None):
        """Stores `mask` (default: the switcher's current hard mask) and uses it
        from now on: the layer no longer runs the switcher."""
        self._require_switch("freeze_mask")
        if mask is None:
            mask = self.hard_mask()
        mask = ops.convert_to_tensor(mask, self.mask.dtype)
        if tuple(mask.shape) != tuple(self.mask.shape):
            raise ValueError(
                f"Layer '{self.name}': expected a mask of shape "
                f"{tuple(self.mask.shape)}. Received: mask with shape "
                f"{tuple(mask.shape)}"
            )
        self.mask.assign(mask)
        self.mask_frozen.assign(1.0)

    def unfreeze_mask(self):
        """Goes back to asking the switcher for the mask."""
        self._require_switch("unfreeze_mask")
        self.mask_frozen.assign(0.0)

    def _require_switch(self, what):
        if not self.switched:
            raise ValueError(
                f"Cannot call `{what}()` on layer '{self.name}': it has no "
                "switcher (pass `switcher=keras_switch.Switcher()`)."
            )
        if not self.built:
            raise ValueError(
                f"Cannot call `{what}()` on layer '{self.name}' before it is "
                "built. Call the layer or its model on data first."
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
        if self.switched:
            # By value, so the config stays JSON; marked shared, so loading a
            # `.keras` file links every layer back to one switcher (outside a
            # `.keras` load, `SwitchingModel.from_config` re-links by name).
            config["switcher"] = serialize_shared(self.switcher)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if config.get("switcher") is not None:
            config["switcher"] = deserialize_shared(config["switcher"])
        return cls(**config)


def switched_layers(model):
    """Every `SwitchedDense` of `model` that has a switcher, in model order
    (nested models included)."""
    return [
        layer
        for layer in _keras_internals.flatten_layers(model)
        if isinstance(layer, SwitchedDense) and layer.switched
    ]
