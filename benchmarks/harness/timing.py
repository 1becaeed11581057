"""Interleaved timing: every candidate is timed in short windows, one each per
round, the order reversed every other round, so that drift of the machine's
load hits all alike. A time is the median of a candidate's windows; a ratio
the median of the per-round ratios. It imports only numpy (TensorFlow where
a function needs it): the TFMOT process times with it too."""

import gc
import time

import numpy as np


def interleave(windows, rounds, warmup=0, pause_gc=False):
    """{name: [measurement per round]} of `windows` ({name: fn() -> one
    window's measurement}) over `rounds` interleaved rounds, after `warmup`
    untimed windows each; `pause_gc` keeps the garbage collector off."""
    names = list(windows)
    for name in names:
        for _ in range(warmup):
            windows[name]()
    measured = {name: [] for name in names}
    if pause_gc:
        gc.collect()
        gc.disable()
    try:
        for r in range(rounds):
            for name in (names if r % 2 == 0 else names[::-1]):
                measured[name].append(windows[name]())
    finally:
        if pause_gc:
            gc.enable()
    return measured


def window(run, calls):
    """Seconds for `calls` calls of `run`, which returns something with a
    `.numpy()` (a tensor): the last result is fetched before the clock stops,
    so that work still queued is counted."""
    start = time.perf_counter()
    for _ in range(calls):
        out = run()
    out.numpy()
    return time.perf_counter() - start


def calls_for(run, window_ms):
    """Calls of `run` that fill about `window_ms` milliseconds (at least 1),
    from the mean of 3 calls."""
    seconds = window(run, 3) / 3
    return max(1, round(window_ms / 1000.0 / max(seconds, 1e-7)))


def median(values):
    return float(np.median(np.asarray(values)))


def paired_ratio(values, reference):
    """The median over rounds of `values[r] / reference[r]`."""
    return float(np.median(np.asarray(values) / np.asarray(reference)))


def summary(measured, reference, scale=1.0):
    """{"ms": {name: median * scale}, "ratio": {name: paired ratio to
    `reference`}} for `measured` ({name: per-round values}); `scale`
    turns the values into milliseconds (1000.0 for seconds)."""
    out = {"ms": {}, "ratio": {}}
    for name, values in measured.items():
        out["ms"][name] = median(values) * scale
        if name != reference:
            out["ratio"][name] = paired_ratio(values, measured[reference])
    return out


def fixed_batches(x, y, batch_size):
    """An endless iterator over the batches of (`x`, `y`), in order, cached:
    every training step is timed on the same few batches (numpy batches on
    JAX, whose compiled steps take arrays, not a `tf.data` iterator; torch
    tensors on PyTorch, as its fit() hands them to the step)."""
    import keras

    if keras.backend.backend() in ("jax", "torch"):
        import itertools

        convert = (keras.ops.convert_to_tensor if keras.backend.backend() == "torch"
                   else lambda a: a)
        return itertools.cycle([(convert(x[i:i + batch_size]), convert(y[i:i + batch_size]))
                                for i in range(0, len(x), batch_size)])
    import tensorflow as tf

    return iter(tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size).cache().repeat())


# On JAX, a model's training state between timed windows: {id(model):
# state}. Keras' JAX train function is `(state, iterator) -> (logs, state)`.
_JAX_STATES = {}


def _jax_state(model):
    if id(model) not in _JAX_STATES:
        if not model.optimizer.built:  # Keras' JAX step applies it statelessly
            model.optimizer.build(model.trainable_variables)
        _JAX_STATES[id(model)] = tuple(
            [v.value for v in variables] for variables in (
                model.trainable_variables, model.non_trainable_variables,
                model.optimizer.variables, model.metrics_variables))
    return _JAX_STATES[id(model)]


def train_step_ms(model, batches, steps):
    """ms per step of `steps` calls of a compiled Keras model's train
    function on `batches` (one iterator; numpy batches on JAX, torch tensors
    on PyTorch), the last step waited for."""
    import keras

    model.make_train_function()
    function = model.train_function
    jax = keras.backend.backend() == "jax"
    state = _jax_state(model) if jax else None
    start = time.perf_counter()
    torch = keras.backend.backend() == "torch"
    for _ in range(steps):
        if jax:
            logs, state = function(state, batches)
        elif torch:  # Keras' torch fit() calls it with one step's batches
            logs = function([next(batches)])
        else:
            logs = function(batches)
    float(logs["loss"])  # wait for the last step
    seconds = time.perf_counter() - start
    if jax:
        _JAX_STATES[id(model)] = state
    return seconds / steps * 1000.0


def step_times(models, batches, steps, rounds, reference="dense"):
    """Training steps of `models` ({name: compiled model}) interleaved:
    windows of `steps` steps each on `batches`, one warm-up window each
    (which traces every phase), `rounds` rounds. Returns `summary` against
    `reference`: {"ms": {name: ms per step}, "ratio": {name: ratio}}."""
    times = interleave({name: (lambda model=model: train_step_ms(model, batches, steps))
                        for name, model in models.items()}, rounds, warmup=1)
    return summary(times, reference)
