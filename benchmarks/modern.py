"""Modern models on Fashion-MNIST: a small ViT and a depthwise-separable CNN
(MobileNet-style), every layer with a switched counterpart pruned from
scratch: keras-switch against gradual global magnitude pruning of the same
kernels, paired by seed.

    python -m benchmarks.modern                 # the full benchmark (hours on 2 cores)
    python -m benchmarks.modern --models=vit --targets=0.9 --seeds=0 --epochs=1 \\
        --max_train_examples=512 --max_test_examples=256 --step_rounds=1 \\
        --output_dir=/tmp/modern_smoke           # a smoke run (a minute)

Methods, each from the seed's random init of the plain model:

    dense  the plain Keras model
    gmp    gradual global magnitude pruning (`baselines.GradualPruning`) of
           every kernel ks switches, on the cubic ramp and mask interval the
           library plans for ks over the same steps: the same switched
           layers with their masks frozen, so the same computation
    ks     `switch_model(layers=SWITCHED_LAYERS["all"])`,
           `compile(target_sparsity=t)` and `fit()`: the library's defaults

Sparsity is over every switched kernel, and per layer type (`layer_type`:
attention projections, MLP, depthwise, pointwise...). Once per model: the
step time of ks (mid-ramp, library defaults) against the dense model,
interleaved. Writes `results.json` and `modern.png` to `--output_dir`; with
`--markdown`, BENCHMARKS.md's section.
"""

import time

import keras
import numpy as np
from absl import app
from absl import flags

import keras_switch
from benchmarks.harness import baselines
from benchmarks.harness import cli
from benchmarks.harness import measure
from benchmarks.harness import plots
from benchmarks.harness import report
from benchmarks.harness import runs as bench_runs
from benchmarks.harness import stats
from benchmarks.harness import tables
from benchmarks.harness import timing
from keras_switch import models

FLAGS = flags.FLAGS
TARGETS = {"vit": (0.9, 0.95, 0.98), "separable": (0.9, 0.95)}
METHODS = ("dense", "gmp", "ks")
# Issue 30's targets: ks at least magnitude's accuracy less 0.1 pt at
# every target; the ViT's step within 1.3x Dense.
ACCURACY_MARGIN = 0.1
STEP_RATIO = 1.3


def define_flags():
    flags.DEFINE_list("models", list(TARGETS), f"Models, of {sorted(TARGETS)}.")
    flags.DEFINE_list("targets", None, "Overall sparsities (default: each model's, TARGETS).")
    flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds (init, data order).")
    cli.define_budget(epochs=10, batch_size=128, learning_rate=1e-3)
    flags.DEFINE_integer("step_rounds", 15, "Interleaved timing windows per candidate.")
    flags.DEFINE_integer("window_switches", 2, "Switch steps of ks per timing window.")
    cli.define_data()
    cli.define_cache("benchmarks/results/modern")
    cli.define_markdown("modern")


def separable_cnn(input_shape=(28, 28), num_classes=10):
    """A small MobileNet-style CNN: a 3x3 conv at stride 2 (`conv0`), four
    depthwise-separable blocks (`dw{i}` 3x3 depthwise, `pw{i}` 1x1 pointwise
    of 64, 128, 128, 256 filters, each followed by BatchNorm and ReLU;
    strides 1, 2, 1, 2), global average pooling, `fc1`."""
    inputs = keras.Input(input_shape, name="image")
    x = keras.layers.Reshape(tuple(input_shape[:2]) + (1,))(inputs)
    x = keras.layers.Conv2D(32, 3, strides=2, padding="same", use_bias=False, name="conv0")(x)
    x = keras.layers.ReLU()(keras.layers.BatchNormalization()(x))
    for i, (filters, strides) in enumerate(((64, 1), (128, 2), (128, 1), (256, 2)), start=1):
        x = keras.layers.DepthwiseConv2D(3, strides=strides, padding="same", use_bias=False,
                                         name=f"dw{i}")(x)
        x = keras.layers.ReLU()(keras.layers.BatchNormalization()(x))
        x = keras.layers.Conv2D(filters, 1, use_bias=False, name=f"pw{i}")(x)
        x = keras.layers.ReLU()(keras.layers.BatchNormalization()(x))
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(num_classes, name="fc1")(x)
    return keras.Model(inputs, outputs, name="separable")


BUILDERS = {"vit": lambda: models.vit(input_shape=(28, 28)), "separable": separable_cnn}


def layer_type(layer):
    """The type a switched layer's sparsity is reported under."""
    if isinstance(layer, keras_switch.SwitchedEinsumDense):
        return "attention"
    if isinstance(layer, keras_switch.SwitchedDepthwiseConv2D):
        return "depthwise"
    if isinstance(layer, keras_switch.SwitchedConv2D):
        return "pointwise" if tuple(layer.kernel_size) == (1, 1) else "conv"
    return "mlp" if "_mlp_" in layer.name else "dense"


def initial_weights(model_name, seed):
    """The seed's random init of the plain model (`get_weights()` order)."""
    keras.utils.set_random_seed(seed)
    return BUILDERS[model_name]().get_weights()


def switch_all(model_name, weights):
    """`switch_model` of the plain model holding `weights`, every layer with
    a switched counterpart switched."""
    plain = BUILDERS[model_name]()
    plain.set_weights(weights)
    return keras_switch.switch_model(plain, layers=models.SWITCHED_LAYERS["all"])


def _loss():
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _result(model, data, seconds, **extra):
    """Test accuracy, seconds, and the sparsity of a switched `model`'s
    masks: overall and per `layer_type`."""
    rows = keras_switch.sparsity_report(model)["layers"]
    totals = {}
    for layer, row in zip(model.switched_layers, rows, strict=True):
        kept, size = totals.get(layer_type(layer), (0, 0))
        totals[layer_type(layer)] = (kept + row["nonzeros"], size + int(np.prod(row["shape"])))
    kept = sum(k for k, _ in totals.values())
    size = sum(s for _, s in totals.values())
    return {"test_accuracy": measure.accuracy(model, data[1]),
            "train_seconds": round(seconds, 1), "sparsity": 1.0 - kept / size,
            "sparsity_by_type": {t: 1.0 - k / s for t, (k, s) in sorted(totals.items())},
            "switched_weights": size, **extra}


def train_dense(model_name, data, seed, weights):
    keras.utils.set_random_seed(seed)
    model = BUILDERS[model_name]()
    model.set_weights(weights)
    baselines.compiled(model, FLAGS.learning_rate)
    seconds = bench_runs.fit(model, data, seed, FLAGS.epochs, FLAGS.batch_size, shuffle=False)
    return {"test_accuracy": measure.accuracy(model, data[1]),
            "train_seconds": round(seconds, 1)}


def train_ks(model_name, data, target, seed, weights):
    keras.utils.set_random_seed(seed)
    model = switch_all(model_name, weights)
    model.compile(loss=_loss(), metrics=["accuracy"], target_sparsity=target)
    seconds = bench_runs.fit(model, data, seed, FLAGS.epochs, FLAGS.batch_size, shuffle=False)
    return _result(model, data, seconds, freeze_step=model.schedule.freeze_step,
                   switch_every=model.schedule.switch_every)


def train_gmp(model_name, data, target, seed, weights):
    """Gradual global magnitude pruning of the kernels ks switches: the same
    switched layers, their masks frozen (every switch on at the start, the
    switcher never run), pruned by `baselines.GradualPruning`."""
    keras.utils.set_random_seed(seed)
    switched = switch_all(model_name, weights)
    for layer in switched.switched_layers:
        layer.freeze_mask(np.ones(tuple(layer.kernel.shape), "float32"))
    for switcher in switched.switchers:
        switcher.trainable = False
    model = baselines.compiled(keras.Model(switched.inputs, switched.outputs),
                               FLAGS.learning_rate)
    schedule = keras_switch.SwitchSchedule()
    schedule.plan(FLAGS.epochs * -(-len(data[0][0]) // FLAGS.batch_size))
    pruning = baselines.GradualPruning(switched.switched_layers, "magnitude", "global",
                                       target, schedule.freeze_step, schedule.switch_every,
                                       seed=seed)
    seconds = bench_runs.fit(model, data, seed, FLAGS.epochs, FLAGS.batch_size, shuffle=False,
                             callbacks=[pruning])
    return _result(switched, data, seconds, ramp_steps=schedule.freeze_step,
                   every=schedule.switch_every)


def measure_step_time(model_name, data, target):
    """Median ms per step of the dense model and of ks with the library's
    defaults, mid-ramp (planned for the benchmark's run), interleaved."""
    (x, y), _ = data
    n = min(len(x), 4 * FLAGS.batch_size)
    weights = initial_weights(model_name, 0)
    dense = BUILDERS[model_name]()
    dense.set_weights(weights)
    ks = switch_all(model_name, weights)
    ks.compile(loss=_loss(), metrics=["accuracy"], target_sparsity=target)
    steps_per_epoch = -(-len(x) // FLAGS.batch_size)
    ks.plan(FLAGS.epochs * steps_per_epoch)  # what fit() does first
    ks.switching_step.assign(ks.schedule.freeze_step // 2)
    candidates = {"dense": baselines.compiled(dense, FLAGS.learning_rate), "ks": ks}
    steps = ks.schedule.switch_every * FLAGS.window_switches
    measured = timing.step_times(candidates, timing.fixed_batches(x[:n], y[:n], FLAGS.batch_size),
                                 steps, FLAGS.step_rounds)
    return {"ms": measured["ms"], "ratio": measured["ratio"]["ks"],
            "switch_every": ks.schedule.switch_every, "window_steps": steps,
            "rounds": FLAGS.step_rounds, "batch_size": FLAGS.batch_size}


def main(argv):
    cli.check_no_arguments(argv)
    cli.check_known("models", FLAGS.models, TARGETS)
    seeds = [int(v) for v in FLAGS.seeds]
    data = cli.load_data()
    cache = cli.run_cache("modern", data, sources=("benchmarks/modern.py",
                                                   "keras_switch/models/vit.py"))
    budget = {"epochs": FLAGS.epochs, "batch_size": FLAGS.batch_size,
              "learning_rate": FLAGS.learning_rate}
    start = time.perf_counter()
    runs, step_times = [], {}
    for model_name in FLAGS.models:
        targets = [float(t) for t in (FLAGS.targets or TARGETS[model_name])]
        for seed in seeds:
            weights = initial_weights(model_name, seed)

            def run(method, target, train):
                fields = dict(model=model_name, method=method, target=target, seed=seed)
                runs.append(cache.run(f"{model_name}_{method}_{target or 0:g}_s{seed}",
                                      dict(fields, **budget), train, fields))

            run("dense", None, lambda: train_dense(model_name, data, seed, weights))
            for target in targets:
                run("gmp", target, lambda: train_gmp(model_name, data, target, seed, weights))
                run("ks", target, lambda: train_ks(model_name, data, target, seed, weights))
        step_times[model_name] = cache.run(
            f"{model_name}_step_time", dict(model=model_name, target=targets[0],
                                            rounds=FLAGS.step_rounds,
                                            window_switches=FLAGS.window_switches, **budget),
            lambda: measure_step_time(model_name, data, targets[0]))
    payload = {"runs": runs, "step_time": step_times, "settings": {
        "models": FLAGS.models, "seeds": seeds, **budget,
        "train_examples": len(data[0][0]), "test_examples": len(data[1][0]),
        "seconds": round(time.perf_counter() - start, 1)}}
    plot(runs, f"{FLAGS.output_dir}/modern.png")
    report.publish("modern", f"{FLAGS.output_dir}/results.json", payload, section,
                   FLAGS.markdown)


def summary(runs):
    """One row per (model, target, method) over seeds, with ks and gmp's
    paired difference (points) where both ran."""
    rows = []
    for (model, target, method), group in stats.group(runs, ("model", "target",
                                                             "method")).items():
        row = dict(model=model, target=target, method=method,
                   **stats.over_seeds(group), sd=stats.sd([r["test_accuracy"] for r in group]))
        if method != "dense":
            row["sparsity"] = stats.mean([r["sparsity"] for r in group])
            row["sparsity_by_type"] = stats.over_seeds(group, ["sparsity_by_type"])[
                "sparsity_by_type"]
        if method == "ks":
            row["vs_gmp"] = stats.paired(
                stats.by_seed(runs, model=model, target=target, method="ks"),
                stats.by_seed(runs, model=model, target=target, method="gmp"))
        rows.append(row)
    return rows


def section(payload):
    rows = []
    for row in summary(payload["runs"]):
        accuracy = f"{100 * row['mean_accuracy']:.2f} ± {100 * row['sd']:.2f}" \
            if len(row["seeds"]) > 1 else f"{100 * row['mean_accuracy']:.2f}"
        versus = tables.DASH
        if "vs_gmp" in row and row["vs_gmp"][0]:
            _, differences, mean, error = row["vs_gmp"]
            met = "met" if mean >= -ACCURACY_MARGIN - 1e-9 else "missed"
            versus = (f"{mean:+.2f} ± {error:.2f} (**{met}**; "
                      + ", ".join(f"{d:+.2f}" for d in differences) + ")")
        by_type = tables.DASH
        if "sparsity_by_type" in row:
            by_type = ", ".join(f"{t} {100 * s:.1f}" for t, s in row["sparsity_by_type"].items())
        rows.append([row["model"], tables.DASH if row["target"] is None else
                     f"{100 * row['target']:g}%", row["method"], accuracy,
                     tables.DASH if "sparsity" not in row else f"{100 * row['sparsity']:.2f}",
                     by_type, versus])
    table = tables.table(
        ["model", "target", "method", "test accuracy % (mean ± sd over seeds)",
         "sparsity %", "sparsity % by layer type", "ks − gmp, pt (paired: mean ± se; per seed)"],
        rows)
    times = []
    for model, measured in payload["step_time"].items():
        met = "met" if measured["ratio"] <= STEP_RATIO else "missed"
        times.append(f"- {model}: ks {measured['ms']['ks']:.1f} ms/step against Dense "
                     f"{measured['ms']['dense']:.1f} (**{measured['ratio']:.2f}x**, "
                     f"{'target ≤ 1.3x ' + met if model == 'vit' else 'no target'}; a switch "
                     f"step every {measured['switch_every']}, batch {measured['batch_size']}, "
                     f"{measured['rounds']} interleaved rounds)")
    settings = payload["settings"]
    about = (f" ({settings['epochs']} epochs, batch {settings['batch_size']}, seeds "
             f"{settings['seeds']}, {settings['train_examples']:,} training and "
             f"{settings['test_examples']:,} test examples)")
    return about, table + "\n\n" + "\n".join(times)


def plot(runs, path):
    rows = summary(runs)
    names = sorted({r["model"] for r in rows})
    colours = plots.colours(["ks", "gmp_global", "dense"])
    with plots.panels(path, count=len(names)) as axes:
        for axis, model in zip(axes, names):
            mine = [r for r in rows if r["model"] == model]
            for method, colour in (("ks", colours["ks"]), ("gmp", colours["gmp_global"])):
                points = sorted((100 * r["target"], 100 * r["mean_accuracy"])
                                for r in mine if r["method"] == method)
                if points:
                    axis.plot(*zip(*points), "o-", color=colour, label=method)
            for r in mine:
                if r["method"] == "dense":
                    plots.dense_line(axis, r["mean_accuracy"])
            plots.sparsity_axis(axis, [r["target"] for r in mine if r["target"]])
            plots.finish(axis, model, "sparsity of the switched kernels (%)",
                         "test accuracy (%)")


if __name__ == "__main__":
    define_flags()
    app.run(main)
