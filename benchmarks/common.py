"""What every benchmark shares: data, the same initial weights for every
method, the plain Keras 3 baselines (dense, gradual magnitude pruning, random
masks) and the keras-switch recipe read from `configs/`.

Every method trains the same architecture from the same random init on the
same seeded batches; sparsity is always counted as exact zeros in the final
kernels, never taken from a target.
"""

import json
import math
import os
import tempfile
import time

import keras
import numpy as np

import keras_switch
from configs import common as common_configs
from keras_switch import data as switch_data
from trainers import train_lib

MODELS = ("lenet300", "lenet5")
FC_LAYERS = ("fc1", "fc2", "fc3")


def write_json(path, value):
    """Writes `value` as JSON to `path` whole or not at all (a temporary
    file, then a rename): a killed benchmark leaves no half-written run."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=os.path.dirname(path), delete=False) as f:
        json.dump(value, f, indent=2)
    os.replace(f.name, path)


def load_data(data_dir, max_train=None, max_test=None):
    """Fashion-MNIST as float32 arrays standardised as the trainer does
    (`(x - mean) / std` of the training pixels), optionally truncated: every
    method, TFMOT included, trains on these same arrays."""
    (x, y), (xt, yt) = switch_data.load_arrays(
        "fashion_mnist", data_dir=data_dir, source="files"
    )
    mean, std = train_lib.NORMALIZE["fashion_mnist"]
    x, xt = ((images - mean) / std for images in (x, xt))
    if max_train:
        x, y = x[:max_train], y[:max_train]
    if max_test:
        xt, yt = xt[:max_test], yt[:max_test]
    return (x, y), (xt, yt)


def recipe(model, target, seed, epochs, overrides=None, switch_every=None,
           batch_size=None):
    """The keras-switch config the trainer would use for `model` (the
    defaults of `configs/common.mnist_config`), with the benchmark's budget
    and `overrides` ({dotted key: value}) applied."""
    config = common_configs.mnist_config(model, "fashion_mnist")
    config.seed = seed
    config.target_sparsity = target
    if epochs != config.num_epochs:
        # Keep the recipe's proportions: ramp and frozen tail scale with the
        # budget.
        scale = epochs / config.num_epochs
        schedule = config.schedule
        schedule.freeze_epochs = max(1, round(schedule.freeze_epochs * scale))
        schedule.warmup_epochs = round(schedule.warmup_epochs * scale)
        switching = epochs - schedule.freeze_epochs - schedule.warmup_epochs
        schedule.ramp_epochs = min(switching, max(1, round(schedule.ramp_epochs * scale)))
        config.num_epochs = epochs
    if switch_every:
        config.schedule.switch_every = switch_every
    if batch_size:
        config.batch_size = batch_size
    train_lib.check_config(config)
    # Ablations may step outside what the trainer accepts (a switch learning
    # rate of 0 freezes the switcher at its prior).
    for key, value in (overrides or {}).items():
        node = config
        *parents, leaf = key.split(".")
        for parent in parents:
            node = node[parent]
        node[leaf] = value
    return config


# -- plain Keras 3 models (dense, and the masked baselines) ---------------------


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


def plain_model(model, masked=False):
    """LeNet-300-100 or LeNet-5 in plain Keras 3, FC layers named like the
    switched models' (`fc1`, `fc2`, `fc3`), same trunk."""
    dense = MaskedDense if masked else keras.layers.Dense
    inputs = keras.Input((28, 28), name="image")
    if model == "lenet300":
        x = keras.layers.Flatten()(inputs)
        units = (300, 100)
    elif model == "lenet5":
        x = keras.layers.Reshape((28, 28, 1))(inputs)
        x = keras.layers.Conv2D(6, 5, padding="same", activation="relu")(x)
        x = keras.layers.MaxPooling2D(2)(x)
        x = keras.layers.Conv2D(16, 5, padding="valid", activation="relu")(x)
        x = keras.layers.MaxPooling2D(2)(x)
        x = keras.layers.Flatten()(x)
        units = (120, 84)
    else:
        raise ValueError(f"model must be one of {MODELS}. Received: {model!r}")
    for index, width in enumerate(units, start=1):
        x = dense(width, activation="relu", name=f"fc{index}")(x)
    outputs = dense(10, name="fc3")(x)
    return keras.Model(inputs, outputs, name=model)


def initial_weights(model, seed):
    """The random init every method of `(model, seed)` starts from: the
    trainable weights of a fresh plain model, in `get_weights()` order."""
    keras.utils.set_random_seed(seed)
    return plain_model(model).get_weights()


def set_initial_weights(target, weights):
    """Copies `initial_weights()` into a plain, masked or switched model
    (their trainable weights have the same shapes and order)."""
    # A SwitchingModel's trainable weights also hold its switcher's.
    variables = getattr(target, "task_variables", target.trainable_weights)
    if [tuple(v.shape) for v in variables] != [w.shape for w in weights]:
        raise ValueError(
            "Initial weights do not match the model: "
            f"{[tuple(v.shape) for v in variables]} vs {[w.shape for w in weights]}"
        )
    for variable, value in zip(variables, weights):
        variable.assign(value)


def sparsity_of(kernels):
    """{layer: exact-zero fraction} plus overall and hidden-only figures."""
    zeros = {name: int(np.sum(k == 0)) for name, k in kernels.items()}
    sizes = {name: int(k.size) for name, k in kernels.items()}
    hidden = [n for n in kernels if n != FC_LAYERS[-1]]
    return {
        "fc_sparsity": sum(zeros.values()) / sum(sizes.values()),
        "hidden_sparsity": sum(zeros[n] for n in hidden) / sum(sizes[n] for n in hidden),
        "layer_sparsity": {n: zeros[n] / sizes[n] for n in kernels},
    }


def final_kernels(model):
    """The kernels a stripped model ends with (kernel * mask where masked)."""
    out = {}
    for name in FC_LAYERS:
        layer = model.get_layer(name)
        kernel = keras.ops.convert_to_numpy(layer.kernel)
        if isinstance(layer, MaskedDense):
            kernel = kernel * keras.ops.convert_to_numpy(layer.mask)
        out[name] = kernel
    return out


# -- gradual pruning baselines ----------------------------------------------------


class GradualPruning(keras.callbacks.Callback):
    """Gradual pruning of `MaskedDense` layers, in our own Keras 3 code.

    Every `every` steps until `ramp_steps`, the target density moves along
    the same cubic ramp as keras-switch (`1 - s (1 - (1 - t)^3)`) and each
    mask keeps the highest-scoring of the connections still on; afterwards
    the mask is fixed (fine-tuning). Pruned connections never come back.

    Args:
        layers: The `MaskedDense` layers.
        criterion: `"magnitude"` (score |w|) or `"random"` (a fixed random
            score per connection: the control).
        allocation: `"global"` (one threshold over all layers: one overall
            `target`) or a {layer name: sparsity} dict (one threshold per
            layer, e.g. keras-switch's learned per-layer sparsities).
        target: Overall sparsity, with `allocation="global"`.
    """

    def __init__(self, layers, criterion, allocation, target, ramp_steps, every,
                 power=3.0, seed=0):
        super().__init__()
        self.layers = layers
        self.criterion = criterion
        self.allocation = allocation
        self.target = target
        self.ramp_steps = ramp_steps
        self.every = every
        self.power = power
        self.step = 0
        rng = np.random.default_rng(seed)
        self.random_scores = {
            layer.name: rng.random(tuple(layer.kernel.shape)) + 1.0 for layer in layers
        }

    def _density(self, sparsity):
        progress = min(1.0, (self.step + 1) / self.ramp_steps)
        return 1.0 - (1.0 - (1.0 - progress) ** self.power) * sparsity

    def _scores(self, layer):
        mask = keras.ops.convert_to_numpy(layer.mask)
        if self.criterion == "magnitude":
            base = np.abs(keras.ops.convert_to_numpy(layer.kernel))
        else:
            base = self.random_scores[layer.name]
        return base * mask  # switched-off connections stay off

    def on_train_batch_begin(self, batch, logs=None):
        if self.step % self.every == 0 and self.step <= self.ramp_steps:
            scores = {layer.name: self._scores(layer) for layer in self.layers}
            if self.allocation == "global":
                flat = np.concatenate([s.ravel() for s in scores.values()])
                keep = keep_count(self._density(self.target), flat.size)
                threshold = np.partition(flat, flat.size - keep)[flat.size - keep]
                thresholds = {name: threshold for name in scores}
            else:
                thresholds = {}
                for name, s in scores.items():
                    keep = keep_count(self._density(self.allocation[name]), s.size)
                    thresholds[name] = np.partition(s.ravel(), s.size - keep)[s.size - keep]
            for layer in self.layers:
                s = scores[layer.name]
                layer.mask.assign((s >= thresholds[layer.name]) & (s > 0))
        self.step += 1


def first_layer_sparsity(sizes, target, rest):
    """The sparsity of the first layer that keeps the overall sparsity at
    `target` when the others have `rest` ({layer: sparsity}).

    Raises:
        ValueError: when no first-layer sparsity in [0, 1] does.
    """
    first, *others = sizes
    kept = (1.0 - target) * sum(sizes.values())
    kept -= sum((1.0 - rest[name]) * sizes[name] for name in others)
    sparsity = 1.0 - kept / sizes[first]
    if not 0.0 <= sparsity <= 1.0:
        raise ValueError(
            f"Split {rest} cannot reach overall sparsity {target}: {first} would "
            f"need sparsity {sparsity:.4f}, expected a value in [0, 1]")
    return sparsity


def keep_count(density, total):
    """round(density * total) connections to keep, clipped to [1, total]."""
    return int(min(total, max(1, round(density * total))))


# -- one training run per method --------------------------------------------------


def train_plain(model_name, data, seed, epochs, batch_size, learning_rate,
                init, pruning=None):
    """Dense (`pruning=None`) or a `GradualPruning` baseline: returns the
    result dict (accuracy, measured sparsities, seconds)."""
    (x, y), (xt, yt) = data
    keras.utils.set_random_seed(seed)
    model = plain_model(model_name, masked=pruning is not None)
    set_initial_weights(model, init)
    model.compile(
        keras.optimizers.Adam(learning_rate),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    callbacks = []
    if pruning is not None:
        layers = [model.get_layer(n) for n in FC_LAYERS]
        callbacks.append(pruning(layers))
    train = switch_data.make_dataset(x, y, batch_size, training=True, seed=seed)
    start = time.perf_counter()
    model.fit(train, epochs=epochs, verbose=0, callbacks=callbacks)
    seconds = time.perf_counter() - start
    return _result(model, (xt, yt), seconds)


def train_switch(model_name, data, target, seed, epochs, init, overrides=None,
                 switch_every=None, batch_size=None, callbacks=None):
    """keras-switch with the trainer's recipe (`recipe()`): the result dict,
    plus how many kept connections are top-magnitude ones of their layer.
    `callbacks(model)`, if given, returns extra Keras callbacks for `fit`."""
    (x, y), (xt, yt) = data
    config = recipe(model_name, target, seed, epochs, overrides, switch_every, batch_size)
    keras.utils.set_random_seed(seed)
    model = train_lib.build_model(config, x.shape[1:])
    set_initial_weights(model, init)
    steps_per_epoch = math.ceil(len(x) / config.batch_size)
    train_lib.compile_model(model, config, steps_per_epoch)
    train = switch_data.make_dataset(x, y, config.batch_size, training=True, seed=seed)
    start = time.perf_counter()
    model.fit(train, epochs=config.num_epochs, verbose=0,
              callbacks=callbacks(model) if callbacks else None)
    seconds = time.perf_counter() - start
    stripped = keras_switch.strip_switches(model)
    result = _result(stripped, (xt, yt), seconds)
    result["top_magnitude_overlap"] = _top_magnitude_overlap(model)
    result["recipe"] = {k: v for k, v in (overrides or {}).items()}
    return result


def _top_magnitude_overlap(model):
    """Per layer: of the k kept connections, the fraction that are among the
    k largest |kernel| entries of that layer (1.0 = magnitude pruning)."""
    overlap = {}
    for name in FC_LAYERS:
        layer = model.get_layer(name)
        kernel = np.abs(keras.ops.convert_to_numpy(layer.kernel)).ravel()
        kept = keras.ops.convert_to_numpy(layer.mask).ravel() > 0.5
        k = int(kept.sum())
        if k == 0:
            overlap[name] = None
            continue
        top = np.zeros_like(kept)
        top[np.argpartition(kernel, kernel.size - k)[kernel.size - k:]] = True
        overlap[name] = float(np.sum(top & kept) / k)
    return overlap


def _result(model, test, seconds):
    """Test accuracy of `model` (plain Dense or masked layers) and the exact
    zeros of its final FC kernels."""
    xt, yt = test
    logits = model.predict(xt, batch_size=256, verbose=0)
    result = {
        "test_accuracy": float(np.mean(np.argmax(logits, axis=-1) == yt)),
        "train_seconds": round(seconds, 1),
    }
    result.update(sparsity_of(final_kernels(model)))
    return result
