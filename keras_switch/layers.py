"""Switched layers: `SwitchedDense` and `SwitchedConv2D`, a Dense and a
Conv2D layer whose connections a switcher turns on or off."""

import contextlib
import math

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


class _SwitchedKernel:
    """The switches of a layer with a `kernel` whose last axis is its output
    units: the stored mask, the offset, freezing and the masked kernel,
    computed here and nowhere else (`SwitchedDense`, `SwitchedConv2D`).

    The switcher reads every kernel as a matrix `[in, out]`: a Dense kernel
    as it is, a convolution kernel `[kh, kw, c_in, c_out]` as `[kh * kw *
    c_in, c_out]`, one row per input connection of a filter (a position of
    the window on an input channel) and one column per filter, so its row
    and column features are the same statistics as a Dense layer's: an input
    connection's weight across filters, and a filter's (an output unit's)
    incoming weights. The mask and logits have the kernel's own shape.
    """

    def _init_switches(self, switcher):
        if switcher is not None and not isinstance(switcher, Switcher):
            raise TypeError(
                "Received an invalid value for `switcher`, expected a "
                "`keras_switch.Switcher` instance or None. "
                f"Received: switcher={switcher!r}"
            )
        self.switcher = switcher
        # Set by SwitchingModel (trace time only) to impose the mask of the
        # current training phase; None means "decide from `training`".
        self._phase_mask = None
        self._phase_dense_gradient = False
        # (previous, next) switched layer of a chain; set by `link_neighbours`.
        self._neighbours = _Untracked((None, None))

    @property
    def switched(self):
        return self.switcher is not None

    def neighbours(self):
        """`(previous, next)` switched layer of a chain, or None each
        (`link_neighbours` sets them). A method, not a property: Keras'
        saving walks properties, and these point back at this layer."""
        return self._neighbours.value

    def _build_switches(self):
        """Creates the switch state once `self.kernel` exists."""
        if not self.switched:
            return
        shape = tuple(self.kernel.shape)
        if not self.switcher.built:
            self.switcher.build(_matrix_shape(shape))
        # The stored mask: what a frozen layer uses, and the last mask the
        # task network was trained with. `switch_offset` is subtracted from
        # this layer's switch logits: 0 unless a SwitchingModel sets it
        # (per-layer budgets, see there). Same values on every replica.
        for name, weight_shape, initial in (("mask", shape, "ones"),
                                            ("switch_offset", (), "zeros"),
                                            ("mask_frozen", (), "zeros")):
            setattr(self, name, self.add_weight(
                name=name, shape=weight_shape, initializer=initial, trainable=False,
                aggregation="only_first_replica"))

    def switch_matrix(self, kernel=None):
        """`kernel` (default: this layer's) as the switcher reads it, `[in, out]`."""
        kernel = self.kernel if kernel is None else kernel
        if len(kernel.shape) == 2:
            return kernel
        return ops.reshape(kernel, _matrix_shape(tuple(kernel.shape)))

    def _with_switcher(self, config):
        """`config` with the switcher, if any, by value: the config stays
        JSON; marked shared, so loading a `.keras` file links every layer
        back to one switcher (outside a `.keras` load,
        `SwitchingModel.from_config` re-links by name)."""
        if self.switched:
            config["switcher"] = serialize_shared(self.switcher)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if config.get("switcher") is not None:
            config["switcher"] = deserialize_shared(config["switcher"])
        return cls(**config)

    def switch_probabilities(self):
        """`sigmoid` of the switcher's logits (offset not applied), kernel-shaped."""
        probabilities = self.switcher.probabilities(self.switch_matrix(),
                                                    context=self.unit_context())
        return ops.reshape(probabilities, tuple(self.kernel.shape))

    def unit_context(self):
        """`(unit_in, unit_out)` for a switcher with the ``unit_in`` /
        ``unit_out`` features (else None): the live weight (kernel times
        stored mask) into each input unit in the previous layer and out of
        each output unit in the next one, relative to its mean (ones where
        there is no such layer)."""
        if not self.switcher.uses_context:
            return None
        rows, cols = _matrix_shape(tuple(self.kernel.shape))
        previous, following = self.neighbours()

        def strength(layer, axis, size):
            if layer is None:
                return ops.ones((size,), self.compute_dtype)
            live = ops.sum(ops.abs(layer.kernel * ops.cast(layer.mask, layer.kernel.dtype)),
                           axis=axis)
            return live / (ops.mean(live) + 1e-8)

        return strength(previous, 0, rows), strength(following, 1, cols)

    # -- the mask, and the masked kernel: computed here and nowhere else ----

    def hard_mask(self):
        """Deterministic 0/1 mask the switcher gives the current kernel."""
        return ops.cast(self.switch_logits() > 0, self.compute_dtype)

    def switch_logits(self):
        """The switcher's logits for this kernel, less `switch_offset`
        (kernel-shaped)."""
        logits = self.switcher(self.switch_matrix(), context=self.unit_context())
        if len(self.kernel.shape) != 2:
            logits = ops.reshape(logits, tuple(self.kernel.shape))
        return logits - self.switch_offset

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



class _Untracked:
    """Holds a value out of Keras' sight: a layer attribute holding other
    layers would make them its sub-layers (their weights its weights)."""

    def __init__(self, value):
        self.value = value


def _matrix_shape(shape):
    """`[..., out]` -> `[prod(...), out]`: a kernel as the switcher reads it."""
    return (math.prod(shape[:-1]), shape[-1])


@keras.saving.register_keras_serializable(package="keras_switch")
class SwitchedDense(_SwitchedKernel, keras.layers.Layer):
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


@keras.saving.register_keras_serializable(package="keras_switch")
class SwitchedConv2D(_SwitchedKernel, keras.layers.Conv2D):
    """2D convolution with a learned 0/1 switch on every kernel entry.

    `keras.layers.Conv2D` (same arguments, same computation) with its kernel
    multiplied by the mask of a (usually shared) `Switcher`; with
    `switcher=None` it is exactly Conv2D. The switcher reads the kernel
    `[kh, kw, c_in, filters]` as a matrix `[kh * kw * c_in, filters]` (see
    `_SwitchedKernel`); the mask, its freezing and the training phases work
    as in `SwitchedDense`. Not supported from Conv2D: `lora_rank`.

    Args:
        filters, kernel_size, strides, padding, data_format, dilation_rate,
            groups, activation, use_bias, kernel_initializer,
            bias_initializer, kernel_regularizer, bias_regularizer,
            activity_regularizer, kernel_constraint, bias_constraint: as
            `keras.layers.Conv2D`.
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


SWITCHED_CLASSES = (SwitchedDense, SwitchedConv2D)


def link_neighbours(layers):
    """Sets each layer's `neighbours`: consecutive switched Dense layers (in
    `layers`' order) where one's units are the next one's inputs form a
    chain; every other side is None. What the ``unit_in`` / ``unit_out``
    switcher features read."""
    pairs = {id(layer): [None, None] for layer in layers}
    for a, b in zip(layers, layers[1:]):
        if (isinstance(a, SwitchedDense) and isinstance(b, SwitchedDense) and a.built
                and b.built and a.kernel.shape[1] == b.kernel.shape[0]):
            pairs[id(a)][1], pairs[id(b)][0] = b, a
    for layer in layers:
        # Mutated in place: setting a layer attribute to layers would make
        # Keras track them as its sub-layers.
        layer._neighbours.value = tuple(pairs[id(layer)])


def switched_layers(model):
    """Every switched layer (`SwitchedDense`, `SwitchedConv2D`) of `model`
    that has a switcher, in model order (nested models included)."""
    return [
        layer
        for layer in _keras_internals.flatten_layers(model)
        if isinstance(layer, _SwitchedKernel) and layer.switched
    ]
