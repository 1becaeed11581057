"""Training step time and peak memory: keras-switch vs Dense (and TFMOT).

    python -m benchmarks.step_time
    python -m benchmarks.step_time --models=lenet300 --rounds=5
    python -m benchmarks.step_time --scale_sweep   # one layer of 1M to 67M weights

Step time: Dense, the recipe's keras-switch model (`switching` and `frozen`
phases) and the library-default model train on the same fixed batches in
one process, in interleaved windows of whole multiples of `switch_every`
(`harness/timing.py`). TFMOT is timed against a Keras 2 Dense model in its
own process. `--jit_compile` compiles every Keras 3 train function with XLA
(its own section of BENCHMARKS.md).

Peak memory: one fresh process per (model, method) trains `--memory_steps`
steps and reports its peak RSS; the ratio is keras-switch / Dense.

`--scale_sweep` measures one switched layer of growing size against its
Dense twin instead (`benchmarks/scale_sweep.py`): step time and extra peak
memory per switched weight.
"""

import json
import resource
import subprocess
import sys

import numpy as np
from absl import app
from absl import flags

from benchmarks import scale_sweep
from benchmarks import tfmot_env
from benchmarks.harness import cli
from benchmarks.harness import data
from benchmarks.harness import report
from benchmarks.harness import tables
from benchmarks.harness import timing

# Keras is imported where a model is built: report_test imports this module.

FLAGS = flags.FLAGS


def define_flags():
    cli.define_models(["lenet300", "lenet5"])
    cli.define_budget(batch_size=128, switch_every=True)
    flags.DEFINE_integer("rounds", 15, "Interleaved timing windows per model.")
    flags.DEFINE_integer("window_switches", 4, "Switch steps per timing window.")
    flags.DEFINE_float("target", 0.95, "Target FC sparsity of the keras-switch model.")
    flags.DEFINE_bool("tfmot", True, "Also time TFMOT (sets up its venv: ~1 min once).")
    flags.DEFINE_integer("memory_steps", 200, "Steps of each peak-memory process.")
    flags.DEFINE_bool("jit_compile", False,
                      "Compile every Keras 3 train function with XLA (Dense and "
                      "keras-switch alike; Keras leaves XLA off on CPU by default).")
    flags.DEFINE_string("output", None, "Results JSON (default: benchmarks/results/"
                        "step_time.json, or step_time_xla.json with --jit_compile).")
    cli.define_data(truncate=False,
                    help="Fashion-MNIST IDX files (the TFMOT process times on them).")
    flags.DEFINE_string("memory_child", None, "Internal: 'model,method' to measure.")
    flags.DEFINE_bool("scale_sweep", False,
                      "Measure one Dense(width) layer switched, for each --scale_widths, "
                      "against Dense (benchmarks/scale_sweep.py) instead of the models.")
    flags.DEFINE_list("scale_widths", ["1024", "2048", "4096", "8192"],
                      "Widths of the sweep's layer (width * width switched weights).")
    flags.DEFINE_integer("scale_steps", 5, "Timed steps per mode of the sweep.")
    flags.DEFINE_string("scale_child", None, "Internal: 'mode,width' to measure.")
    cli.define_markdown("step_time")


# Where --jit_compile --markdown puts its table (report.publish's arguments).
XLA_SECTION = {"section": "step_time_xla",
               "section_command": "python -m benchmarks.step_time --jit_compile --markdown"}
SCALE_SECTION = {"section": "step_time_scale",
                 "section_command": "python -m benchmarks.step_time --scale_sweep --markdown"}
# The models are planned as for the full training set.
TRAIN_EXAMPLES = 60000


def _batches(batch_size, count=4):
    """An endless iterator over `count` fixed random batches."""
    rng = np.random.default_rng(0)
    x = rng.random((count * batch_size, 28, 28), dtype="float32")
    y = rng.integers(0, 10, count * batch_size)
    return timing.fixed_batches(x, y, batch_size)


def _dense_model(model_name):
    """The plain Keras 3 Dense model of `model_name`, compiled."""
    from benchmarks.harness import baselines

    return baselines.compiled(baselines.plain_model(model_name), metrics=None,
                              jit_compile=FLAGS.jit_compile)


def _switched_model(model_name, batch_size, target, phase):
    """The default-recipe keras-switch model of `model_name`, compiled and
    set at `phase` (`runs.recipe_model`: "switching" or "frozen")."""
    from benchmarks.harness import runs

    config = runs.recipe(model_name, target, seed=0, epochs=10,
                         switch_every=FLAGS.switch_every)
    model = runs.recipe_model(config, TRAIN_EXAMPLES // batch_size, phase)
    model.jit_compile = FLAGS.jit_compile
    return model


def _library_default_model(model_name, batch_size, target):
    """keras-switch as a user who reads only README gets it: the library's
    model with a shared `Switcher()`, `compile(target_sparsity=...)` and
    nothing else, planned as `fit()` plans a 10-epoch run, set mid-ramp."""
    import keras

    import keras_switch
    from keras_switch import models

    model = models.MODELS[model_name](switcher=keras_switch.Switcher())
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  target_sparsity=target, jit_compile=FLAGS.jit_compile)
    steps_per_epoch = -(-TRAIN_EXAMPLES // batch_size)
    model.plan(10 * steps_per_epoch)  # what fit(epochs=10) does first
    model.switching_step.assign(steps_per_epoch * 2)
    return model


def measure_step_time(model_name):
    candidates = {"dense": _dense_model(model_name)}
    for phase in ("switching", "frozen"):
        candidates[f"ks_{phase}"] = _switched_model(
            model_name, FLAGS.batch_size, FLAGS.target, phase)
    if FLAGS.switch_every is None:  # the library's own defaults plan the same interval
        candidates["ks_library_default"] = _library_default_model(
            model_name, FLAGS.batch_size, FLAGS.target)
    every = candidates["ks_switching"].schedule.switch_every
    steps = every * FLAGS.window_switches
    measured = timing.step_times(candidates, _batches(FLAGS.batch_size), steps, FLAGS.rounds)
    return {
        "model": model_name,
        "batch_size": FLAGS.batch_size,
        "switch_every": every,
        "window_steps": steps,
        "rounds": FLAGS.rounds,
        "ms_per_step": measured["ms"],
        "ratio_switching": measured["ratio"]["ks_switching"],
        "ratio_frozen": measured["ratio"]["ks_frozen"],
        "ratio_library_default": measured["ratio"].get("ks_library_default"),
        "library_default_switch_every": (candidates["ks_library_default"].schedule.switch_every
                                         if "ks_library_default" in candidates else None),
    }


def _memory_child(spec):
    """Trains one model for --memory_steps steps; prints its peak RSS (MiB)."""
    model_name, method = spec.split(",")
    batches = _batches(FLAGS.batch_size)
    if method == "dense":
        model = _dense_model(model_name)
    else:
        model = _switched_model(model_name, FLAGS.batch_size, FLAGS.target, "switching")
    timing.train_step_ms(model, batches, FLAGS.memory_steps)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"peak_rss_mib": peak_kib / 1024.0}))


def measure_memory(model_name):
    peaks = {}
    for method in ("dense", "ks"):
        output = subprocess.run(
            [sys.executable, "-m", "benchmarks.step_time",
             f"--memory_child={model_name},{method}",
             f"--batch_size={FLAGS.batch_size}",
             f"--memory_steps={FLAGS.memory_steps}"]
            + ([f"--switch_every={FLAGS.switch_every}"] if FLAGS.switch_every else []),
            check=True, capture_output=True, text=True,
        ).stdout
        peaks[method] = json.loads(output.strip().splitlines()[-1])["peak_rss_mib"]
    return {"peak_rss_mib": peaks, "ratio": peaks["ks"] / peaks["dense"]}


def main(argv):
    cli.check_no_arguments(argv)
    if FLAGS.memory_child:
        _memory_child(FLAGS.memory_child)
        return
    if FLAGS.scale_child:
        mode, width = FLAGS.scale_child.split(",")
        print(json.dumps(scale_sweep.child(mode, int(width), FLAGS.batch_size,
                                           FLAGS.scale_steps)))
        return
    if FLAGS.scale_sweep:
        results = scale_sweep.sweep([int(w) for w in FLAGS.scale_widths], FLAGS.batch_size,
                                    FLAGS.scale_steps)
        report.publish("step_time", FLAGS.output or "benchmarks/results/step_time_scale.json",
                       {"results": results}, scale_section, FLAGS.markdown, **SCALE_SECTION)
        return
    results = []
    for model_name in FLAGS.models:
        result = measure_step_time(model_name)
        result["memory"] = measure_memory(model_name)
        if FLAGS.tfmot:
            from benchmarks.harness import baselines

            arrays = data.load_data(FLAGS.data_dir, max_test=256)
            init = baselines.initial_weights(model_name, seed=0)
            result["tfmot"] = tfmot_env.step_time(model_name, FLAGS.batch_size, arrays, init)
        results.append(result)
        ms = result["ms_per_step"]
        print(f"{model_name}: dense {ms['dense']:.2f} ms, keras-switch switching "
              f"{ms['ks_switching']:.2f} ms ({result['ratio_switching']:.2f}x), frozen "
              f"{ms['ks_frozen']:.2f} ms ({result['ratio_frozen']:.2f}x); peak RSS "
              f"{result['memory']['ratio']:.2f}x", flush=True)
        if "tfmot" in result:
            print(f"{model_name}: TFMOT/Dense (Keras 2) {result['tfmot']['ratio']:.2f}x")
    output = FLAGS.output or "benchmarks/results/step_time{}.json".format(
        "_xla" if FLAGS.jit_compile else "")
    # With XLA, its own section: the default table stays Keras' default.
    placement = XLA_SECTION if FLAGS.jit_compile else {}
    payload = {"results": results}
    report.publish("step_time", output, payload, section, FLAGS.markdown, **placement)


def markdown_table(results):
    # Results measured before issue 17 have no library-default column.
    library_column = any("ratio_library_default" in r for r in results)
    rows = []
    for r in results:
        ms, memory = r["ms_per_step"], r["memory"]
        tfmot = library = tables.DASH
        if r.get("ratio_library_default") is not None:
            library = (f"{ms['ks_library_default']:.2f} (**{r['ratio_library_default']:.2f}x**, "
                       f"every {r['library_default_switch_every']})")
        if "tfmot" in r:
            tfmot = (f"{r['tfmot']['tfmot_ms']:.2f} / {r['tfmot']['dense_ms']:.2f} ms "
                     f"(**{r['tfmot']['ratio']:.2f}x**)")
        rows.append([r["model"], r["batch_size"], f"{ms['dense']:.2f}",
                     f"{ms['ks_switching']:.2f} (**{r['ratio_switching']:.2f}x**)",
                     f"{ms['ks_frozen']:.2f} ({r['ratio_frozen']:.2f}x)", r["switch_every"],
                     *([library] if library_column else []),
                     f"{memory['peak_rss_mib']['dense']:.0f} / "
                     f"{memory['peak_rss_mib']['ks']:.0f} ({memory['ratio']:.2f}x)", tfmot])
    return tables.table(
        ["model", "batch", "Dense ms/step", "keras-switch switching ms/step (ratio)",
         "keras-switch frozen ms/step (ratio)", "switch_every",
         *(["`compile(target_sparsity=...)` only, switching ms/step (ratio)"]
           if library_column else []),
         "peak RSS Dense / keras-switch MiB (ratio)", "TFMOT / Dense (Keras 2, own process)"],
        rows)


# tests/benchmarks/report_test.py makes the sections again by these names.
section = report.results_section(markdown_table)
scale_section = report.results_section(scale_sweep.markdown_table)


if __name__ == "__main__":
    define_flags()
    app.run(main)
