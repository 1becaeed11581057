"""The switcher network (SNN): a kernel in, one switch logit per entry out.

Design (our choice; the paper's abstract leaves it open):

* **Shape-agnostic.** The switcher never looks at a kernel as a whole vector.
  It turns every entry ``w_ij`` of a ``[in, out]`` kernel into a small vector
  of *per-connection features* and maps each feature vector to a logit with
  one small MLP whose weights do not depend on the kernel's shape. One
  instance therefore serves every switched layer of a model, whatever its
  size, and what it learns on one layer transfers to the others.
* **Scale-free features.** Kernels of different layers live on different
  scales (fan-in dependent initialisations, weight decay). Each feature is
  normalised by a statistic of the same kernel, so the switcher sees *where*
  a weight stands in its layer, its row (the input unit's outgoing weights)
  and its column (the output unit's incoming weights), not raw values:

  ====================  =====================================================
  ``signed``            ``w / std(W)``
  ``magnitude``         ``|w| / std(W)``
  ``row``               ``|w| / mean_j |W_i.|`` (relative to its input unit)
  ``column``            ``|w| / mean_i |W_.j|`` (relative to its output unit)
  ``fan_in``            ``log(in) / 10`` (lets the switcher keep small layers
                        denser than large ones: a learned, non-uniform
                        per-layer allocation)
  ``fan_out``           ``log(out) / 10``
  ``unit_in``           the connection's input unit's live incoming weight in
                        the *previous* switched layer, ``sum_h |w_hi| m_hi``
                        over its stored mask, relative to the mean over units
                        (1 without one): knowledge from the neighbouring layer
  ``unit_out``          the same for the output unit's live outgoing weight in
                        the *next* switched layer
  ====================  =====================================================

  ``unit_in`` and ``unit_out`` need the layer's neighbours, which a
  `SwitchingModel` links for Dense layers that form a chain in model order
  (each one's units the next one's inputs); they are not in the defaults:
  measured no better than the defaults at 99-99.5% (BENCHMARKS.md).

* **Starts as global magnitude pruning.** Every logit is a fixed *prior*
  plus the MLP's learned *correction*::

      logit = magnitude_prior * log1p(|w| / prior_scale)
              + mlp(features) + linear(features) + bias - threshold

  The prior is a monotone function of the raw ``|w|`` (not normalised per
  layer), so a fresh switcher ranks every connection of every layer it
  serves by magnitude: with one global top-k budget (``SwitchingModel``'s
  ``target_sparsity``) that is nearly global magnitude pruning (the
  correction starts random and small; docs/design.md gives the tested
  overlap), the strongest simple baseline we measured, and training can
  only move the ranking away from it where the task loss says so. The log makes the
  correction act on ``|w|`` multiplicatively (a correction of ``+c`` weighs a
  connection like one ``e^c`` times larger).
* **Starts with every switch on.** The prior is >= 0 and the output bias
  starts at ``initial_logit`` (default ``+2``, probability 0.88), so every
  logit starts >= ``initial_logit``. A switcher that starts near 0.5
  switches whole layers off at step 0; an all-off layer passes no gradient
  to anything and never recovers.
* The kernel enters under ``stop_gradient``: the switcher reads the task
  network's weights, it does not train them.

A non-trainable ``threshold`` is subtracted from every logit; it is 0 unless
a ``SwitchingModel`` compiled with ``target_sparsity`` sets it (see there).

Call: ``logits = switcher(kernel)``; ``switcher.probabilities(kernel)`` is
``sigmoid(logits)`` and ``switcher.hard_mask(kernel)`` is ``logits > 0`` as a
float 0/1 tensor.
"""

import contextlib
import hashlib
import math
import threading

import keras
from keras import ops

from keras_switch.checks import ArgumentError
from keras_switch.checks import check_number

FEATURES = ("signed", "magnitude", "row", "column", "fan_in", "fan_out", "unit_in",
            "unit_out")
# Features read from the neighbouring layers (`context`), not the kernel.
CONTEXT_FEATURES = ("unit_in", "unit_out")
# Default input features. "signed" is left out: with it a fresh switcher can
# switch off weights by sign (e.g. all positive weights of a ReLU layer), which
# killed every network we tried; magnitude-type features rank connections.
DEFAULT_FEATURES = ("magnitude", "row", "column", "fan_in", "fan_out")
# A kernel of more entries than this is evaluated in column pieces of at
# most this many entries, each recomputed in the backward pass instead of
# kept (`keras.remat`): the per-connection MLP's activations then take memory
# for one piece, not for the whole kernel. Smaller kernels are evaluated
# whole, exactly as before pieces existed.
CHUNK_ENTRIES = 1 << 20
_EPS = 1e-8
_CONSTANT_FEATURES = ("fan_in", "fan_out")


@keras.saving.register_keras_serializable(package="keras_switch")
class Switcher(keras.layers.Layer):
    """Shared switcher sub-model: kernel ``[in, out]`` -> logits ``[in, out]``.

    Args:
        hidden_units: Sizes of the hidden layers of the per-connection MLP
            (a tuple of positive ints; may be empty for a linear switcher).
        activation: Activation of the hidden layers.
        initial_logit: Initial output bias: every switch starts with
            logit ``initial_logit`` (must be > 0 so that all switches start
            on).
        features: Which per-connection features to feed the MLP, a
            non-empty subset of ``keras_switch.switcher.FEATURES``.
        magnitude_prior: Weight of the magnitude prior
            ``log1p(|w| / prior_scale)`` in every logit (>= 0; 0 leaves the
            ranking entirely to the learned part).
        prior_scale: Weight magnitude where the prior turns from linear to
            logarithmic (> 0). Much smaller than the weights that matter.
        center_correction: Subtract, per kernel, the mean of the learned
            correction, so that learning re-ranks connections *within* a
            layer and leaves the split of the global budget across layers to
            the magnitude prior. Without it the shared correction, whose
            gradient comes mostly from the largest layer, drifted toward a
            uniform per-layer split (the output layer pruned as hard as the
            input layer) and lost accuracy; see BENCHMARKS.md.
        **kwargs: Base layer keyword arguments such as `name`.

    Input shape:
        A rank-2 kernel ``(in, out)`` of any size.

    Output shape:
        Same as the input: one switch logit per kernel entry.
    """

    def __init__(
        self,
        hidden_units=(8,),
        activation="relu",
        initial_logit=2.0,
        features=DEFAULT_FEATURES,
        magnitude_prior=1.0,
        prior_scale=1e-3,
        center_correction=True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        hidden_units = tuple(hidden_units)
        if not all(isinstance(u, int) and not isinstance(u, bool) and u > 0
                   for u in hidden_units):
            raise ArgumentError("hidden_units", hidden_units, "a tuple of positive integers")
        features = tuple(features)
        unknown = [f for f in features if f not in FEATURES]
        if not features or unknown or len(set(features)) != len(features):
            raise ArgumentError(
                "features", features, f"a non-empty subset of {FEATURES} without repeats"
            )
        check_number("initial_logit", initial_logit,
                     "a positive number (every switch must start on)", lambda v: v > 0)
        check_number("magnitude_prior", magnitude_prior, "a number >= 0", lambda v: v >= 0)
        check_number("prior_scale", prior_scale, "a positive number", lambda v: v > 0)
        self.magnitude_prior = float(magnitude_prior)
        self.prior_scale = float(prior_scale)
        self.center_correction = bool(center_correction)
        self.hidden_units = hidden_units
        self.activation = keras.activations.get(activation)
        self.initial_logit = float(initial_logit)
        self.features = features

    def build(self, kernel_shape=None):
        # The weights depend only on the number of features, never on the
        # kernel's shape: that is what lets one switcher serve every layer.
        self._hidden = []
        width = len(self.features)
        for i, units in enumerate(self.hidden_units):
            w = self.add_weight(
                name=f"hidden_{i}_kernel",
                shape=(width, units),
                initializer="glorot_uniform",
            )
            b = self.add_weight(
                name=f"hidden_{i}_bias", shape=(units,), initializer="zeros"
            )
            self._hidden.append((w, b))
            width = units
        self.output_kernel = self.add_weight(
            name="output_kernel",
            shape=(width, 1),
            initializer=keras.initializers.RandomNormal(stddev=0.01),
        )
        # Linear path from the features straight to the logit; with the MLP
        # it forms the learned correction to the magnitude prior, and starts
        # at 0 (the correction starts near 0: a fresh switcher is the prior).
        self.linear_kernel = self.add_weight(
            name="linear_kernel",
            shape=(len(self._linear_features()), 1),
            initializer="zeros",
        )
        self.output_bias = self.add_weight(
            name="output_bias",
            shape=(1,),
            initializer=keras.initializers.Constant(self.initial_logit),
        )
        # Subtracted from every logit. Stays 0 unless the model sets it: with
        # `target_sparsity`, SwitchingModel moves it to the score of the k-th
        # most important connection, so exactly the target fraction is on.
        self.threshold = self.add_weight(
            name="threshold",
            shape=(),
            initializer="zeros",
            trainable=False,
            aggregation="only_first_replica",
        )

    @property
    def uses_context(self):
        """Whether any feature reads the neighbouring layers (`context`)."""
        return any(name in CONTEXT_FEATURES for name in self.features)

    def connection_features(self, kernel, context=None):
        """The per-connection features, shape ``[in, out, len(features)]``.

        `context`: `(unit_in [in], unit_out [out])` for the features
        ``unit_in`` / ``unit_out``, or None (both all ones)."""
        w = self._checked_kernel(kernel)
        return self._features(w, self._statistics(w, context), tuple(w.shape))

    def _checked_kernel(self, kernel):
        w = ops.stop_gradient(ops.convert_to_tensor(kernel, self.compute_dtype))
        if len(w.shape) != 2:
            raise ValueError(
                "Switcher expects a rank-2 kernel [in, out]. "
                f"Received: kernel with shape {tuple(w.shape)}"
            )
        return w

    def _statistics(self, w, context):
        """The whole-kernel statistics the features divide by (and the
        context), for the features in use: `std` (a scalar), `row` ``[in,
        1]``, `column` ``[1, out]``, `unit_in` ``[in, 1]``, `unit_out` ``[1, out]``."""
        wanted = set(self.features)
        statistics = {}
        if wanted & {"signed", "magnitude"}:
            statistics["std"] = ops.std(w) + _EPS
        if "row" in wanted:
            statistics["row"] = ops.mean(ops.abs(w), axis=1, keepdims=True) + _EPS
        if "column" in wanted:
            statistics["column"] = ops.mean(ops.abs(w), axis=0, keepdims=True) + _EPS
        if context is not None:
            for name, axis, value in (("unit_in", 1, context[0]), ("unit_out", 0, context[1])):
                if name in wanted:
                    statistics[name] = ops.expand_dims(
                        ops.stop_gradient(ops.convert_to_tensor(value, self.compute_dtype)), axis)
        return statistics

    def _features(self, w, statistics, kernel_shape):
        """The features ``[in, c, F]`` of `w` (the kernel, or a piece of its
        columns), from `_statistics` of the whole kernel of `kernel_shape`."""
        fan_in, fan_out = kernel_shape
        magnitude = ops.abs(w)
        columns = {
            "signed": lambda: w / statistics["std"],
            "magnitude": lambda: magnitude / statistics["std"],
            "row": lambda: magnitude / statistics["row"],
            "column": lambda: magnitude / statistics["column"],
            "fan_in": lambda: ops.full_like(w, math.log(fan_in) / 10.0),
            "fan_out": lambda: ops.full_like(w, math.log(fan_out) / 10.0),
            "unit_in": lambda: ops.broadcast_to(statistics["unit_in"], w.shape)
            if "unit_in" in statistics else ops.ones_like(w),
            "unit_out": lambda: ops.broadcast_to(statistics["unit_out"], w.shape)
            if "unit_out" in statistics else ops.ones_like(w),
        }
        return ops.stack([columns[name]() for name in self.features], axis=-1)

    def prior(self, kernel):
        """The fixed part of the logits, ``magnitude_prior * log1p(|w| /
        prior_scale)``, shape ``[in, out]``."""
        w = ops.stop_gradient(ops.convert_to_tensor(kernel, self.compute_dtype))
        return self.magnitude_prior * ops.log1p(ops.abs(w) / self.prior_scale)

    def correction(self, kernel, context=None):
        """The learned part of the logits (bias included), ``[in, out]``.

        A kernel of more than `CHUNK_ENTRIES` entries is evaluated in column
        pieces, each rematerialized in the backward pass (see there)."""
        w = self._checked_kernel(kernel)
        if not self.built:  # called directly rather than through __call__
            self.build(tuple(w.shape))
        fan_in, fan_out = w.shape
        statistics = self._statistics(w, context)
        if fan_in * fan_out <= CHUNK_ENTRIES:
            logits = self._mlp(self._features(w, statistics, (fan_in, fan_out)),
                               self._weights())
        else:
            logits = self._correction_in_pieces(w, statistics)
        if self.center_correction:
            logits = logits - ops.mean(logits)
        return logits + self.output_bias

    def _correction_in_pieces(self, w, statistics):
        """`_mlp(_features(w))` over pieces of `w`'s columns, each of at most
        `CHUNK_ENTRIES` entries and recomputed in the backward pass."""
        fan_in, fan_out = w.shape
        width = max(1, CHUNK_ENTRIES // fan_in)
        sliced = {"column", "unit_out"}  # per-column statistics, cut with the piece

        names = sorted(statistics)

        def piece(w_piece, *tensors):  # flat tensors, as every backend's remat takes
            piece_statistics = dict(zip(names, tensors[:len(names)]))
            return self._mlp(self._features(w_piece, piece_statistics, (fan_in, fan_out)),
                             self._weights(tensors[len(names):]))

        evaluate = keras.remat(piece)
        # Tensors, not variables (TensorFlow's remat passes no gradient to
        # a variable handed in as an argument).
        weights = [ops.copy(v) for v in self._weight_list()]
        pieces = []
        for start in range(0, fan_out, width):
            stop = min(fan_out, start + width)
            cut = [statistics[name][..., start:stop] if name in sliced else statistics[name]
                   for name in names]
            pieces.append(evaluate(w[:, start:stop], *cut, *weights))
        return ops.concatenate(pieces, axis=1)

    def _weight_list(self):
        return ([v for pair in self._hidden for v in pair]
                + [self.output_kernel, self.linear_kernel])

    def _weights(self, values=None):
        """`(hidden [(w, b)], output_kernel, linear_kernel)`: the MLP's
        weights, the variables or `values` in `_weight_list`'s order."""
        values = self._weight_list() if values is None else values
        hidden = [(values[2 * i], values[2 * i + 1]) for i in range(len(self._hidden))]
        return hidden, values[-2], values[-1]

    def _mlp(self, features, weights):
        """The uncentred correction without its bias, ``[in, out]``, of the
        features ``[in, out, F]``."""
        hidden, output_kernel, linear_kernel = weights
        h = features
        for w, b in hidden:
            h = self.activation(ops.matmul(h, w) + b)
        linear = [i for i, name in enumerate(self.features) if name in self._linear_features()]
        return ops.squeeze(
            ops.matmul(h, output_kernel)
            + ops.matmul(ops.take(features, linear, axis=-1), linear_kernel),
            axis=-1,
        )

    def _linear_features(self):
        """Features of the linear path. Centring removes a feature that is
        constant over a kernel (fan_in, fan_out): its linear weight would get
        a gradient of exactly 0, so it is left out (the MLP still uses it)."""
        if not self.center_correction:
            return self.features
        return tuple(f for f in self.features if f not in _CONSTANT_FEATURES)

    def call(self, kernel, context=None):
        logits = self.correction(kernel, context) - self.threshold
        if self.magnitude_prior:
            logits = logits + self.prior(kernel)
        return logits

    def probabilities(self, kernel, context=None):
        return ops.sigmoid(self(kernel, context=context))

    def hard_mask(self, kernel, context=None):
        return ops.cast(self(kernel, context=context) > 0, self.compute_dtype)

    def compute_output_shape(self, kernel_shape):
        return tuple(kernel_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "hidden_units": list(self.hidden_units),
                "activation": keras.activations.serialize(self.activation),
                "initial_logit": self.initial_logit,
                "features": list(self.features),
                "magnitude_prior": self.magnitude_prior,
                "prior_scale": self.prior_scale,
                "center_correction": self.center_correction,
            }
        )
        return config


# -- sharing one switcher across layers when rebuilding from configs ----------

_SHARING = threading.local()


@contextlib.contextmanager
def sharing_scope():
    """Inside this scope, switchers deserialized with the same name are one
    object.

    Each `SwitchedDense` config carries its switcher by value (configs stay
    JSON). A `.keras` load already links them back to one object through
    Keras' own object-sharing scope; this scope does the same for
    `from_config` outside a `.keras` load. `SwitchingModel.from_config` opens
    it for you; wrap `keras.Sequential.from_config(...)` or
    `keras.Model.from_config(...)` of a plain Keras model in it yourself.
    """
    previous = getattr(_SHARING, "by_name", None)
    _SHARING.by_name = {} if previous is None else previous
    try:
        yield
    finally:
        _SHARING.by_name = previous


def serialize_shared(switcher):
    """The switcher's config, by value, marked as one shared object.

    Keras' `.keras` format links objects serialized more than once through a
    `shared_object_id` key; Keras sets it only on the copies it still holds,
    which misses the first layer's copy when the config is nested in a
    layer's config. We set it ourselves, from the switcher's name, so every
    layer's copy carries it and `load_model` rebuilds one object. It is
    stable, so `get_config()` stays deterministic; two different switchers in
    one model must have different names (Keras' automatic names are).
    """
    config = keras.saving.serialize_keras_object(switcher)
    digest = hashlib.sha1(f"keras_switch/{switcher.name}".encode()).digest()
    config["shared_object_id"] = int.from_bytes(digest[:6], "big")
    return config


def deserialize_shared(config):
    """Deserializes a switcher config, reusing a same-named one in scope."""
    by_name = getattr(_SHARING, "by_name", None)
    name = config.get("config", {}).get("name")
    if by_name is not None and name in by_name:
        return by_name[name]
    switcher = keras.saving.deserialize_keras_object(config)
    if by_name is not None:
        by_name[name] = switcher
    return switcher
