"""Accuracy vs FC sparsity: keras-switch against dense, TFMOT and simple
baselines, trained side by side with the same budget, init and data.

    python -m benchmarks.pareto                       # the full table (hours)
    python -m benchmarks.pareto --models=lenet300 --targets=0.95 --seeds=0

Methods (`--methods`):

    dense         plain Keras 3 Dense model
    tfmot         TFMOT prune_low_magnitude (Keras 2, its own venv: tfmot_env)
    gmp_global    gradual global magnitude pruning, our Keras 3 code
    ks            keras-switch with the trainer's default recipe at each
                  target and with none; plus any `--variants` (ablations)
    gmp_at_ks     gradual magnitude pruning at the per-layer sparsities
                  keras-switch learned (same model, target, seed)
    random_at_ks  the same with random scores (a control)

Writes `results.json`, `pareto.png` and the tables to `--output_dir`; with
`--markdown`, BENCHMARKS.md's section.
"""

from absl import app
from absl import flags

from benchmarks import pareto_report
from benchmarks import tfmot_env  # stdlib only: safe in this Keras 3 process
from benchmarks.harness import baselines
from benchmarks.harness import cli
from benchmarks.harness import runs as bench_runs

METHODS = ("dense", "tfmot", "gmp_global", "ks", "gmp_at_ks", "random_at_ks")
# Ablations of the keras-switch recipe: name -> config overrides. Those
# measured before ERK became the default pin the magnitude split.
_MAGNITUDE = {"allocation": "magnitude"}
_NEIGHBOUR_FEATURES = ("magnitude", "row", "column", "fan_in", "fan_out", "unit_in", "unit_out")
VARIANTS = {
    # Measured at the recipe's previous interval (50), pinned.
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
    # No frozen tail: the mask keeps moving through the last 2 epochs.
    "ks_no_freeze": {"schedule.freeze_epochs": 0, **_MAGNITUDE},
    # Straight-through gradient 1 instead of sigmoid'(logit).
    "ks_identity_estimator": {"switch_estimator": "identity", **_MAGNITUDE},
    # Issue 17's levers at 99-99.5%: a larger, faster switcher; a weaker prior.
    "ks_switcher_lr2_32x32": {"switch_optimizer.learning_rate": 1e-2,
                              "switcher.hidden_units": (32, 32), **_MAGNITUDE},
    "ks_prior_half": {"switcher.magnitude_prior": 0.5, **_MAGNITUDE},
    # Features from the neighbouring layers' live weights; and a 10x faster switcher.
    "ks_neighbours": {"switcher.features": _NEIGHBOUR_FEATURES},
    "ks_neighbours_lr2": {"switcher.features": _NEIGHBOUR_FEATURES,
                          "switch_optimizer.learning_rate": 1e-2},
    # The switcher's one threshold also decides the per-layer split.
    "ks_learned_allocation_100": {"allocation": "learned"},
    # The recipe before issue 17: global magnitude pruning's split.
    "ks_magnitude": dict(_MAGNITUDE),
}

FLAGS = flags.FLAGS


def define_flags():
    cli.define_models(baselines.MODELS)
    flags.DEFINE_list("targets", ["0.9", "0.95", "0.98", "0.99", "0.995"],
                      "Target FC sparsities.")
    # Five seeds: a paired standard error of ~0.1 pt (BENCHMARKS.md).
    flags.DEFINE_list("seeds", ["0", "1", "2", "3", "4"], "Seeds (init, data order).")
    flags.DEFINE_list("methods", list(METHODS), f"Methods, of {METHODS}.")
    flags.DEFINE_list("variants", [], f"keras-switch ablations, of {sorted(VARIANTS)}.")
    flags.DEFINE_list("variant_models", ["lenet300"], "Models the --variants run on.")
    cli.define_budget(epochs=10, batch_size=128, learning_rate=1e-3, switch_every=True)
    cli.define_data()
    cli.define_cache("benchmarks/results/pareto")
    cli.define_markdown("pareto")


def main(argv):
    cli.check_no_arguments(argv)
    cli.check_known("methods", FLAGS.methods, METHODS)
    cli.check_known("variants", FLAGS.variants, VARIANTS)
    cli.check_known("models", FLAGS.models, baselines.MODELS)
    data = cli.load_data()
    cache = cli.run_cache("pareto", data)
    budget = {"epochs": FLAGS.epochs, "batch_size": FLAGS.batch_size,
              "learning_rate": FLAGS.learning_rate, "switch_every": FLAGS.switch_every}
    steps_per_epoch = -(-len(data[0][0]) // FLAGS.batch_size)
    runs = []

    def run(model, method, target, seed, train, **config):
        """Runs (or reuses) one run; its config is the budget and `config`."""
        fields = dict(model=model, method=method, target=target, seed=seed,
                      epochs=FLAGS.epochs)
        name = f"{model}_{method}_{'dense' if target is None else f'{target:g}'}_s{seed}"
        runs.append(cache.run(name, dict(fields, **budget, **config), train, fields))
        return runs[-1]

    for model in FLAGS.models:
        for seed in [int(v) for v in FLAGS.seeds]:
            init = baselines.initial_weights(model, seed)
            plain = dict(data=data, seed=seed, epochs=FLAGS.epochs,
                         batch_size=FLAGS.batch_size,
                         learning_rate=FLAGS.learning_rate, init=init)
            if "dense" in FLAGS.methods:
                run(model, "dense", None, seed, lambda: bench_runs.train_plain(model, **plain))

            def switch(name, target, overrides=None):
                """A keras-switch run, keyed by its whole recipe too."""
                recipe = bench_runs.recipe(model, target, seed, FLAGS.epochs, overrides,
                                           FLAGS.switch_every, FLAGS.batch_size)
                return run(model, name, target, seed, lambda: bench_runs.train_switch(
                    model, data, target, seed, FLAGS.epochs, init, overrides,
                    FLAGS.switch_every, FLAGS.batch_size), recipe=recipe.to_dict())

            if "ks" in FLAGS.methods:  # the pure task objective: no target
                switch("ks", None)
            for target in [float(v) for v in FLAGS.targets]:
                config = bench_runs.recipe(model, target, seed, FLAGS.epochs,
                                           switch_every=FLAGS.switch_every,
                                           batch_size=FLAGS.batch_size)
                ramp = config.schedule.ramp_epochs * steps_per_epoch
                every = config.schedule.switch_every
                power = config.schedule.ramp_power

                def pruning(criterion, allocation):
                    return lambda layers: baselines.GradualPruning(
                        layers, criterion, allocation, target, ramp, every,
                        power=power, seed=seed)

                schedule = dict(ramp_steps=ramp, every=every, power=power)
                if "tfmot" in FLAGS.methods:
                    run(model, "tfmot", target, seed, lambda: tfmot_env.train(
                        model, target, seed, data, init, FLAGS.epochs, FLAGS.batch_size,
                        FLAGS.learning_rate))
                if "gmp_global" in FLAGS.methods:
                    run(model, "gmp_global", target, seed, lambda: bench_runs.train_plain(
                        model, pruning=pruning("magnitude", "global"), **plain), **schedule)
                ks = None
                names = ["ks"] if {"ks", "gmp_at_ks", "random_at_ks"} & set(FLAGS.methods) else []
                if model in FLAGS.variant_models:
                    names += FLAGS.variants
                for name in names:
                    result = switch(name, target, VARIANTS.get(name, {}))
                    ks = result if name == "ks" else ks
                for method, criterion in (("gmp_at_ks", "magnitude"),
                                          ("random_at_ks", "random")):
                    if method in FLAGS.methods:
                        run(model, method, target, seed, lambda: bench_runs.train_plain(
                            model, pruning=pruning(criterion, ks["layer_sparsity"]), **plain),
                            allocation=ks["layer_sparsity"], **schedule)
    pareto_report.write(runs, FLAGS.output_dir, markdown=FLAGS.markdown)


if __name__ == "__main__":
    define_flags()
    app.run(main)
