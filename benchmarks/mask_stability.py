"""How much keras-switch's masks move: connections switched back on.

    python -m benchmarks.mask_stability
    python -m benchmarks.mask_stability --models=lenet300 --targets=0.98 --seeds=0,1

Trains the trainer's default recipe (the `ks` runs of `benchmarks.pareto`)
and compares the masks before and after every step that can move them:
how many connections each switched off, and how many back on ("revived").
"""

import math

from absl import app
from absl import flags

from benchmarks.harness import cli
from benchmarks.harness import lenet
from benchmarks.harness import report
from benchmarks.harness import tables

# Keras is imported where a model trains: report_test imports this module.

FLAGS = flags.FLAGS


def define_flags():
    cli.define_models(["lenet300"])
    flags.DEFINE_list("targets", ["0.95", "0.98"], "Target FC sparsities.")
    flags.DEFINE_list("seeds", ["0"], "Seeds (init, data order).")
    cli.define_budget(epochs=10, switch_every=True)
    cli.define_data()
    flags.DEFINE_string("output", "benchmarks/results/mask_stability.json", "Results JSON.")
    cli.define_markdown("mask_stability")


def _flip_counter(model):
    """A callback recording, per step that can move the masks, the
    connections it switched on and off (over all switched layers of
    `model`)."""
    import keras
    import numpy as np

    class FlipCounter(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.updates = []  # (step, switched on, switched off, kept)
            self._before = None

        def _masks(self):
            return [keras.ops.convert_to_numpy(layer.mask) > 0.5
                    for layer in model.switched_layers]

        def on_train_batch_begin(self, batch, logs=None):
            step = int(keras.ops.convert_to_numpy(model.switching_step))
            phase = model.schedule(step)
            # Masks change on switch steps and the first switching step.
            moves = phase.switch or phase.mask == "switcher"
            self._before = self._masks() if moves else None

        def on_train_batch_end(self, batch, logs=None):
            if self._before is None:
                return
            step = int(keras.ops.convert_to_numpy(model.switching_step)) - 1
            after = self._masks()
            on = sum(int(np.sum(a & ~b)) for a, b in zip(after, self._before))
            off = sum(int(np.sum(~a & b)) for a, b in zip(after, self._before))
            kept = sum(int(np.sum(a)) for a in after)
            self.updates.append((step, on, off, kept))

    return FlipCounter()


def measure(model_name, target, seed, data):
    """One keras-switch run of the recipe at `target`, its mask moves
    counted: the row of the table, and every update (step, switched on,
    switched off, kept)."""
    from benchmarks.harness import baselines
    from benchmarks.harness import runs as bench_runs

    (x, _), _ = data
    counter = {}

    def callbacks(model):
        counter["callback"] = _flip_counter(model)
        return [counter["callback"]]

    init = baselines.initial_weights(model_name, seed)
    result = bench_runs.train_switch(model_name, data, target, seed, FLAGS.epochs, init,
                                     switch_every=FLAGS.switch_every, callbacks=callbacks)
    config = bench_runs.recipe(model_name, target, seed, FLAGS.epochs,
                               switch_every=FLAGS.switch_every)
    steps_per_epoch = math.ceil(len(x) / config.batch_size)
    ramp_end = (config.schedule.warmup_epochs + config.schedule.ramp_epochs) * steps_per_epoch
    updates = counter["callback"].updates
    after_ramp = [u for u in updates if u[0] >= ramp_end]
    # The second half of the (cubic) ramp: the mask mostly settled.
    late_ramp = [u for u in updates if ramp_end / 2 <= u[0] < ramp_end]
    kept = updates[-1][3] if updates else None
    return {
        "model": model_name, "target": target, "seed": seed,
        "test_accuracy": result["test_accuracy"], "fc_sparsity": result["fc_sparsity"],
        "mask_updates": len(updates), "kept_final": kept,
        "revived_total": sum(u[1] for u in updates),
        "switched_off_total": sum(u[2] for u in updates),
        "revived_late_ramp": sum(u[1] for u in late_ramp),
        "revived_after_ramp": sum(u[1] for u in after_ramp),
        "revived_late_ramp_of_kept": (sum(u[1] for u in late_ramp) / kept) if kept else None,
        "updates": updates,
    }


def markdown_table(rows):
    return tables.table(
        ["model", "target", "seed", "test acc", "mask updates", "switched off (total)",
         "revived (total)", "revived, 2nd half of ramp (of final kept)", "revived after ramp"],
        [[r["model"], f"{r['target']:.2f}", r["seed"], f"{r['test_accuracy']:.4f}",
          r["mask_updates"], r["switched_off_total"], r["revived_total"],
          f"{r['revived_late_ramp']} ({tables.number(r['revived_late_ramp_of_kept'], '.1%')} "
          f"of {r['kept_final']})", r["revived_after_ramp"]] for r in rows])


# tests/benchmarks/report_test.py makes the section again by this name.
section = report.results_section(markdown_table)


def main(argv):
    cli.check_no_arguments(argv)
    cli.check_known("models", FLAGS.models, lenet.MODELS)
    data = cli.load_data()
    rows = []
    for model_name in FLAGS.models:
        for target in [float(v) for v in FLAGS.targets]:
            for seed in [int(v) for v in FLAGS.seeds]:
                rows.append(measure(model_name, target, seed, data))
                print(markdown_table(rows[-1:]).splitlines()[-1], flush=True)
    payload = {"results": rows}
    report.publish("mask_stability", FLAGS.output, payload, section, FLAGS.markdown)


if __name__ == "__main__":
    define_flags()
    app.run(main)
