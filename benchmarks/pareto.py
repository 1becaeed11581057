r"""Accuracy vs FC sparsity: keras-switch against dense, TFMOT and simple
baselines, trained side by side with the same budget, init and data.

    python -m benchmarks.pareto                       # the full table (hours)
    python -m benchmarks.pareto --models=lenet300 --targets=0.95 --seeds=0

Methods (`--methods`):

    dense         plain Keras 3 Dense model
    tfmot         TFMOT 0.8.1 prune_low_magnitude (Keras 2, its own venv and
                  process; `benchmarks/tfmot_env.py` sets it up)
    gmp_global    gradual global magnitude pruning (one threshold over all
                  FC kernels), our Keras 3 code
    ks            keras-switch with the trainer's default recipe
                  (configs/common.py) at each target, and once with no
                  target (the pure task objective); plus any `--variants`
                  (ablations, on `--variant_models`)
    gmp_at_ks     gradual magnitude pruning at the per-layer sparsities
                  keras-switch learned (same model, target, seed)
    random_at_ks  gradual pruning with random scores at those per-layer
                  sparsities (a control)

Every run is one JSON file in `--output_dir/runs/` and is reused when it
exists (`--rerun` to train again), so a long benchmark can be stopped and
resumed. At the end the script writes `results.json`, `pareto.png` and the
tables, and, with `--markdown`, replaces the generated section of
BENCHMARKS.md.
"""

import json
import os

from absl import app
from absl import flags

from benchmarks import common
from benchmarks import pareto_report

METHODS = ("dense", "tfmot", "gmp_global", "ks", "gmp_at_ks", "random_at_ks")
# Ablations of the keras-switch recipe: name -> config overrides.
# Every ablation before issue 17 made allocation="erk" the default was
# measured with the magnitude split: `_MAGNITUDE` pins it so they stay what
# they were.
_MAGNITUDE = {"allocation": "magnitude"}
_NEIGHBOUR_FEATURES = ("magnitude", "row", "column", "fan_in", "fan_out", "unit_in", "unit_out")
VARIANTS = {
    # Measured at the recipe's previous interval (a switch step every 50);
    # pinned so that they stay what they were.
    "ks_prior_only": {"switch_optimizer.learning_rate": 0.0, "schedule.switch_every": 50,
                      **_MAGNITUDE},
    "ks_learned_allocation": {"allocation": "learned", "schedule.switch_every": 50},
    "ks_dense_grad": {"train_pruned_weights": True, "schedule.switch_every": 50, **_MAGNITUDE},
    "ks_switch_every_10": {"schedule.switch_every": 10, **_MAGNITUDE},
    "ks_switch_every_50": {"schedule.switch_every": 50, **_MAGNITUDE},
    "ks_switch_lr_1e-2": {"switch_optimizer.learning_rate": 1e-2, "schedule.switch_every": 50,
                          **_MAGNITUDE},
    "ks_switch_lr_1e-1": {"switch_optimizer.learning_rate": 1e-1, "schedule.switch_every": 50,
                          **_MAGNITUDE},
    "ks_warmup_1": {"schedule.warmup_epochs": 1, "schedule.ramp_epochs": 7,
                    "schedule.switch_every": 50, **_MAGNITUDE},
    "ks_lr2_32x32": {"switch_optimizer.learning_rate": 1e-2, "switcher.hidden_units": (32, 32),
                     "schedule.switch_every": 50, **_MAGNITUDE},
    "ks_lr2_every_100": {"switch_optimizer.learning_rate": 1e-2, "schedule.switch_every": 100,
                         **_MAGNITUDE},
    "ks_lr2_every_20": {"switch_optimizer.learning_rate": 1e-2, "schedule.switch_every": 20,
                        **_MAGNITUDE},
    # No frozen tail: the switcher keeps updating the mask at the target
    # density through the last 2 epochs.
    "ks_no_freeze": {"schedule.freeze_epochs": 0, **_MAGNITUDE},
    # The switch step's straight-through gradient is 1 for every switch
    # instead of sigmoid'(logit).
    "ks_identity_estimator": {"switch_estimator": "identity", **_MAGNITUDE},
    # Issue 17's levers at 99-99.5%, at the recipe's interval (100): a
    # larger, faster-learning switcher; a weaker magnitude prior, so that
    # the learned correction weighs more against |w|.
    "ks_switcher_lr2_32x32": {"switch_optimizer.learning_rate": 1e-2,
                              "switcher.hidden_units": (32, 32), **_MAGNITUDE},
    "ks_prior_half": {"switcher.magnitude_prior": 0.5, **_MAGNITUDE},
    # Knowledge from the neighbouring layers: the live weight into the
    # connection's input unit (previous layer) and out of its output unit
    # (next layer), on the recipe (ERK split); and with a 10x faster switcher.
    "ks_neighbours": {"switcher.features": _NEIGHBOUR_FEATURES},
    "ks_neighbours_lr2": {"switcher.features": _NEIGHBOUR_FEATURES,
                          "switch_optimizer.learning_rate": 1e-2},
    # The switcher's one threshold over all its scores also decides the
    # per-layer split.
    "ks_learned_allocation_100": {"allocation": "learned"},
    # The recipe before issue 17: global magnitude pruning's split (the
    # switcher picks within each layer), against ERK's now.
    "ks_magnitude": dict(_MAGNITUDE),
}

FLAGS = flags.FLAGS
flags.DEFINE_list("models", list(common.MODELS), "Models: lenet300, lenet5.")
flags.DEFINE_list("targets", ["0.9", "0.95", "0.98", "0.99", "0.995"],
                  "Target FC sparsities.")
# Five seeds: the paired ks - gmp_global differences have a standard error of
# ~0.1 pt with five (BENCHMARKS.md); two could not tell 0.2 pt apart.
flags.DEFINE_list("seeds", ["0", "1", "2", "3", "4"], "Seeds (init, data order).")
flags.DEFINE_list("methods", list(METHODS), f"Methods, of {METHODS}.")
flags.DEFINE_list("variants", [], f"keras-switch ablations, of {sorted(VARIANTS)}.")
flags.DEFINE_list("variant_models", ["lenet300"], "Models the --variants run on.")
flags.DEFINE_integer("epochs", 10, "Epochs of every run (the same budget).")
flags.DEFINE_integer("batch_size", 128, "Batch size of every method.")
flags.DEFINE_integer("switch_every", None,
                     "Mask update interval of keras-switch and the gradual "
                     "baselines (default: the recipe's schedule.switch_every).")
flags.DEFINE_float("learning_rate", 1e-3, "Adam learning rate of the baselines.")
flags.DEFINE_string("data_dir", "/usr/share/datasets/fashion-mnist",
                    "Directory of the Fashion-MNIST IDX files.")
flags.DEFINE_integer("max_train_examples", None, "Truncate the training set (smoke runs).")
flags.DEFINE_integer("max_test_examples", None, "Truncate the test set (smoke runs).")
flags.DEFINE_string("output_dir", "benchmarks/results/pareto", "Where runs and results go.")
flags.DEFINE_bool("rerun", False, "Train again even where a run's JSON exists.")
flags.DEFINE_bool("markdown", False, "Rewrite the generated section of BENCHMARKS.md.")


def _run_path(model, method, target, seed):
    target = "dense" if target is None else f"{target:g}"
    return os.path.join(FLAGS.output_dir, "runs", f"{model}_{method}_{target}_s{seed}.json")


def _cached(model, method, target, seed, train):
    """Loads the run's JSON, or trains it (`train()`) and writes it."""
    path = _run_path(model, method, target, seed)
    if os.path.exists(path) and not FLAGS.rerun:
        with open(path) as f:
            return json.load(f)
    print(f"[pareto] {model} {method} target={target} seed={seed} ...", flush=True)
    result = train()
    result.update(model=model, method=method, target=target, seed=seed,
                  epochs=FLAGS.epochs)
    common.write_json(path, result)
    print(f"[pareto]   acc {result['test_accuracy']:.4f} at FC sparsity "
          f"{result['fc_sparsity']:.4f} ({result['train_seconds']} s)", flush=True)
    return result


def _tfmot(model, target, seed, data, init):
    from benchmarks import tfmot_env  # stdlib only: safe in this process

    return tfmot_env.train(
        model=model, target=target, seed=seed, data=data, init=init,
        epochs=FLAGS.epochs, batch_size=FLAGS.batch_size,
        learning_rate=FLAGS.learning_rate,
    )


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    unknown = sorted(set(FLAGS.methods) - set(METHODS))
    unknown += sorted(set(FLAGS.variants) - set(VARIANTS))
    unknown += sorted(set(FLAGS.models) - set(common.MODELS))
    if unknown:
        raise app.UsageError(
            f"Unknown method/variant/model {unknown}; methods: {METHODS}, "
            f"variants: {sorted(VARIANTS)}, models: {common.MODELS}")
    targets = [float(t) for t in FLAGS.targets]
    seeds = [int(s) for s in FLAGS.seeds]
    data = common.load_data(FLAGS.data_dir, FLAGS.max_train_examples,
                            FLAGS.max_test_examples)
    steps_per_epoch = -(-len(data[0][0]) // FLAGS.batch_size)
    runs = []
    for model in FLAGS.models:
        for seed in seeds:
            init = common.initial_weights(model, seed)
            plain = dict(data=data, seed=seed, epochs=FLAGS.epochs,
                         batch_size=FLAGS.batch_size,
                         learning_rate=FLAGS.learning_rate, init=init)
            if "dense" in FLAGS.methods:
                runs.append(_cached(model, "dense", None, seed,
                                    lambda: common.train_plain(model, **plain)))
            if "ks" in FLAGS.methods:  # the pure task objective: no target
                runs.append(_cached(model, "ks", None, seed, lambda: common.train_switch(
                    model, data, None, seed, FLAGS.epochs, init,
                    switch_every=FLAGS.switch_every, batch_size=FLAGS.batch_size)))
            for target in targets:
                config = common.recipe(model, target, seed, FLAGS.epochs,
                                       switch_every=FLAGS.switch_every,
                                       batch_size=FLAGS.batch_size)
                ramp = config.schedule.ramp_epochs * steps_per_epoch
                every = config.schedule.switch_every

                def pruning(criterion, allocation):
                    return lambda layers: common.GradualPruning(
                        layers, criterion, allocation, target, ramp, every,
                        power=config.schedule.ramp_power, seed=seed)

                if "tfmot" in FLAGS.methods:
                    runs.append(_cached(model, "tfmot", target, seed,
                                        lambda: _tfmot(model, target, seed, data, init)))
                if "gmp_global" in FLAGS.methods:
                    runs.append(_cached(
                        model, "gmp_global", target, seed,
                        lambda: common.train_plain(
                            model, pruning=pruning("magnitude", "global"), **plain)))
                ks = None
                names = ["ks"] if {"ks", "gmp_at_ks", "random_at_ks"} & set(FLAGS.methods) else []
                if model in FLAGS.variant_models:
                    names += FLAGS.variants
                for name in names:
                    overrides = VARIANTS.get(name, {})
                    result = _cached(model, name, target, seed, lambda: common.train_switch(
                        model, data, target, seed, FLAGS.epochs, init, overrides,
                        FLAGS.switch_every, FLAGS.batch_size))
                    runs.append(result)
                    ks = result if name == "ks" else ks
                for method, criterion in (("gmp_at_ks", "magnitude"),
                                          ("random_at_ks", "random")):
                    if method in FLAGS.methods:
                        runs.append(_cached(
                            model, method, target, seed,
                            lambda: common.train_plain(
                                model, pruning=pruning(criterion, ks["layer_sparsity"]),
                                **plain)))
    pareto_report.write(runs, FLAGS.output_dir, markdown=FLAGS.markdown)


if __name__ == "__main__":
    app.run(main)
