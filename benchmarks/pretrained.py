"""Pruning a pretrained model, as a TFMOT user would: LeNet-5 trained dense,
then pruned for a short budget with every layer switched, side by side with
TFMOT's documented recipe and gradual global magnitude pruning on the same
weights; and keras-switch from scratch with every layer switched.

    python -m benchmarks.pretrained                  # the full benchmark (~40 min on 2 cores)
    python -m benchmarks.pretrained --max_train_examples=512 --max_test_examples=256 \
        --pretrain_epochs=1 --epochs=1 --seeds=0 --step_rounds=2 --window_switches=1 \
        --output_dir=/tmp/pretrained_smoke       # a smoke run (a minute)

Methods (`--methods`), at each `--targets` sparsity over every kernel:

    ks            `compile(target_sparsity=t)` and `fit()`, library defaults
    tfmot         TFMOT `prune_low_magnitude` on the whole model, its ramp
                  ending where ks freezes (80% of the steps)
    gmp_global    gradual global magnitude pruning on the ks ramp
    ks_magnitude  ks with `allocation="magnitude"`
    ks_erk        ks with `allocation="erk"`
    ks_scratch    the trainer's recipe from the random init

Once (the first seed): the export sizes of ks, and the step time with every
layer switched against Dense. Writes `results.json`, `pretrained.png` and
`pretrained.md` to `--output_dir`; with `--markdown`, BENCHMARKS.md's section.
"""

import tempfile
import time

import keras
import numpy as np
import tensorflow as tf
from absl import app
from absl import flags
from absl import logging

import keras_switch
from benchmarks import inference_models
from benchmarks import pretrained_report
from benchmarks import tfmot_env
from benchmarks.harness import baselines
from benchmarks.harness import cli
from benchmarks.harness import measure
from benchmarks.harness import runs as bench_runs
from benchmarks.harness import timing
from keras_switch import models
from keras_switch import schedule as switch_schedule

MODEL, METHODS, LAYERS = (pretrained_report.MODEL, pretrained_report.METHODS,
                          pretrained_report.LAYERS)

FLAGS = flags.FLAGS


def define_flags():
    flags.DEFINE_list("targets", ["0.9", "0.95"],
                      "Overall sparsities (every conv and Dense kernel).")
    flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds (init, data order).")
    flags.DEFINE_list("methods", list(METHODS), f"Methods, of {METHODS}.")
    flags.DEFINE_integer("pretrain_epochs", 10, "Epochs of dense pretraining.")
    flags.DEFINE_integer("epochs", 5, "Epochs of pruning the pretrained model.")
    flags.DEFINE_integer("scratch_epochs", 10, "Epochs of ks_scratch (the trainer's budget).")
    cli.define_budget(batch_size=128)
    flags.DEFINE_float("learning_rate", 1e-3, "Adam learning rate (pretraining, gmp, TFMOT).")
    flags.DEFINE_integer("tfmot_frequency", 100,
                         "TFMOT's mask update interval (its default); a run shorter "
                         "than its ramp end uses the ramp end.")
    flags.DEFINE_bool("step_time", True, "Time a training step, every layer switched vs Dense.")
    flags.DEFINE_integer("step_rounds", 15, "Interleaved timing windows per candidate.")
    flags.DEFINE_integer("window_switches", 4, "Switch steps of the recipe per timing window.")
    cli.define_data()
    cli.define_cache("benchmarks/results/pretrained")
    cli.define_markdown("pretrained")


def plain_lenet5(weights=None, masked=False):
    """The plain Keras LeNet-5 of `keras_switch.models` (layers `LAYERS`),
    set to `weights` (`get_weights()` order of `baselines.initial_weights`),
    with every Conv2D and Dense layer masked if `masked`."""
    model = models.lenet_5()
    if masked:
        model = baselines.masked_clone(model)
    if weights is not None:
        baselines.set_initial_weights(model, weights)
    return model


def switch_all(weights):
    """`switch_model` of the plain LeNet-5 holding `weights`, every Dense and
    Conv2D layer switched (a fresh switcher: every switch on)."""
    return keras_switch.switch_model(plain_lenet5(weights),
                                     layers=models.SWITCHED_LAYERS["all"])


def library_plan(total_steps):
    """(freeze step, switch_every) that `fit()` plans for `compile(
    target_sparsity=...)` with the library's defaults over `total_steps`: the
    ks target ramp ends at that freeze step."""
    schedule = keras_switch.SwitchSchedule()
    schedule.plan(total_steps)
    return schedule.freeze_step, schedule.switch_every


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


def pretrain(data, seed, epochs, batch_size, learning_rate):
    """Dense LeNet-5 from the seed's init: (its result dict, its weights)."""
    keras.utils.set_random_seed(seed)
    model = baselines.compiled(plain_lenet5(baselines.initial_weights(MODEL, seed)),
                               learning_rate)
    seconds = bench_runs.fit(model, data, seed, epochs, batch_size, shuffle=False)
    return measure.result(model, data[1], seconds, every_kernel=True), model.get_weights()


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
    seconds = bench_runs.fit(model, data, seed, epochs, batch_size, shuffle=False)
    result = measure.result(keras_switch.strip_switches(model), data[1], seconds,
                            every_kernel=True, freeze_step=model.schedule.freeze_step,
                            switch_every=model.schedule.switch_every)
    if export_dir is not None:
        result["export"] = export_sizes(model, weights, export_dir)
    return result


def prune_gmp(weights, data, target, seed, epochs, batch_size, learning_rate):
    """Gradual global magnitude pruning of every conv and Dense kernel of the
    pretrained `weights` (`baselines.GradualPruning`), on the cubic ramp and
    mask interval the library plans for ks over the same steps."""
    keras.utils.set_random_seed(seed)
    model = baselines.compiled(plain_lenet5(weights, masked=True), learning_rate)
    ramp, every = library_plan(epochs * -(-len(data[0][0]) // batch_size))
    pruning = baselines.GradualPruning([model.get_layer(n) for n in LAYERS], "magnitude",
                                       "global", target, ramp, every, seed=seed)
    seconds = bench_runs.fit(model, data, seed, epochs, batch_size, shuffle=False,
                             callbacks=[pruning])
    return measure.result(model, data[1], seconds, every_kernel=True, ramp_steps=ramp,
                          every=every)


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
    `switched_layers="all"` (`runs.train_switch`), its sparsities measured
    over every conv and Dense kernel."""
    return bench_runs.train_switch(MODEL, data, target, seed, epochs,
                                   baselines.initial_weights(MODEL, seed),
                                   overrides={"switched_layers": "all"},
                                   batch_size=batch_size, every_kernel=True)


def export_sizes(model, weights, directory):
    """`inference_models.export_sizes` of `model` against the dense network
    with the pretrained `weights` (every connection on), under `directory`."""
    dense = switch_all(weights)
    for layer in dense.switched_layers:
        layer.freeze_mask(np.ones(tuple(layer.kernel.shape), "float32"))
    return inference_models.export_sizes(model, dense, directory)


def measure_step_time(data, batch_size, rounds, window_switches,
                      target=pretrained_report.GOAL_TARGET):
    """Median ms per training step, interleaved (`timing.step_times`): the
    plain Dense LeNet-5 against LeNet-5 with every layer switched under the
    trainer's recipe (`switched_layers="all"`), mid-ramp (`ks_switching`:
    task steps plus a switch step every `switch_every`) and frozen, and the
    library-default model the ks runs train (`ks_library`, planned for a
    5-epoch run), on the same fixed batches."""
    (x, y), _ = data
    n = min(len(x), 4 * batch_size)
    steps_per_epoch = 60000 // batch_size  # as the full benchmark plans
    candidates = {"dense": baselines.compiled(plain_lenet5(baselines.initial_weights(MODEL, 0)))}
    config = bench_runs.recipe(MODEL, target, seed=0, epochs=10, batch_size=batch_size,
                               overrides={"switched_layers": "all"})
    for phase in ("switching", "frozen"):
        candidates[f"ks_{phase}"] = bench_runs.recipe_model(config, steps_per_epoch, phase)
    library = switch_all(baselines.initial_weights(MODEL, 0))
    library.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                    metrics=["accuracy"], target_sparsity=target)
    library.plan(5 * steps_per_epoch)  # what fit(epochs=5) does first
    library.switching_step.assign(steps_per_epoch)
    candidates["ks_library"] = library
    every = candidates["ks_switching"].schedule.switch_every
    steps = every * window_switches
    measured = timing.step_times(candidates, timing.fixed_batches(x[:n], y[:n], batch_size),
                                 steps, rounds)
    return {"ms": measured["ms"], "ratio": measured["ratio"], "switch_every": every,
            "library_switch_every": library.schedule.switch_every, "window_steps": steps,
            "rounds": rounds, "batch_size": batch_size}


def main(argv):
    cli.check_no_arguments(argv)
    cli.check_known("methods", FLAGS.methods, METHODS)
    # SavedModel exports log every asset they write.
    logging.set_verbosity(logging.WARNING)
    tf.get_logger().setLevel("ERROR")
    targets, seeds = [float(v) for v in FLAGS.targets], [int(v) for v in FLAGS.seeds]
    data = cli.load_data()
    cache = cli.run_cache("pretrained", data, sources=("benchmarks/pretrained.py",))
    start = time.perf_counter()
    budget = {"batch_size": FLAGS.batch_size, "learning_rate": FLAGS.learning_rate}
    pretraining = dict(budget, epochs=FLAGS.pretrain_epochs)
    runs, exports = [], []
    for seed in seeds:
        dense, weights = cache.run(
            f"{MODEL}_pretrained_s{seed}", dict(pretraining, seed=seed),
            lambda: pretrain(data, seed, FLAGS.pretrain_epochs, FLAGS.batch_size,
                             FLAGS.learning_rate),
            dict(method="dense", target=None, seed=seed, epochs=FLAGS.pretrain_epochs),
            arrays=True)
        runs.append(dense)
        for target in targets:
            def run(method, train, epochs=FLAGS.epochs, **config):
                """One run from these weights (or, ks_scratch, the init)."""
                fields = dict(method=method, target=target, seed=seed, epochs=epochs)
                runs.append(cache.run(f"{MODEL}_{method}_{target:g}_s{seed}",
                                      dict(fields, **budget, **config), train, fields))
                return runs[-1]

            def train_ks(allocation=None):
                # The exports are sized once per target, on the first seed.
                if seed != seeds[0] or allocation is not None:
                    return prune_ks(weights, data, target, seed, FLAGS.epochs,
                                    FLAGS.batch_size, allocation=allocation)
                with tempfile.TemporaryDirectory(prefix="ks_pretrained_") as tmp:
                    return prune_ks(weights, data, target, seed, FLAGS.epochs,
                                    FLAGS.batch_size, export_dir=tmp)

            if "ks" in FLAGS.methods:
                ks = run("ks", train_ks, pretraining=pretraining, export=seed == seeds[0])
                if "export" in ks:
                    exports.append(dict(ks["export"], target=target, seed=seed))
            if "tfmot" in FLAGS.methods:
                run("tfmot", lambda: prune_tfmot(
                    weights, data, target, seed, FLAGS.epochs, FLAGS.batch_size,
                    FLAGS.learning_rate, FLAGS.tfmot_frequency), pretraining=pretraining,
                    frequency=FLAGS.tfmot_frequency)
            if "gmp_global" in FLAGS.methods:
                run("gmp_global", lambda: prune_gmp(
                    weights, data, target, seed, FLAGS.epochs, FLAGS.batch_size,
                    FLAGS.learning_rate), pretraining=pretraining, layers=LAYERS)
            for allocation in ("magnitude", "erk"):
                if f"ks_{allocation}" in FLAGS.methods:
                    run(f"ks_{allocation}", lambda: train_ks(allocation), pretraining=pretraining)
            if "ks_scratch" in FLAGS.methods:
                run("ks_scratch", lambda: scratch_ks(
                    data, target, seed, FLAGS.scratch_epochs, FLAGS.batch_size),
                    epochs=FLAGS.scratch_epochs, recipe=bench_runs.recipe(
                        MODEL, target, seed, FLAGS.scratch_epochs, {"switched_layers": "all"},
                        batch_size=FLAGS.batch_size).to_dict())
    step_time = None
    if FLAGS.step_time:
        step_time = cache.run("step_time", {
            "batch_size": FLAGS.batch_size, "rounds": FLAGS.step_rounds,
            "window_switches": FLAGS.window_switches,
            "target": pretrained_report.GOAL_TARGET}, lambda: measure_step_time(
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
    pretrained_report.write(runs, exports, step_time, settings, FLAGS.output_dir,
                            markdown=FLAGS.markdown)


if __name__ == "__main__":
    define_flags()
    app.run(main)
