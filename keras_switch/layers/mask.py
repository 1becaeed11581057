"""The switches of a switched layer, shared by every layer family: the
straight-through estimator, and `SwitchedKernel`, the mixin that holds a
layer's stored mask, offset and freezing and computes its masked kernel."""

import contextlib
import math

from keras import ops

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


class SwitchedKernel:
    """The switches of a layer with a `kernel` whose last axis is its output
    units: the stored mask, the offset, freezing and the masked kernel,
    computed here and nowhere else (`SwitchedDense`, `SwitchedConv2D`: one
    module per layer family beside this one).

    The switcher reads every kernel as a matrix `[in, out]`: a Dense kernel
    as it is, a convolution kernel `[kh, kw, c_in, c_out]` as `[kh * kw *
    c_in, c_out]`, one row per input connection of a filter (a position of
    the window on an input channel) and one column per filter, so its row
    and column features are the same statistics as a Dense layer's: an input
    connection's weight across filters, and a filter's (an output unit's)
    incoming weights. A layer family whose kernel is laid out otherwise says
    how to read it by overriding `switch_layout` (a depthwise kernel, an
    einsum kernel). The mask and logits have the kernel's own shape.
    """

    def _init_switches(self, switcher):
        self.switcher = check_switcher(switcher)
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
            self.switcher.build(self.matrix_shape())
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

    def switch_layout(self):
        """How the switcher reads the kernel as a matrix `[in, out]`.

        Returns `(axes, rows)`: the kernel's axes in the order they are
        flattened (a permutation), of which the first `rows` make the
        matrix's rows (input connections) and the rest its columns (output
        units). Default: every axis but the last is an input axis, in order
        (Dense, Conv1D, Conv2D)."""
        rank = len(self.kernel.shape)
        return tuple(range(rank)), rank - 1

    def matrix_shape(self):
        """`(in, out)`: the shape of the matrix the switcher reads."""
        axes, rows = self.switch_layout()
        shape = tuple(self.kernel.shape)
        return (math.prod(shape[a] for a in axes[:rows]),
                math.prod(shape[a] for a in axes[rows:]))

    def switch_matrix(self, kernel=None):
        """`kernel` (default: this layer's; or any kernel-shaped tensor) as
        the switcher reads it, `[in, out]` (see `switch_layout`)."""
        kernel = self.kernel if kernel is None else kernel
        axes, _ = self.switch_layout()
        if axes != tuple(range(len(axes))):
            kernel = ops.transpose(kernel, axes)
        if len(kernel.shape) == 2:
            return kernel
        return ops.reshape(kernel, self.matrix_shape())

    def from_matrix(self, matrix):
        """The inverse of `switch_matrix`: an `[in, out]` matrix back in the
        kernel's shape."""
        axes, _ = self.switch_layout()
        shape = tuple(self.kernel.shape)
        if len(shape) == 2 and axes == (0, 1):
            return matrix
        matrix = ops.reshape(matrix, tuple(shape[a] for a in axes))
        if axes != tuple(range(len(axes))):
            matrix = ops.transpose(matrix, tuple(axes.index(a) for a in range(len(axes))))
        return matrix

    def _with_switcher(self, config):
        """`config` with the switcher, if any, by value: the config stays
        JSON; marked shared, so loading a `.keras` file links every layer
        back to one switcher (outside a `.keras` load,
        `SwitchingModel.from_config` re-links by name)."""
        return config_with_switcher(config, self.switcher)

    @classmethod
    def from_config(cls, config):
        return cls(**switcher_from_config(config))

    def switch_probabilities(self):
        """`sigmoid` of the switcher's logits (offset not applied), kernel-shaped."""
        probabilities = self.switcher.probabilities(self.switch_matrix(),
                                                    context=self.unit_context())
        return self.from_matrix(probabilities)

    def unit_context(self):
        """`(unit_in, unit_out)` for a switcher with the ``unit_in`` /
        ``unit_out`` features (else None): the live weight (kernel times
        stored mask) into each input unit in the previous layer and out of
        each output unit in the next one, relative to its mean (ones where
        there is no such layer)."""
        if not self.switcher.uses_context:
            return None
        rows, cols = self.matrix_shape()
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
        return self.from_matrix(logits) - self.switch_offset

    def straight_through_mask(self):
        """Hard mask forward; gradient of sigmoid(logits) backward."""
        return straight_through(self.switch_logits())

    def current_mask(self, training=False):
        """The mask the layer multiplies its kernel with right now."""
        if not self.switched:
            return ops.ones(self.kernel.shape, self.kernel.dtype)
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
        self._set_phase(mask, dense_gradient)
        try:
            yield
        finally:
            self._set_phase(*previous)

    def _set_phase(self, mask, dense_gradient):
        # Plain attributes, past the layer's tracking: on torch, a layer is a
        # torch.nn.Module, which would register a mask that is a variable's
        # parameter as its own and then refuse a plain tensor there.
        object.__setattr__(self, "_phase_mask", mask)
        object.__setattr__(self, "_phase_dense_gradient", dense_gradient)

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


def check_switcher(switcher):
    """`switcher` if it is a `Switcher` or None, else a TypeError: the check
    of every layer's `switcher` argument."""
    if switcher is not None and not isinstance(switcher, Switcher):
        raise TypeError(
            "Received an invalid value for `switcher`, expected a "
            "`keras_switch.Switcher` instance or None. "
            f"Received: switcher={switcher!r}"
        )
    return switcher


def config_with_switcher(config, switcher):
    """A layer's `config` with its `switcher`, if any, by value
    (`serialize_shared`): the config stays JSON."""
    if switcher is not None:
        config["switcher"] = serialize_shared(switcher)
    return config


def switcher_from_config(config):
    """A copy of a layer's `config` with its switcher, if any, deserialized
    (`deserialize_shared`): what the layer's constructor takes."""
    config = dict(config)
    if config.get("switcher") is not None:
        config["switcher"] = deserialize_shared(config["switcher"])
    return config
