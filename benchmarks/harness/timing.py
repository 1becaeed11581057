"""The interleaved timing harness of the benchmarks that compare candidates
by speed (training steps: `step_time`, `pretrained`; exported models:
`inference`).

On a shared machine the load drifts while a benchmark runs, so timing one
candidate after another would charge the drift to whichever ran last.
Instead every candidate is timed in short windows, one window each per
round, with the order reversed every other round; each candidate gets its
untimed warm-up windows first. A candidate's time is the median of its
windows, and its ratio to a reference is the median over rounds of the
per-round ratios: the two windows of a round ran back to back, under the
same load, which makes that steadier than a ratio of medians.

It imports only numpy (TensorFlow where a function needs it): the TFMOT
baseline times with it in its own Keras 2 process.
"""

import gc
import time

import numpy as np


def interleave(windows, rounds, warmup=0, pause_gc=False):
    """Times `windows` ({name: fn() -> one window's measurement}) in
    `rounds` interleaved rounds, alternating the order, after `warmup`
    windows of each (untimed, in dict order). With `pause_gc`, Python's
    garbage collector is run once and then kept off during the rounds, so
    that no collection lands in one candidate's window. Returns {name:
    [measurement per round]}."""
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
    every training step is timed on the same few batches."""
    import tensorflow as tf

    return iter(tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size).cache().repeat())


def train_step_ms(model, batches, steps):
    """ms per step of `steps` calls of a compiled Keras model's train
    function on `batches` (one iterator), the last step waited for."""
    model.make_train_function()
    function = model.train_function
    start = time.perf_counter()
    for _ in range(steps):
        logs = function(batches)
    float(logs["loss"])  # wait for the last step
    return (time.perf_counter() - start) / steps * 1000.0


def step_times(models, batches, steps, rounds, reference="dense"):
    """Training steps of `models` ({name: compiled model}) interleaved:
    windows of `steps` steps each on `batches`, one warm-up window each
    (which traces every phase), `rounds` rounds. Returns `summary` against
    `reference`: {"ms": {name: ms per step}, "ratio": {name: ratio}}."""
    times = interleave({name: (lambda model=model: train_step_ms(model, batches, steps))
                        for name, model in models.items()}, rounds, warmup=1)
    return summary(times, reference)
