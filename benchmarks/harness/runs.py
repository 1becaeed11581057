"""One training run of a method, as every benchmark trains it: a plain
Keras 3 model, dense or gradually pruned (`train_plain`), or keras-switch
with the trainer's recipe from `configs/` (`recipe`, `train_switch`), each
from the same init on the same seeded batches (sparsity always counted as
exact zeros in the final kernels)."""

import math
import time

import keras
import numpy as np

import keras_switch
from benchmarks.harness import baselines
from benchmarks.harness import data as bench_data
from benchmarks.harness import measure
from benchmarks.harness import sparsity
from configs import common as common_configs
from trainers import train_lib


def recipe(model, target, seed, epochs, overrides=None, switch_every=None,
           batch_size=None):
    """The keras-switch config the trainer would use for `model` (the
    defaults of `configs/common.mnist_config`), with the benchmark's budget
    and `overrides` ({dotted key: value}) applied.

    Raises:
        ValueError: when the budget leaves the schedule no valid shape
            (`train_lib.check_config`).
    """
    config = common_configs.mnist_config(model, "fashion_mnist")
    config.seed = seed
    config.target_sparsity = target
    if epochs != config.num_epochs:
        # Ramp and frozen tail scale with the budget.
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


def recipe_model(config, steps_per_epoch, phase="switching", input_shape=(28, 28)):
    """The recipe's model for `config`, compiled for `steps_per_epoch` and
    set at `phase`: "switching" (two epochs in, mid-ramp: the mask is
    learned, the target still moving) or "frozen" (the last epochs)."""
    model = train_lib.build_model(config, input_shape)
    train_lib.compile_model(model, config, steps_per_epoch)
    model.switching_step.assign(model.schedule.freeze_step if phase == "frozen"
                                else 2 * steps_per_epoch)
    return model


def fit(model, data, seed, epochs, batch_size, **kwargs):
    """Fits `model` quietly for `epochs` on `data`'s training split in the
    seed's batches (`data.train_batches`): the seconds of the fit."""
    batches = bench_data.train_batches(data, batch_size, seed)
    start = time.perf_counter()
    model.fit(batches, epochs=epochs, verbose=0, **kwargs)
    return time.perf_counter() - start


def train_plain(model_name, data, seed, epochs, batch_size, learning_rate,
                init, pruning=None):
    """Dense (`pruning=None`) or a gradual pruning baseline (`pruning(layers)`
    returns its `baselines.GradualPruning` for the FC layers): the result
    dict (`measure.result`)."""
    keras.utils.set_random_seed(seed)
    model = baselines.plain_model(model_name, masked=pruning is not None)
    baselines.set_initial_weights(model, init)
    baselines.compiled(model, learning_rate)
    callbacks = []
    if pruning is not None:
        callbacks.append(pruning([model.get_layer(n) for n in baselines.FC_LAYERS]))
    seconds = fit(model, data, seed, epochs, batch_size, callbacks=callbacks)
    return measure.result(model, data[1], seconds)


def train_switch(model_name, data, target, seed, epochs, init, overrides=None,
                 switch_every=None, batch_size=None, callbacks=None, every_kernel=False,
                 switcher_init=None):
    """keras-switch with the trainer's recipe (`recipe()`): the result dict
    (`every_kernel`: sparsities over every kernel), plus
    `top_magnitude_overlap` and the `overrides`; `callbacks(model)` returns
    extra callbacks for `fit`. `switcher_init`: the switcher's initial
    weights (in `switcher_variables` order), else the seed's draw."""
    (x, _), test = data
    config = recipe(model_name, target, seed, epochs, overrides, switch_every, batch_size)
    keras.utils.set_random_seed(seed)
    model = train_lib.build_model(config, x.shape[1:])
    baselines.set_initial_weights(model, init)
    for variable, value in zip(model.switcher_variables, switcher_init or (), strict=False):
        variable.assign(value)
    train_lib.compile_model(model, config, math.ceil(len(x) / config.batch_size))
    seconds = fit(model, data, seed, config.num_epochs, config.batch_size,
                  callbacks=callbacks(model) if callbacks else None)
    stripped = keras_switch.strip_switches(model)
    result = measure.result(stripped, test, seconds)
    if every_kernel:
        result.update(sparsity.sparsities(measure.kernels_of(stripped)))
    result["top_magnitude_overlap"] = top_magnitude_overlap(model)
    result["recipe"] = dict(overrides or {})
    return result


def top_magnitude_overlap(model):
    """Per FC layer of a switched model: of the k kept connections, the
    fraction that are among the k largest |kernel| entries of that layer
    (1.0 = magnitude pruning; None where nothing is kept)."""
    overlap = {}
    for name in baselines.FC_LAYERS:
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

