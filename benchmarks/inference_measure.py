"""The inference benchmark's measurements of one model: every export's size
and latency at every target.

Each SavedModel's `serve` is timed two ways on the same fixed input:

  graph   `unroll` chained calls inside one `tf.function` (each input the
          previous one plus `output[0] * eps`, eps a runtime 0.0, so nothing
          is folded), minus the same loop without `serve`; the targets are
          judged on it. A second load of the dense export (`control`) shows
          the noise.
  call    `serve(x)` from Python: what a user calling the loaded model sees.

TFLite files are timed with `Interpreter.invoke()`. All in interleaved
windows (`harness/timing.py`), reported as medians and paired ratios to
`dense`.
"""

import dataclasses
import gc
import os

import keras
import numpy as np
import tensorflow as tf

import keras_switch
from benchmarks import inference_models
from benchmarks import inference_report
from benchmarks.harness import timing


@dataclasses.dataclass(frozen=True)
class Options:
    """What to export and how to time it (the binary's flags)."""

    targets: tuple          # FC sparsities
    representations: tuple  # export_sparse representations besides "auto"
    batch_sizes: tuple
    tflite: bool
    seed: int               # the init and the inputs
    train_epochs: int
    data_dir: str
    rounds: int
    warmup: int
    window_ms: float
    unroll: int


def _output(y):
    """The one output tensor of a `serve` call (a tensor, or a 1-entry
    structure)."""
    flat = tf.nest.flatten(y)
    if len(flat) != 1:
        raise ValueError(f"serve() returned {len(flat)} outputs; expected 1")
    return flat[0]


def _graph_loop(serve, unroll):
    """tf.function running `serve` `unroll` times in a chain (serve=None: the
    harness alone). Returns the last feedback scalar."""
    @tf.function(autograph=False)
    def loop(x, eps):
        s = tf.zeros([], x.dtype)
        for _ in range(unroll):
            inputs = x + s
            y = inputs if serve is None else _output(serve(inputs))
            s = tf.reshape(y, [-1])[0] * eps
        return s

    return loop


def _interleaved(runs, options):
    """Times `runs` ({name: fn}) in interleaved windows of as many calls as
    fill about `options.window_ms` of `runs["dense"]`. Returns ({name:
    [seconds per window, one per round]}, calls per window)."""
    calls = timing.calls_for(runs["dense"], options.window_ms)
    windows = {name: (lambda run=run: timing.window(run, calls)) for name, run in runs.items()}
    return timing.interleave(windows, options.rounds, options.warmup, pause_gc=True), calls


def time_graph(serves, x, options):
    """Graph-mode ms per serve() call (harness subtracted) and ratios."""
    eps = tf.constant(0.0, x.dtype)
    loops = {"harness": _graph_loop(None, options.unroll)}
    loops.update({name: _graph_loop(serve, options.unroll) for name, serve in serves.items()})
    runs = {name: (lambda loop=loop: loop(x, eps)) for name, loop in loops.items()}
    for run in runs.values():
        run()  # trace
    times, calls = _interleaved(runs, options)
    per_iteration = {n: np.asarray(t) / (calls * options.unroll) for n, t in times.items()}
    harness = per_iteration.pop("harness")
    net = {name: t - harness for name, t in per_iteration.items()}
    result = timing.summary(net, "dense", scale=1000.0)
    result.update(mode="graph", calls_per_window=calls, unroll=options.unroll,
                  harness_ms=timing.median(harness) * 1000.0,
                  raw_ms={n: timing.median(t) * 1000.0 for n, t in per_iteration.items()})
    return result


def time_python(serves, x, options):
    """ms per `serve(x)` call from Python, and ratios."""
    runs = {name: (lambda serve=serve: _output(serve(x))) for name, serve in serves.items()}
    for run in runs.values():
        run()
    times, calls = _interleaved(runs, options)
    result = timing.summary({n: np.asarray(t) / calls for n, t in times.items()}, "dense",
                            scale=1000.0)
    result.update(mode="call", calls_per_window=calls)
    return result


class _Invoke:
    """One tf.lite.Interpreter at a batch size; calling it invokes once."""

    def __init__(self, path, x):
        self.interpreter = tf.lite.Interpreter(model_path=path)
        detail = self.interpreter.get_input_details()[0]
        if tuple(detail["shape"]) != tuple(x.shape):
            self.interpreter.resize_tensor_input(detail["index"], list(x.shape))
        self.interpreter.allocate_tensors()
        self.interpreter.set_tensor(detail["index"], x)
        self.output = self.interpreter.get_output_details()[0]["index"]

    def __call__(self):
        self.interpreter.invoke()
        return self

    def numpy(self):
        return self.interpreter.get_tensor(self.output)


def time_tflite(paths, x, options):
    """ms per `Interpreter.invoke()` of the dense and the sparse TFLite
    file, and the sparse one's ratio."""
    runs = {"dense": _Invoke(paths["tflite_dense"], x),
            "sparse": _Invoke(paths["tflite_sparse"], x)}
    diff = float(np.max(np.abs(runs["dense"]().numpy() - runs["sparse"]().numpy())))
    times, calls = _interleaved(runs, options)
    result = timing.summary({n: np.asarray(t) / calls for n, t in times.items()}, "dense",
                            scale=1000.0)
    result.update(mode="tflite", calls_per_window=calls, max_abs_diff=diff)
    return result


def measure(model, part, target, directory, unpruned_size, options):
    """One (model, part, target): `model`'s exports under `directory`,
    their sizes (and ratios to `unpruned_size`, `unpruned_sizes()` of the
    same network), outputs and latencies at every batch size."""
    report = keras_switch.sparsity_report(model)
    paths, auto_layers = inference_models.export_all(
        model, directory, options.representations, options.tflite)
    sizes = inference_models.sizes_of(paths)
    saved = ["dense", "auto",
             *(inference_models.candidate(r) for r in options.representations)]
    empty = [layer["name"] for layer in report["layers"] if layer["nonzeros"] == 0]
    if empty:
        print(f"  warning: {', '.join(empty)} fully pruned: the output no longer "
              "depends on the input", flush=True)
    result = {
        "part": part,
        "target": target,
        "fc_sparsity": report["overall"],
        "empty_layers": empty,
        "layers": report["layers"],
        "auto_layers": auto_layers,
        "sizes": sizes,
        "size_unpruned_dense": unpruned_size["saved_model"],
        "size_unpruned_once": unpruned_size["stored_once"],
        "size_unpruned_weights": unpruned_size["weights"],
        "size_ratio": {n: sizes[n] / unpruned_size["saved_model"] for n in saved},
        "size_ratio_to_once": {n: sizes[n] / unpruned_size["stored_once"] for n in saved},
        "size_ratio_to_weights": {n: sizes[n] / unpruned_size["weights"] for n in saved},
        "size_ratio_to_stripped": {n: sizes[n] / sizes["dense"] for n in saved},
    }
    if options.tflite:
        result["size_ratio"]["tflite_sparse_to_tflite_dense"] = (
            sizes["tflite_sparse"] / sizes["tflite_dense"])
    loaded = {name: tf.saved_model.load(paths[name]) for name in saved}
    loaded["control"] = tf.saved_model.load(paths["dense"])
    serves = {name: obj.serve for name, obj in loaded.items()}
    result["latency"], result["max_abs_diff"] = [], {}
    for batch in options.batch_sizes:
        x = tf.constant(inference_models.input_for(model, batch, options.seed))
        reference = _output(serves["dense"](x)).numpy()
        for name in saved[1:]:
            diff = float(np.max(np.abs(_output(serves[name](x)).numpy() - reference)))
            result["max_abs_diff"][name] = max(diff, result["max_abs_diff"].get(name, 0.0))
        graph = time_graph({"dense": serves["dense"], "control": serves["control"],
                            **{n: serves[n] for n in saved[1:]}}, x, options)
        call = time_python({n: serves[n] for n in saved}, x, options)
        for timed in (graph, call):
            timed["batch"] = batch
            result["latency"].append(timed)
        if options.tflite:
            timed = time_tflite(paths, x.numpy(), options)
            timed["batch"] = batch
            result["latency"].append(timed)
        print(f"  batch {batch}: graph dense {graph['ms']['dense']:.4f} ms, "
              + ", ".join(f"{n} {graph['ratio'][n]:.2f}x" for n in graph["ratio"])
              + f"; call dense {call['ms']['dense']:.4f} ms, "
              + ", ".join(f"{n} {call['ratio'][n]:.2f}x" for n in call["ratio"]), flush=True)
    del serves, loaded
    gc.collect()
    return result


def run_model(name, workdir, options):
    """Every (part, target) of model `name` (`harness.lenet.MODELS`),
    exported under `workdir`: a list of `measure` results, each with its
    "model"."""
    model = inference_models.build_model(name, options.seed, options.train_epochs,
                                         options.data_dir)
    parts = [("fc=whole", model)] if name == "lenet300" else [
        ("fc", inference_models.fc_stack(model)), ("whole", model)]
    # The reference size: the dense export with every connection kept.
    unpruned = {}
    inference_models.set_masks(
        model, [np.ones(tuple(l.kernel.shape), "float32") for l in model.switched_layers])
    for part, network in parts:
        if network is not model:
            inference_models.copy_switched(model, network)
        unpruned[part] = inference_models.unpruned_sizes(
            network, os.path.join(workdir, name, part))
    results = []
    for target in options.targets:
        inference_models.set_masks(model, inference_models.global_magnitude_masks(model, target))
        for part, network in parts:
            if network is not model:
                inference_models.copy_switched(model, network)
            print(f"[inference] {name} {inference_report.PART_NAMES[part]} target {target:.2f}",
                  flush=True)
            directory = os.path.join(workdir, name, part, f"{target:.2f}")
            result = measure(network, part, target, directory, unpruned[part], options)
            result["model"] = name
            results.append(result)
    keras.utils.clear_session()
    return results
