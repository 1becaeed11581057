r"""Pruning a pretrained model, as a TFMOT user would: LeNet-5 trained dense on
Fashion-MNIST, then pruned for a short budget with every layer (both
convolutions and the three FC layers) switched, side by side with TFMOT's
documented recipe and our gradual global magnitude pruning on the same
pretrained weights; and keras-switch from scratch with every layer switched.

    python -m benchmarks.pretrained                  # the full benchmark (~40 min on 2 cores)
    python -m benchmarks.pretrained --max_train_examples=512 --max_test_examples=256 \
        --pretrain_epochs=1 --epochs=1 --seeds=0 --step_rounds=2 --window_switches=1 \
        --output_dir=/tmp/pretrained_smoke       # a smoke run (a minute)

Per seed, the dense LeNet-5 (`keras_switch.models.lenet_5`, from the init of
`common.initial_weights("lenet5", seed)`) trains `--pretrain_epochs` (Adam
1e-3, batch 128); then, from those weights, at each `--targets` overall
sparsity over every conv and Dense kernel, for `--epochs`:

    ks          `switch_model(model, layers=<every Dense and Conv2D>)` compiled
                with the library's defaults, `compile(target_sparsity=t)`,
                and `fit()`: the target ramps (cubic) over the first 80% of
                the steps, then the mask is frozen
    tfmot       TFMOT 0.8.1 `prune_low_magnitude` on the whole model (its
                documented way; Keras 2, its own venv and process),
                PolynomialDecay 0 -> t ending at the same 80%, masks every
                100 steps
    gmp_global  gradual global magnitude pruning (one threshold over all
                five kernels), our Keras 3 code, on the ramp and mask
                interval the library plans for ks
and, from the random init, `ks_scratch`: the trainer's recipe
(`configs/common.py`) with `switched_layers="all"` for `--scratch_epochs`.

Once (the first seed): the gzip'd size of the ks model's `export_sparse`
against the pretrained dense network exported with each weight stored once
(`export_sparse(representation="dense")`, as `benchmarks/inference.py`
sizes it; Keras' `export()` is reported too), at each target; and the
median training step of LeNet-5 with every layer switched (the recipe's
schedule) against the plain Dense LeNet-5, interleaved (`timing.py`).

Every run is one JSON file in `--output_dir/runs/` (the pretrained weights
an .npz) and is reused when it exists (`--rerun` to train again). The script
ends with `results.json`, `pretrained.png` and `pretrained.md` in
`--output_dir` and, with `--markdown`, BENCHMARKS.md's pretrained section.
"""

import json
import math
import os
import statistics
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf
from absl import app
from absl import flags
from absl import logging

import keras_switch
from benchmarks import common
from benchmarks import inference_models
from benchmarks import pareto_report
from benchmarks import report
from benchmarks import tfmot_env
from benchmarks import timing
from keras_switch import data as switch_data
from keras_switch import export
from keras_switch import models
from keras_switch import schedule as switch_schedule
from trainers import train_lib

MODEL = "lenet5"
# ks_magnitude: ks with global magnitude pruning's split of the budget over
# layers (allocation="magnitude"), the lever for the gap to gmp_global.
METHODS = ("ks", "tfmot", "gmp_global", "ks_scratch", "ks_magnitude")
# Every kernel the benchmark prunes, as keras_switch.models.lenet_5 names them.
LAYERS = ("conv1", "conv2", "fc1", "fc2", "fc3")
# The targets (issue 19): at GOAL_TARGET, ks - tfmot >= +0.5 pt and
# ks - gmp_global >= -0.1 pt (paired means over seeds); the sparse export
# <= 0.08x the dense one (each weight stored once); a training step with
# every layer switched <= 1.3x Dense.
GOAL_TARGET = 0.95
GOALS = {"vs_tfmot": 0.5, "vs_gmp_global": -0.1, "export": 0.08, "step": 1.3}

FLAGS = flags.FLAGS


def define_flags():
    """The program's flags. Defined only when it runs as a program: its tests
    import this module, and absl refuses a second definition of a flag name
    that another benchmark module already made."""
    flags.DEFINE_list("targets", ["0.9", "0.95"], "Overall sparsities (every conv and Dense kernel).")
    flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds (init, data order).")
    flags.DEFINE_list("methods", list(METHODS), f"Methods, of {METHODS}.")
    flags.DEFINE_integer("pretrain_epochs", 10, "Epochs of dense pretraining.")
    flags.DEFINE_integer("epochs", 5, "Epochs of pruning the pretrained model.")
    flags.DEFINE_integer("scratch_epochs", 10, "Epochs of ks_scratch (the trainer's budget).")
    flags.DEFINE_integer("batch_size", 128, "Batch size of every run.")
    flags.DEFINE_float("learning_rate", 1e-3, "Adam learning rate (pretraining, gmp, TFMOT).")
    flags.DEFINE_integer("tfmot_frequency", 100,
                         "TFMOT's mask update interval (its default); a run shorter "
                         "than its ramp end uses the ramp end.")
    flags.DEFINE_bool("step_time", True, "Time a training step, every layer switched vs Dense.")
    flags.DEFINE_integer("step_rounds", 15, "Interleaved timing windows per candidate.")
    flags.DEFINE_integer("window_switches", 4, "Switch steps of the recipe per timing window.")
    flags.DEFINE_string("data_dir", "/usr/share/datasets/fashion-mnist",
                        "Directory of the Fashion-MNIST IDX files.")
    flags.DEFINE_integer("max_train_examples", None, "Truncate the training set (smoke runs).")
    flags.DEFINE_integer("max_test_examples", None, "Truncate the test set (smoke runs).")
    flags.DEFINE_string("output_dir", "benchmarks/results/pretrained",
                        "Where runs and results go.")
    flags.DEFINE_bool("rerun", False, "Train again even where a run's JSON exists.")
    flags.DEFINE_bool("markdown", False, "Rewrite the pretrained section of BENCHMARKS.md.")


# -- models -------------------------------------------------------------------------


class MaskedConv2D(keras.layers.Conv2D):
    """`Conv2D` whose kernel is multiplied by a non-trainable 0/1 `mask`: the
    convolutional `common.MaskedDense`."""

    def build(self, input_shape):
        super().build(input_shape)
        self.mask = self.add_weight(name="mask", shape=self.kernel.shape,
                                    initializer="ones", trainable=False)

    def convolution_op(self, inputs, kernel):
        # Conv2D.call convolves through here: the gradient to a switched-off
        # weight is zero, as in magnitude pruning.
        return super().convolution_op(inputs, kernel * self.mask)


def plain_lenet5(weights=None, masked=False):
    """The plain Keras LeNet-5 of `keras_switch.models` (layers `LAYERS`),
    set to `weights` (`get_weights()` order of `common.initial_weights`), with
    every Conv2D and Dense layer masked if `masked`."""
    model = models.lenet_5()
    if masked:
        def clone(layer):
            if type(layer) is keras.layers.Conv2D:
                return MaskedConv2D.from_config(layer.get_config())
            if type(layer) is keras.layers.Dense:
                return common.MaskedDense.from_config(layer.get_config())
            return layer.__class__.from_config(layer.get_config())

        model = keras.models.clone_model(model, clone_function=clone)
    if weights is not None:
        common.set_initial_weights(model, weights)
    return model


def switch_all(weights):
    """`switch_model` of the plain LeNet-5 holding `weights`, every Dense and
    Conv2D layer switched (a fresh switcher: every switch on)."""
    return keras_switch.switch_model(plain_lenet5(weights),
                                     layers=models.SWITCHED_LAYERS["all"])


def kernels_of(model):
    """{name: kernel} of every Conv2D and Dense layer of a plain, masked or
    stripped model (kernel * mask where masked)."""
    out = {}
    for layer in model.layers:
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
            kernel = keras.ops.convert_to_numpy(layer.kernel)
            if isinstance(layer, (common.MaskedDense, MaskedConv2D)):
                kernel = kernel * keras.ops.convert_to_numpy(layer.mask)
            out[layer.name] = kernel
    return out


def sparsities(kernels):
    """{"sparsity": exact-zero fraction over all `kernels`, "layer_sparsity":
    {name: that of each}}."""
    measured = common.sparsity_of(kernels)  # its "fc_sparsity" is over all it is given
    return {"sparsity": measured["fc_sparsity"], "layer_sparsity": measured["layer_sparsity"]}


def library_plan(total_steps):
    """(freeze step, switch_every) that `fit()` plans for `compile(
    target_sparsity=...)` with the library's defaults over `total_steps`: the
    ks target ramp ends at that freeze step."""
    schedule = keras_switch.SwitchSchedule()
    schedule.plan(total_steps)
    return schedule.freeze_step, schedule.switch_every


def _accuracy(model, test):
    xt, yt = test
    logits = model.predict(xt, batch_size=256, verbose=0)
    return float(np.mean(np.argmax(logits, axis=-1) == yt))


def _compiled(model, learning_rate):
    model.compile(keras.optimizers.Adam(learning_rate),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


def _train_set(data, batch_size, seed):
    """The seeded, shuffled training batches (`fit(..., shuffle=False)`: the
    pipeline shuffles)."""
    (x, y), _ = data
    return switch_data.make_dataset(x, y, batch_size, training=True, seed=seed)


# -- one run per method ---------------------------------------------------------------


def pretrain(data, seed, epochs, batch_size, learning_rate):
    """Dense LeNet-5 from the seed's init: (its weights, its result dict)."""
    keras.utils.set_random_seed(seed)
    model = _compiled(plain_lenet5(common.initial_weights(MODEL, seed)), learning_rate)
    start = time.perf_counter()
    model.fit(_train_set(data, batch_size, seed), epochs=epochs, shuffle=False, verbose=0)
    seconds = time.perf_counter() - start
    result = {"test_accuracy": _accuracy(model, data[1]), "train_seconds": round(seconds, 1)}
    result.update(sparsities(kernels_of(model)))
    return model.get_weights(), result


def prune_ks(weights, data, target, seed, epochs, batch_size, export_dir=None,
             allocation=None):
    """keras-switch on the pretrained `weights`, every layer switched, the
    library's defaults (`compile(target_sparsity=target)` + `fit`; another
    split of the budget over layers if `allocation` is given). With
    `export_dir`, also the gzip'd export sizes there (`export_sizes`)."""
    keras.utils.set_random_seed(seed)
    model = switch_all(weights)
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"], target_sparsity=target, allocation=allocation)
    start = time.perf_counter()
    model.fit(_train_set(data, batch_size, seed), epochs=epochs, shuffle=False, verbose=0)
    seconds = time.perf_counter() - start
    stripped = keras_switch.strip_switches(model)
    result = {"test_accuracy": _accuracy(stripped, data[1]), "train_seconds": round(seconds, 1),
              "freeze_step": model.schedule.freeze_step,
              "switch_every": model.schedule.switch_every}
    result.update(sparsities(kernels_of(stripped)))
    if export_dir is not None:
        result["export"] = export_sizes(model, weights, export_dir)
    return result


def prune_gmp(weights, data, target, seed, epochs, batch_size, learning_rate):
    """Gradual global magnitude pruning of every conv and Dense kernel of the
    pretrained `weights` (`common.GradualPruning`), on the cubic ramp and
    mask interval the library plans for ks over the same steps."""
    keras.utils.set_random_seed(seed)
    model = _compiled(plain_lenet5(weights, masked=True), learning_rate)
    steps_per_epoch = -(-len(data[0][0]) // batch_size)
    ramp, every = library_plan(epochs * steps_per_epoch)
    pruning = common.GradualPruning([model.get_layer(n) for n in LAYERS], "magnitude", "global",
                                    target, ramp, every, seed=seed)
    start = time.perf_counter()
    model.fit(_train_set(data, batch_size, seed), epochs=epochs, shuffle=False, verbose=0,
              callbacks=[pruning])
    seconds = time.perf_counter() - start
    result = {"test_accuracy": _accuracy(model, data[1]), "train_seconds": round(seconds, 1),
              "ramp_steps": ramp, "every": every}
    result.update(sparsities(kernels_of(model)))
    return result


def pruning_plan(n_train, epochs, batch_size, tfmot_frequency):
    """The steps of a pruning run: {"steps", "freeze_step" and "switch_every"
    (`library_plan`: ks, and gmp_global's ramp end and mask interval),
    "tfmot_end_step" (the same 80% of the steps), "tfmot_frequency"}."""
    steps = epochs * -(-n_train // batch_size)
    freeze, every = library_plan(steps)
    end_step = round(switch_schedule.AUTO_FREEZE_FRACTION * steps)
    # TFMOT prunes only at multiples of its frequency up to end_step: a
    # smoke run shorter than that would prune nothing.
    return {"steps": steps, "freeze_step": freeze, "switch_every": every,
            "tfmot_end_step": end_step,
            "tfmot_frequency": max(1, min(tfmot_frequency, end_step))}


def prune_tfmot(weights, data, target, seed, epochs, batch_size, learning_rate, frequency):
    """TFMOT's `prune_low_magnitude` on the whole pretrained model, in its
    venv; its ramp ends where the ks mask freezes (80% of the steps)."""
    plan = pruning_plan(len(data[0][0]), epochs, batch_size, frequency)
    result = tfmot_env.train(MODEL, target, seed, data, weights, epochs, batch_size,
                             learning_rate, frequency=plan["tfmot_frequency"],
                             end_fraction=switch_schedule.AUTO_FREEZE_FRACTION,
                             whole_model=True)
    result["train_seconds"] = round(result["train_seconds"], 1)
    return result


def scratch_ks(data, target, seed, epochs, batch_size):
    """keras-switch from the random init with the trainer's recipe and
    `switched_layers="all"` (`common.train_switch`), its sparsities measured
    over every conv and Dense kernel."""
    class FinalKernels(keras.callbacks.Callback):
        # train_switch measures the FC layers only; this keeps all five.
        def on_train_end(self, logs=None):
            self.kernels = kernels_of(keras_switch.strip_switches(self.model))

    final = FinalKernels()
    result = common.train_switch(MODEL, data, target, seed, epochs,
                                 common.initial_weights(MODEL, seed),
                                 overrides={"switched_layers": "all"}, batch_size=batch_size,
                                 callbacks=lambda model: [final])
    result.update(sparsities(final.kernels))
    return result


def export_sizes(model, weights, directory):
    """gzip'd bytes of `export_sparse(model)` and of the dense network with
    the pretrained `weights` (every connection on) exported as
    `benchmarks/inference.py` sizes it: each weight stored once
    (`export_sparse(representation="dense")`), and Keras' `export()`."""
    sparse = os.path.join(directory, "sparse")
    info = keras_switch.export_sparse(model, sparse)
    dense = switch_all(weights)
    for layer in dense.switched_layers:
        layer.freeze_mask(np.ones(tuple(layer.kernel.shape), "float32"))
    unpruned = inference_models.unpruned_sizes(dense, os.path.join(directory, "dense"))
    size = int(export.gzip_size(sparse))
    return {
        "sparse_bytes": size,
        "dense_once_bytes": unpruned["stored_once"],
        "dense_saved_model_bytes": unpruned["saved_model"],
        "weights_bytes": unpruned["weights"],
        "ratio": size / unpruned["stored_once"],
        "ratio_to_saved_model": size / unpruned["saved_model"],
        "layers": info["layers"],
    }


# -- step time ------------------------------------------------------------------------


def measure_step_time(data, batch_size, rounds, window_switches, target=GOAL_TARGET):
    """Median ms per training step, interleaved (`timing.interleave`): the
    plain Dense LeNet-5 against LeNet-5 with every layer switched under the
    trainer's recipe (`switched_layers="all"`), mid-ramp (`ks_switching`:
    task steps plus a switch step every `switch_every`) and frozen, and the
    library-default model the ks runs train (`ks_library`, planned for a
    5-epoch run), on the same fixed batches."""
    (x, y), _ = data
    n = min(len(x), 4 * batch_size)
    batches = iter(tf.data.Dataset.from_tensor_slices((x[:n], y[:n]))
                   .batch(batch_size).cache().repeat())
    steps_per_epoch = 60000 // batch_size  # as the full benchmark plans
    candidates = {"dense": _compiled(plain_lenet5(common.initial_weights(MODEL, 0)), 1e-3)}
    config = common.recipe(MODEL, target, seed=0, epochs=10, batch_size=batch_size,
                           overrides={"switched_layers": "all"})
    for phase in ("switching", "frozen"):
        model = train_lib.build_model(config, (28, 28))
        train_lib.compile_model(model, config, steps_per_epoch)
        model.switching_step.assign(model.schedule.freeze_step if phase == "frozen"
                                    else 2 * steps_per_epoch)
        candidates[f"ks_{phase}"] = model
    library = switch_all(common.initial_weights(MODEL, 0))
    library.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                    metrics=["accuracy"], target_sparsity=target)
    library.plan(5 * steps_per_epoch)  # what fit(epochs=5) does first
    library.switching_step.assign(steps_per_epoch)
    candidates["ks_library"] = library
    every = candidates["ks_switching"].schedule.switch_every
    steps = every * window_switches

    times = timing.interleave({name: (lambda m=m: timing.train_step_ms(m, batches, steps))
                               for name, m in candidates.items()},
                              rounds, warmup=1)
    measured = timing.summary(times, "dense")
    return {"ms": measured["ms"], "ratio": measured["ratio"], "switch_every": every,
            "library_switch_every": library.schedule.switch_every, "window_steps": steps,
            "rounds": rounds, "batch_size": batch_size}


# -- the report (pure functions of the runs) ----------------------------------------------


def _mean(values):
    return statistics.fmean(values) if values else float("nan")


def _sd(values):
    return statistics.stdev(values) if len(values) > 1 else float("nan")


def aggregate(runs):
    """One row per (method, target) in method order: the seeds, accuracy per
    seed, its mean and sd, mean overall and per-layer sparsity, mean train
    seconds."""
    groups = {}
    for run in runs:
        groups.setdefault((run["method"], run["target"]), []).append(run)
    order = ("dense",) + METHODS

    def key(method_target):  # by target (dense first), then method
        method, target = method_target
        return (-1 if target is None else target,
                order.index(method) if method in order else len(order), method)

    rows = []
    for method, target in sorted(groups, key=key):
        group = groups[(method, target)]
        group = sorted(group, key=lambda r: r["seed"])
        accuracy = [r["test_accuracy"] for r in group]
        names = list(group[0]["layer_sparsity"])
        rows.append({
            "method": method, "target": target, "seeds": [r["seed"] for r in group],
            "accuracy": accuracy, "mean_accuracy": _mean(accuracy), "sd_accuracy": _sd(accuracy),
            "sparsity": _mean([r["sparsity"] for r in group]),
            "layer_sparsity": {n: _mean([r["layer_sparsity"][n] for r in group]) for n in names},
            "train_seconds": _mean([r["train_seconds"] for r in group]),
        })
    return rows


def paired(runs, other, target, method="ks"):
    """`method - other` test accuracy (pt) per seed at `target`: (seeds,
    differences, mean, standard error), as `pareto_report.paired`."""
    return pareto_report.paired([dict(r, model=MODEL) for r in runs], method, other, MODEL,
                                target)


def check_targets(runs, exports, step_time):
    """Issue 19's targets, each {"goal", "measured" (a number or None),
    "met" (None where not measured)}."""
    checks = []
    for other in ("tfmot", "gmp_global"):
        seeds, _, mean, error = paired(runs, other, GOAL_TARGET)
        least = GOALS[f"vs_{other}"]
        checks.append({
            "goal": f"ks − {other} ≥ {least:+.1f} pt at {GOAL_TARGET:.0%}",
            "measured": mean if seeds else None, "error": error if len(seeds) > 1 else None,
            "met": (mean >= least) if seeds else None,
        })
    at_goal = [e for e in exports if e["target"] == GOAL_TARGET]
    ratio = at_goal[0]["ratio"] if at_goal else None
    checks.append({"goal": f"export_sparse ≤ {GOALS['export']:.2f}x dense (stored once) "
                           f"at {GOAL_TARGET:.0%}",
                   "measured": ratio, "met": None if ratio is None else ratio <= GOALS["export"]})
    step = step_time["ratio"]["ks_switching"] if step_time else None
    checks.append({"goal": f"step every layer switched ≤ {GOALS['step']:.1f}x Dense",
                   "measured": step, "met": None if step is None else step <= GOALS["step"]})
    return checks


def _target_name(target):
    return "–" if target is None else f"{target:.2f}"


def _shown(mean, error):
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    return f"{mean:+.2f}" + ("" if error is None or math.isnan(error) else f" ± {error:.2f}")


def results_table(rows):
    names = list(LAYERS)
    lines = [
        "| method | target | seeds | acc per seed | mean ± sd acc | overall sparsity "
        f"| per layer {'/'.join(names)} (%) | train s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        sd = "" if math.isnan(r["sd_accuracy"]) else f" ± {r['sd_accuracy']:.4f}"
        per_layer = "/".join(f"{100 * r['layer_sparsity'][n]:.1f}" if n in r["layer_sparsity"]
                             else "–" for n in names)
        lines.append(
            f"| {r['method']} | {_target_name(r['target'])} | {len(r['seeds'])} "
            f"| {' / '.join(f'{a:.4f}' for a in r['accuracy'])} "
            f"| **{r['mean_accuracy']:.4f}**{sd} | {r['sparsity']:.4f} | {per_layer} "
            f"| {r['train_seconds']:.0f} |")
    return "\n".join(lines)


def paired_table(runs):
    targets = sorted({r["target"] for r in runs if r["method"] == "ks" and r["target"] is not None})
    pairs = [("ks", "tfmot"), ("ks", "gmp_global"), ("ks", "ks_scratch")]
    if any(r["method"] == "ks_magnitude" for r in runs):
        pairs.append(("ks_magnitude", "gmp_global"))
    lines = ["| target | " + " | ".join(f"{a} − {b} per seed (pt) | mean ± s.e."
                                        for a, b in pairs) + " |",
             "|---|" + "---|---|" * len(pairs)]
    for target in targets:
        cells = []
        for method, other in pairs:
            seeds, diffs, mean, error = paired(runs, other, target, method=method)
            cells.append(" / ".join(f"{d:+.2f}" for d in diffs) if seeds else "–")
            cells.append(f"**{_shown(mean, error)}**" if seeds else "–")
        lines.append(f"| {_target_name(target)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def export_table(exports):
    lines = ["| target | seed | export_sparse gzip'd (B) | dense, each weight once (B) | ratio "
             "| dense Keras `export()` (B) | ratio |",
             "|---|---|---|---|---|---|---|"]
    for e in sorted(exports, key=lambda e: e["target"]):
        lines.append(
            f"| {_target_name(e['target'])} | {e['seed']} | {e['sparse_bytes']:,} "
            f"| {e['dense_once_bytes']:,} | **{e['ratio']:.3f}x** "
            f"| {e['dense_saved_model_bytes']:,} | {e['ratio_to_saved_model']:.3f}x |")
    return "\n".join(lines)


def step_table(step_time):
    ms, ratio = step_time["ms"], step_time["ratio"]
    lines = ["| Dense ms/step | every layer switched, switching (ratio) | frozen (ratio) "
             "| library default (ratio) | switch_every (recipe / library) | window steps "
             "| rounds |",
             "|---|---|---|---|---|---|---|"]
    lines.append(
        f"| {ms['dense']:.2f} | {ms['ks_switching']:.2f} (**{ratio['ks_switching']:.2f}x**) "
        f"| {ms['ks_frozen']:.2f} ({ratio['ks_frozen']:.2f}x) "
        f"| {ms['ks_library']:.2f} ({ratio['ks_library']:.2f}x) "
        f"| {step_time['switch_every']} / {step_time['library_switch_every']} "
        f"| {step_time['window_steps']} | {step_time['rounds']} |")
    return "\n".join(lines)


def targets_table(checks):
    lines = ["| issue 19 target | measured | met |", "|---|---|---|"]
    for c in checks:
        value = c["measured"]
        if value is None:
            shown = "not measured"
        elif "pt" in c["goal"]:
            shown = _shown(value, c.get("error"))
        else:
            shown = f"{value:.3f}x"
        met = "–" if c["met"] is None else ("yes" if c["met"] else "**no**")
        lines.append(f"| {c['goal']} | {shown} | {met} |")
    return "\n".join(lines)


def render(payload):
    """(about, tables) of the pretrained section, from the payload alone."""
    s = payload["settings"]
    p = s["plan"]
    about = (
        f"\n\nLeNet-5 on Fashion-MNIST, {len(s['seeds'])} seed(s): dense pretraining for "
        f"{s['pretrain_epochs']} epochs, then pruning for {s['epochs']} epochs with every conv "
        "and Dense layer pruned (ks: `switch_model` + `compile(target_sparsity=...)`; tfmot: "
        "`prune_low_magnitude` on the whole model; gmp_global: one magnitude threshold over "
        f"all five kernels); ks_scratch: the trainer's recipe, `switched_layers=\"all\"`, "
        f"{s['scratch_epochs']} epochs from the random init. Sparsity is exact zeros over "
        f"every conv and Dense kernel. {s['train_examples']:,} training and "
        f"{s['test_examples']:,} test examples. A pruning run is {p['steps']:,} steps: "
        f"the target ramps in (cubic) until step {p['freeze_step']:,} (TFMOT: "
        f"{p['tfmot_end_step']:,}), then the mask is fixed; masks are updated every "
        f"{p['switch_every']} steps (ks, gmp_global; the interval `fit()` plans) or "
        f"{p['tfmot_frequency']} (tfmot).")
    parts = [results_table(payload["summary"]),
             "Paired by seed (the same pretrained weights and data order):",
             paired_table(payload["runs"])]
    if payload["exports"]:
        parts += ["Whole-model export, gzip'd:", export_table(payload["exports"])]
    if payload["step_time"]:
        parts += ["Training step, LeNet-5 (batch "
                  f"{payload['step_time']['batch_size']}, interleaved medians):",
                  step_table(payload["step_time"])]
    parts.append(targets_table(payload["targets"]))
    return about, "\n\n".join(parts)


# tests/benchmarks/report_test.py makes the section again by this name.
section = render


def plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4.5))
    for r in rows:
        if r["method"] == "dense":
            axis.axhline(100 * r["mean_accuracy"], color="grey", linestyle="--",
                         label="dense (pretrained)")
    for method in [m for m in METHODS if any(r["method"] == m for r in rows)]:
        points = sorted((r["sparsity"], r["mean_accuracy"], r["sd_accuracy"]) for r in rows
                        if r["method"] == method and r["target"] is not None)
        xs, ys, sds = zip(*points)
        axis.errorbar([100 * x for x in xs], [100 * y for y in ys],
                      yerr=[0 if math.isnan(e) else 100 * e for e in sds], fmt="o-",
                      linewidth=2.5 if method == "ks" else 1.2, capsize=3, label=method)
    axis.set_title("LeNet-5, Fashion-MNIST: pruning a pretrained model")
    axis.set_xlabel("measured sparsity, every conv and Dense kernel (%)")
    axis.set_ylabel("test accuracy (%, mean ± sd of seeds)")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def write(runs, exports, step_time, settings, output_dir, markdown=False, command=None):
    """results.json, pretrained.png and pretrained.md in `output_dir`
    (`report.publish`; with `markdown`, BENCHMARKS.md's section too).
    Returns the payload."""
    payload = {"settings": settings, "runs": runs, "summary": aggregate(runs),
               "exports": exports, "step_time": step_time,
               "targets": check_targets(runs, exports, step_time)}
    body = report.publish("pretrained", os.path.join(output_dir, "results.json"), payload,
                          render, markdown, command=command)
    plot(payload["summary"], os.path.join(output_dir, "pretrained.png"))
    with open(os.path.join(output_dir, "pretrained.md"), "w") as f:
        f.write(body + "\n")
    return payload


# -- the program ------------------------------------------------------------------------


def _cached(name, train, **keys):
    """Loads runs/NAME.json, or trains it (`train()`), adds `keys` and writes it."""
    path = os.path.join(FLAGS.output_dir, "runs", f"{name}.json")
    if os.path.exists(path) and not FLAGS.rerun:
        with open(path) as f:
            return json.load(f)
    print(f"[pretrained] {name} ...", flush=True)
    result = train()
    result.update(keys)
    common.write_json(path, result)
    if "test_accuracy" in result:
        print(f"[pretrained]   acc {result['test_accuracy']:.4f} at sparsity "
              f"{result['sparsity']:.4f} ({result['train_seconds']} s)", flush=True)
    return result


def _pretrained(data, seed):
    """The seed's pretrained weights (runs/lenet5_pretrained_sSEED.npz) and
    result (its .json), trained unless both exist."""
    stem = os.path.join(FLAGS.output_dir, "runs", f"{MODEL}_pretrained_s{seed}")
    if os.path.exists(stem + ".npz") and os.path.exists(stem + ".json") and not FLAGS.rerun:
        with open(stem + ".json") as f:
            result = json.load(f)
        with np.load(stem + ".npz") as npz:
            return [npz[f"w_{i}"] for i in range(len(npz.files))], result
    print(f"[pretrained] {MODEL} dense pretraining seed={seed} ...", flush=True)
    weights, result = pretrain(data, seed, FLAGS.pretrain_epochs, FLAGS.batch_size,
                               FLAGS.learning_rate)
    result.update(method="dense", target=None, seed=seed, epochs=FLAGS.pretrain_epochs)
    os.makedirs(os.path.dirname(stem), exist_ok=True)
    np.savez(stem + ".npz", **{f"w_{i}": w for i, w in enumerate(weights)})
    common.write_json(stem + ".json", result)
    print(f"[pretrained]   acc {result['test_accuracy']:.4f} ({result['train_seconds']} s)",
          flush=True)
    return weights, result


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    unknown = sorted(set(FLAGS.methods) - set(METHODS))
    if unknown:
        raise app.UsageError(f"Unknown methods {unknown}; methods: {METHODS}")
    # SavedModel exports log every asset they write.
    logging.set_verbosity(logging.WARNING)
    tf.get_logger().setLevel("ERROR")
    targets = [float(t) for t in FLAGS.targets]
    seeds = [int(s) for s in FLAGS.seeds]
    data = common.load_data(FLAGS.data_dir, FLAGS.max_train_examples, FLAGS.max_test_examples)
    start = time.perf_counter()
    runs, exports = [], []
    for seed in seeds:
        weights, dense = _pretrained(data, seed)
        runs.append(dense)
        for target in targets:
            keys = dict(target=target, seed=seed, epochs=FLAGS.epochs)

            def name(method):
                return f"{MODEL}_{method}_{target:g}_s{seed}"

            if "ks" in FLAGS.methods:
                def train_ks():
                    # The exports are sized once per target, on the first seed.
                    if seed != seeds[0]:
                        return prune_ks(weights, data, target, seed, FLAGS.epochs,
                                        FLAGS.batch_size)
                    with tempfile.TemporaryDirectory(prefix="ks_pretrained_") as tmp:
                        return prune_ks(weights, data, target, seed, FLAGS.epochs,
                                        FLAGS.batch_size, export_dir=tmp)

                ks = _cached(name("ks"), train_ks, method="ks", **keys)
                runs.append(ks)
                if "export" in ks:
                    exports.append(dict(ks["export"], target=target, seed=seed))
            if "tfmot" in FLAGS.methods:
                runs.append(_cached(name("tfmot"), lambda: prune_tfmot(
                    weights, data, target, seed, FLAGS.epochs, FLAGS.batch_size,
                    FLAGS.learning_rate, FLAGS.tfmot_frequency), method="tfmot", **keys))
            if "gmp_global" in FLAGS.methods:
                runs.append(_cached(name("gmp_global"), lambda: prune_gmp(
                    weights, data, target, seed, FLAGS.epochs, FLAGS.batch_size,
                    FLAGS.learning_rate), method="gmp_global", **keys))
            if "ks_magnitude" in FLAGS.methods:
                runs.append(_cached(name("ks_magnitude"), lambda: prune_ks(
                    weights, data, target, seed, FLAGS.epochs, FLAGS.batch_size,
                    allocation="magnitude"), method="ks_magnitude", **keys))
            if "ks_scratch" in FLAGS.methods:
                runs.append(_cached(name("ks_scratch"), lambda: scratch_ks(
                    data, target, seed, FLAGS.scratch_epochs, FLAGS.batch_size),
                    method="ks_scratch", **dict(keys, epochs=FLAGS.scratch_epochs)))
    step_time = None
    if FLAGS.step_time:
        step_time = _cached("step_time", lambda: measure_step_time(
            data, FLAGS.batch_size, FLAGS.step_rounds, FLAGS.window_switches))
    settings = {
        "model": MODEL, "targets": targets, "seeds": seeds, "methods": FLAGS.methods,
        "pretrain_epochs": FLAGS.pretrain_epochs, "epochs": FLAGS.epochs,
        "scratch_epochs": FLAGS.scratch_epochs, "batch_size": FLAGS.batch_size,
        "learning_rate": FLAGS.learning_rate, "tfmot_frequency": FLAGS.tfmot_frequency,
        "train_examples": len(data[0][0]), "test_examples": len(data[1][0]),
        "plan": pruning_plan(len(data[0][0]), FLAGS.epochs, FLAGS.batch_size,
                             FLAGS.tfmot_frequency),
        "seconds": round(time.perf_counter() - start, 1),
    }
    write(runs, exports, step_time, settings, FLAGS.output_dir, markdown=FLAGS.markdown)


if __name__ == "__main__":
    define_flags()
    app.run(main)
