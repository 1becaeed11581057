"""The plain Keras 3 baselines keras-switch is compared with: LeNet-300-100
and LeNet-5 as plain models, the one random init every method of a (model,
seed) starts from, Dense and Conv2D layers with a fixed 0/1 mask, and
gradual pruning of those masks (by magnitude, or random scores as a
control) on keras-switch's own ramp and keep counts."""

import keras
import numpy as np

from benchmarks.harness import lenet
from keras_switch import sparsity as switch_sparsity
from keras_switch import thresholds

MODELS, FC_LAYERS = lenet.MODELS, lenet.FC_LAYERS


class MaskedDense(keras.layers.Dense):
    """`Dense` whose kernel is multiplied by a non-trainable 0/1 `mask`: the
    gradient to switched-off weights is zero, as in magnitude pruning."""

    def build(self, input_shape):
        super().build(input_shape)
        self.mask = self.add_weight(
            name="mask", shape=self.kernel.shape, initializer="ones", trainable=False
        )

    def call(self, inputs):
        x = keras.ops.matmul(inputs, self.kernel * self.mask)
        if self.use_bias:
            x = x + self.bias
        return self.activation(x) if self.activation is not None else x


class MaskedConv2D(keras.layers.Conv2D):
    """`Conv2D` whose kernel is multiplied by a non-trainable 0/1 `mask`: the
    convolutional `MaskedDense`."""

    def build(self, input_shape):
        super().build(input_shape)
        self.mask = self.add_weight(name="mask", shape=self.kernel.shape,
                                    initializer="ones", trainable=False)

    def convolution_op(self, inputs, kernel):
        # Conv2D.call convolves through here: the gradient to a switched-off
        # weight is zero, as in magnitude pruning.
        return super().convolution_op(inputs, kernel * self.mask)


MASKED = (MaskedDense, MaskedConv2D)


def plain_model(model, masked=False):
    """LeNet-300-100 or LeNet-5 (`lenet.lenet`) in plain Keras 3, FC layers
    named like the switched models' (`fc1`, `fc2`, `fc3`); `masked`: the FC
    layers are `MaskedDense`."""
    return lenet.lenet(keras, model, MaskedDense if masked else None, input_name="image")


def masked_clone(model):
    """A clone of the plain `model` with every Conv2D and Dense layer masked
    (`MaskedConv2D`, `MaskedDense`), the same configs (fresh weights)."""
    def clone(layer):
        if type(layer) is keras.layers.Conv2D:
            return MaskedConv2D.from_config(layer.get_config())
        if type(layer) is keras.layers.Dense:
            return MaskedDense.from_config(layer.get_config())
        return layer.__class__.from_config(layer.get_config())

    return keras.models.clone_model(model, clone_function=clone)


def initial_weights(model, seed):
    """The random init every method of `(model, seed)` starts from: the
    trainable weights of a fresh plain model, in `get_weights()` order."""
    keras.utils.set_random_seed(seed)
    return plain_model(model).get_weights()


def set_initial_weights(target, weights):
    """Copies `initial_weights()` (or any weights in that order) into a
    plain, masked or switched model (their trainable weights have the same
    shapes and order).

    Raises:
        ValueError: when the shapes differ.
    """
    # A SwitchingModel's trainable weights also hold its switcher's.
    variables = getattr(target, "task_variables", target.trainable_weights)
    if [tuple(v.shape) for v in variables] != [w.shape for w in weights]:
        raise ValueError(
            "Initial weights do not match the model: "
            f"{[tuple(v.shape) for v in variables]} vs {[w.shape for w in weights]}"
        )
    for variable, value in zip(variables, weights):
        variable.assign(value)


def compiled(model, learning_rate=1e-3, metrics=("accuracy",), jit_compile="auto"):
    """`model` compiled as every plain baseline trains: Adam at
    `learning_rate`, sparse categorical cross-entropy on logits, `metrics`
    (None: none at all, as a timed train step wants)."""
    model.compile(keras.optimizers.Adam(learning_rate),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=None if metrics is None else list(metrics), jit_compile=jit_compile)
    return model


def kept(density, total):
    """How many of `total` connections a `density` keeps, counted as the
    library counts them (`keras_switch.thresholds.keep_count`), as an int."""
    return int(keras.ops.convert_to_numpy(thresholds.keep_count(density, total)))


class GradualPruning(keras.callbacks.Callback):
    """Gradual pruning of masked layers: every `every` steps until
    `ramp_steps`, each mask keeps the `kept` highest-scoring connections
    still on at keras-switch's ramp density (`TargetSparsity.density`); then
    the mask is fixed. Pruned connections never come back.

    Args:
        layers: The masked layers.
        criterion: `"magnitude"` (score |w|) or `"random"` (a fixed random
            score per connection: the control).
        allocation: `"global"` (one threshold over all layers: one overall
            `target`) or a {layer name: sparsity} dict (one threshold per
            layer, e.g. keras-switch's learned per-layer sparsities).
        target: Overall sparsity, with `allocation="global"`.
        ramp_steps: Steps of the ramp (an int).
        every: Steps between mask updates.
        power: The ramp's power (3: cubic).
        seed: Seed of the random scores.
    """

    def __init__(self, layers, criterion, allocation, target, ramp_steps, every,
                 power=3.0, seed=0):
        super().__init__()
        self.layers = layers
        self.criterion = criterion
        self.allocation = allocation
        self.every = every
        self.ramp_steps = ramp_steps
        self.step = 0
        goals = {"global": target} if allocation == "global" else allocation
        self.ramps = {name: switch_sparsity.TargetSparsity(
            sparsity, ramp_steps=ramp_steps, ramp_power=power) for name, sparsity in goals.items()}
        rng = np.random.default_rng(seed)
        self.random_scores = {
            layer.name: rng.random(tuple(layer.kernel.shape)) + 1.0 for layer in layers
        }

    def _scores(self, layer):
        mask = keras.ops.convert_to_numpy(layer.mask)
        if self.criterion == "magnitude":
            base = np.abs(keras.ops.convert_to_numpy(layer.kernel))
        else:
            base = self.random_scores[layer.name]
        return base * mask  # switched-off connections stay off

    def _threshold(self, scores, name):
        """The score of the lowest-scoring connection `scores` keep."""
        keep = kept(self.ramps[name].density(self.step), scores.size)
        return np.partition(scores.ravel(), scores.size - keep)[scores.size - keep]

    def on_train_batch_begin(self, batch, logs=None):
        if self.step % self.every == 0 and self.step <= self.ramp_steps:
            scores = {layer.name: self._scores(layer) for layer in self.layers}
            if self.allocation == "global":
                flat = np.concatenate([s.ravel() for s in scores.values()])
                threshold = self._threshold(flat, "global")
                thresholds = {name: threshold for name in scores}
            else:
                thresholds = {name: self._threshold(s, name) for name, s in scores.items()}
            for layer in self.layers:
                s = scores[layer.name]
                layer.mask.assign((s >= thresholds[layer.name]) & (s > 0))
        self.step += 1
