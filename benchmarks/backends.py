"""keras-switch on each Keras backend, side by side: LeNet-300-100 on
Fashion-MNIST with the recipe at 95% and 99%, seeds 0-2, trained on
TensorFlow, JAX and PyTorch from the same task-network init on the same
batches.

    python -m benchmarks.backends                    # the table (~14 min, 2 cores)
    python -m benchmarks.backends --seeds=0 --targets=0.95 --epochs=2   # a smoke run

Each backend runs in its own process (KERAS_BACKEND is fixed per process),
one after the other. Per backend: test accuracy and FC sparsity of every
run, its wall time per epoch (the median over epochs after the first, which
compiles), and the training step time of keras-switch (the recipe at 95%,
mid-ramp) against the plain Dense model on the same backend, interleaved
in one process (`harness.timing`). Both networks start from the same init
on every backend (the task network's and the switcher's, drawn once by
this process), so the backends differ only in their arithmetic.

Writes `results.json` to `--output_dir`; with `--markdown`, BENCHMARKS.md's
section.
"""

import json
import os
import statistics
import subprocess
import sys
import time

from absl import app
from absl import flags

from benchmarks.harness import cli
from benchmarks.harness import report
from benchmarks.harness import stats
from benchmarks.harness import tables

BACKENDS = ("tensorflow", "jax", "torch")
MODEL = "lenet300"
# The step-time model: the recipe at 95%, two epochs in (mid-ramp).
STEP_TARGET = 0.95
# Targets (issue's): accuracy and sparsity the same within |mean paired
# difference| <= 0.2 pt, and ks / Dense step time <= 1.2x on each backend.
MAX_ACCURACY_GAP = 0.2
MAX_STEP_RATIO = 1.2

FLAGS = flags.FLAGS


def define_flags():
    flags.DEFINE_list("backends", list(BACKENDS), f"Keras backends, of {BACKENDS}.")
    flags.DEFINE_list("targets", ["0.95", "0.99"], "Target FC sparsities.")
    flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds (init, data order).")
    flags.DEFINE_integer("rounds", 15, "Interleaved rounds of the step timing.")
    flags.DEFINE_integer("window_switches", 4,
                         "Switch intervals in each timed window of the step timing.")
    flags.DEFINE_string("worker", None, "Internal: train on this backend in this process.")
    cli.define_budget(epochs=10, batch_size=128)
    cli.define_data()
    cli.define_cache("benchmarks/results/backends")
    cli.define_markdown("backends")


class EpochSeconds:
    """A Keras callback recording each epoch's wall seconds in `seconds`."""

    def __new__(cls):
        import keras

        class _Callback(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.seconds = []

            def on_epoch_begin(self, epoch, logs=None):
                self._start = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                self.seconds.append(time.perf_counter() - self._start)

        return _Callback()


def _inits_path(seed, part):
    return os.path.join(FLAGS.output_dir, "inits", f"{MODEL}_{part}_s{seed}.npz")


def _write_inits():
    """The init of every seed, drawn once in this process for every backend's
    worker: the task network's (`baselines.initial_weights`) and the
    switcher's (the recipe model's, as the seed draws it here)."""
    import keras
    import numpy as np

    from benchmarks.harness import baselines
    from benchmarks.harness import runs as bench_runs
    from trainers import train_lib

    for seed in [int(s) for s in FLAGS.seeds]:
        os.makedirs(os.path.dirname(_inits_path(seed, "task")), exist_ok=True)
        np.savez(_inits_path(seed, "task"), *baselines.initial_weights(MODEL, seed))
        keras.utils.set_random_seed(seed)
        config = bench_runs.recipe(MODEL, STEP_TARGET, seed, FLAGS.epochs)
        model = train_lib.build_model(config, (28, 28))
        np.savez(_inits_path(seed, "switcher"),
                 *[keras.ops.convert_to_numpy(v) for v in model.switcher_variables])


def _read_inits(seed, part):
    import numpy as np

    with np.load(_inits_path(seed, part)) as stored:
        return [stored[f"arr_{i}"] for i in range(len(stored.files))]


def _worker():
    """Trains every (target, seed) on this process's backend and times the
    step: writes `worker_<backend>.json` to --output_dir."""
    import keras
    import numpy as np

    from benchmarks.harness import baselines
    from benchmarks.harness import runs as bench_runs
    from benchmarks.harness import timing

    backend = keras.backend.backend()
    if backend != FLAGS.worker:
        raise app.UsageError(f"--worker={FLAGS.worker} runs with KERAS_BACKEND={backend}")
    data = cli.load_data()
    cache = cli.run_cache("backends", data)
    results = []
    for seed in [int(s) for s in FLAGS.seeds]:
        init, switcher_init = _read_inits(seed, "task"), _read_inits(seed, "switcher")
        for target in [float(t) for t in FLAGS.targets]:
            def train(target=target, seed=seed, init=init, switcher_init=switcher_init):
                timer = EpochSeconds()
                result = bench_runs.train_switch(MODEL, data, target, seed, FLAGS.epochs, init,
                                                 batch_size=FLAGS.batch_size,
                                                 callbacks=lambda model: [timer],
                                                 switcher_init=switcher_init)
                result["epoch_seconds"] = timer.seconds
                return result

            fields = dict(backend=backend, model=MODEL, target=target, seed=seed,
                          epochs=FLAGS.epochs)
            config = dict(fields, batch_size=FLAGS.batch_size,
                          init=[float(np.sum(w)) for w in init + switcher_init])
            results.append(cache.run(f"{backend}_{MODEL}_ks_{target:g}_s{seed}", config,
                                     train, fields))
    config = bench_runs.recipe(MODEL, STEP_TARGET, seed=0, epochs=10)
    steps_per_epoch = -(-60000 // config.batch_size)
    candidates = {
        "dense": baselines.compiled(baselines.plain_model(MODEL), metrics=None),
        "ks": bench_runs.recipe_model(config, steps_per_epoch, "switching"),
    }
    rng = np.random.default_rng(0)
    x = rng.random((4 * config.batch_size, 28, 28), dtype="float32")
    y = rng.integers(0, 10, 4 * config.batch_size).astype("int32")
    every = candidates["ks"].schedule.switch_every
    step = timing.step_times(candidates, timing.fixed_batches(x, y, config.batch_size),
                             every * FLAGS.window_switches, FLAGS.rounds)
    step.update(switch_every=every, batch_size=config.batch_size, rounds=FLAGS.rounds,
                window_steps=every * FLAGS.window_switches)
    report.write_json(os.path.join(FLAGS.output_dir, f"worker_{backend}.json"),
                      {"runs": results, "step_time": step})


def _run_worker(backend):
    """This benchmark with --worker=`backend` in a process on that backend."""
    argv = [a for a in sys.argv[1:] if not a.startswith(("--markdown", "--nomarkdown"))]
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run([sys.executable, "-m", "benchmarks.backends", *argv,
                           f"--worker={backend}", f"--output_dir={FLAGS.output_dir}"],
                          cwd=report.ROOT, env=env)
    if done.returncode != 0:
        raise SystemExit(f"the {backend} worker failed (exit {done.returncode})")
    with open(os.path.join(FLAGS.output_dir, f"worker_{backend}.json")) as f:
        return json.load(f)


def summarise(workers, targets):
    """Per target: each backend's mean accuracy and sparsity, and each other
    backend's paired difference from the first of `workers` ({backend: its
    worker's JSON}); per backend: epoch seconds and the step ratio, each
    against its target."""
    first = next(iter(workers))
    summary = {"accuracy": [], "backends": {}}
    for target in targets:
        row = {"target": target}
        for backend, worker in workers.items():
            runs = [r for r in worker["runs"] if r["target"] == target]
            row[backend] = {"accuracy": stats.mean([r["test_accuracy"] for r in runs]),
                            "fc_sparsity": stats.mean([r["fc_sparsity"] for r in runs])}
        for backend in workers:
            if backend == first:
                continue
            seeds, differences, mean, error = stats.paired(
                stats.by_seed(workers[backend]["runs"], target=target),
                stats.by_seed(workers[first]["runs"], target=target))
            row[f"{backend}_minus_{first}"] = {
                "seeds": seeds, "differences": differences, "mean": mean, "se": error,
                "met": abs(mean) <= MAX_ACCURACY_GAP}
        summary["accuracy"].append(row)
    for backend, worker in workers.items():
        epochs = [statistics.median(r["epoch_seconds"][1:]) for r in worker["runs"]]
        ratio = worker["step_time"]["ratio"]["ks"]
        summary["backends"][backend] = {
            "epoch_seconds": statistics.median(epochs),
            "step_ms": worker["step_time"]["ms"],
            "step_ratio": ratio,
            "step_ratio_met": ratio <= MAX_STEP_RATIO,
        }
    return summary


def section(payload):
    summary, first = payload["summary"], payload["backends"][0]
    others = payload["backends"][1:]
    header = (["target"] + [f"{b} accuracy (sparsity)" for b in payload["backends"]]
              + [f"{b} − {first}, pt" for b in others])
    rows = []
    for row in summary["accuracy"]:
        cells = [tables.target(row["target"])]
        cells += [f"{row[b]['accuracy']:.4f} ({row[b]['fc_sparsity']:.4f})"
                  for b in payload["backends"]]
        for b in others:
            paired = row[f"{b}_minus_{first}"]
            cells.append(f"{tables.signed(paired['mean'], paired['se'])} "
                         f"({'met' if paired['met'] else 'missed'})")
        rows.append(cells)
    accuracy = tables.table(header, rows)
    speed = tables.table(
        ["backend", "Dense ms/step", "ks ms/step", "ks / Dense", "s / epoch"],
        [[b, f"{s['step_ms']['dense']:.2f}", f"{s['step_ms']['ks']:.2f}",
          f"{s['step_ratio']:.2f}x ({'met' if s['step_ratio_met'] else 'missed'})",
          f"{s['epoch_seconds']:.1f}"] for b, s in summary["backends"].items()])
    seeds = ", ".join(str(s) for s in payload["seeds"])
    about = (f"\n\nLeNet-300-100 on Fashion-MNIST, the recipe, {payload['epochs']} epochs, "
             f"seeds {seeds}: test accuracy and FC sparsity (means), and the paired "
             f"difference in points (mean ± standard error; target |Δ| ≤ {MAX_ACCURACY_GAP}). "
             f"Step time: the recipe at {STEP_TARGET:.0%} mid-ramp against the plain Dense "
             f"model on the same backend, interleaved (target ≤ {MAX_STEP_RATIO}x); "
             "s / epoch: median wall time of an epoch after the first.")
    return about, accuracy + "\n\n" + speed


def main(argv):
    cli.check_no_arguments(argv)
    cli.check_known("backends", FLAGS.backends, BACKENDS)
    if FLAGS.worker:
        _worker()
        return
    _write_inits()
    workers = {backend: _run_worker(backend) for backend in FLAGS.backends}
    payload = {"backends": list(FLAGS.backends), "targets": [float(t) for t in FLAGS.targets],
               "seeds": [int(s) for s in FLAGS.seeds], "epochs": FLAGS.epochs,
               "workers": workers,
               "summary": summarise(workers, [float(t) for t in FLAGS.targets])}
    report.publish("backends", os.path.join(FLAGS.output_dir, "results.json"), payload, section,
                   FLAGS.markdown)


if __name__ == "__main__":
    define_flags()
    app.run(main)
