"""Automatic sparsity: an accuracy budget instead of a target, judged against
the pareto curves of `benchmarks.pareto`.

    python -m benchmarks.automatic --markdown         # the protocol (~25 min)
    python -m benchmarks.automatic --models=lenet300 --budgets=0.01 --seeds=0
    python -m benchmarks.automatic --compare_allocations=magnitude --markdown

Each run is the trainer's recipe with `accuracy_budget` set and no target,
holding out `validation_examples` as the trainer does, from the pareto
runs' init. The report (`automatic_report.py`) judges each (model, budget)
against the pareto runs of the same seeds (`--pareto_results`) and times
one budget run against the fixed-target recipe (`--timing_target`).
`--compare_allocations` runs the protocol again with the budget's layer split
(`allocation`) set, paired by seed with the default's runs.
"""

import json
import math
import os

import keras
from absl import app
from absl import flags

import keras_switch
from benchmarks import automatic_report
from benchmarks.harness import baselines
from benchmarks.harness import cli
from benchmarks.harness import measure
from benchmarks.harness import report
from benchmarks.harness import runs as bench_runs
from trainers import train_lib

# Designs tried (`--variants`): AccuracyBudget arguments, `reference_fraction`
# of the steps to the freeze standing for reference_steps.
VARIANTS = {
    "default": {},  # the library's defaults, on the variant seed
    "ref25_margin1": {"reference_fraction": 0.25, "search_margin": 1.0},
    "ref50_margin1": {"reference_fraction": 0.5, "search_margin": 1.0},
    "ref10_margin1": {"reference_fraction": 0.1, "search_margin": 1.0},
    "ref10_margin05": {"reference_fraction": 0.1, "search_margin": 0.5},
    "erk": {"reference_fraction": 0.1, "allocation": "erk"},
}


def define_flags():
    cli.define_models(baselines.MODELS)
    flags.DEFINE_list("variants", [],
                      f"Designs tried, of {sorted(VARIANTS)} (on --variant_seed).")
    flags.DEFINE_integer("variant_seed", 0, "The seed the --variants run on.")
    flags.DEFINE_list("variant_models", list(baselines.MODELS), "Models the --variants run on.")
    flags.DEFINE_list("budgets", ["0.005", "0.01"], "Accuracy budgets (fractions).")
    # Seed 0 chose the design (--variants): the protocol runs on other seeds.
    flags.DEFINE_list("seeds", ["1", "2", "3"], "Seeds (init, data order, held-out draw).")
    cli.define_budget(epochs=10, switch_every=True)
    flags.DEFINE_integer("validation_examples", 5000, "Training examples held out.")
    flags.DEFINE_float("timing_target", 0.98, "Target of the fixed-target run timed next to "
                       "each model's automatic run of the first seed (0: none).")
    cli.define_data()
    flags.DEFINE_list("compare_allocations", [],
                      f"AccuracyBudget allocations, of {keras_switch.sparsity.COMPUTED_ALLOCATIONS}, each run "
                      "on --compare_models, --seeds and --budgets beside the default (the "
                      "recipe's config.allocation).")
    flags.DEFINE_list("compare_models", ["lenet300"], "Models --compare_allocations run on.")
    flags.DEFINE_string("pareto_results", "benchmarks/results/pareto/results.json",
                        "benchmarks.pareto's results (the curves and dense runs).")
    cli.define_cache("benchmarks/results/automatic")
    cli.define_markdown("automatic")


FLAGS = flags.FLAGS


def _train(model_name, data, seed, budget, target, init, variant=None, allocation=None):
    """One recipe run with `budget` (or the fixed `target`) on the training
    split less the held-out examples, its AccuracyBudget built with the
    arguments of `variant` if given, split over layers by `allocation` if
    given (else the recipe's); the result dict."""
    (x, y), test = data
    config = bench_runs.recipe(model_name, target, seed, FLAGS.epochs,
                               switch_every=FLAGS.switch_every)
    config.accuracy_budget = budget
    if allocation is not None:
        config.allocation = allocation
    config.validation_examples = FLAGS.validation_examples if budget is not None else None
    # Held out of a fixed-target run too, so that the timing is like for like.
    (x, y), heldout = train_lib.held_out_split(x, y, FLAGS.validation_examples, seed)
    keras.utils.set_random_seed(seed)
    model = train_lib.build_model(config, x.shape[1:])
    baselines.set_initial_weights(model, init)
    steps_per_epoch = math.ceil(len(x) / config.batch_size)
    train_lib.compile_model(model, config, steps_per_epoch, sparsity=None if variant is None
                            else lambda schedule: _variant(variant, budget, schedule))
    history = keras.callbacks.History()
    # Both kinds validate on the held-out examples every epoch, as the
    # trainer does: the budget's cost is then its own checks.
    seconds = bench_runs.fit(model, ((x, y), test), seed, config.num_epochs, config.batch_size,
                             callbacks=[history], validation_data=heldout)
    result = measure.result(keras_switch.strip_switches(model), test, seconds)
    outcome = model.budget_outcome()
    if outcome is not None:
        result["budget"] = {k: v for k, v in outcome.items() if k != "sparsity"}
        result["curve"] = {k: history.history[k] for k in
                           ("heldout_accuracy", "budget_density", "sparsity")}
    return result


def _variant(name, budget, schedule):
    """The AccuracyBudget of design variant `name` for `schedule`."""
    arguments = dict(VARIANTS[name])
    span = schedule.freeze_step - schedule.warmup_steps
    arguments["reference_steps"] = max(1, round(arguments.pop("reference_fraction") * span))
    return keras_switch.AccuracyBudget(budget, **arguments)


def main(argv):
    cli.check_no_arguments(argv)
    cli.check_known("models", FLAGS.models, baselines.MODELS)
    cli.check_known("variants", FLAGS.variants, VARIANTS)
    cli.check_known("compare_allocations", FLAGS.compare_allocations,
                     keras_switch.sparsity.COMPUTED_ALLOCATIONS)
    cli.check_known("compare_models", FLAGS.compare_models, baselines.MODELS)
    budgets, seeds = [float(v) for v in FLAGS.budgets], [int(v) for v in FLAGS.seeds]
    with open(FLAGS.pareto_results) as f:
        pareto_runs = [r for r in json.load(f)["runs"] if r["model"] in FLAGS.models
                       and r["method"] in ("dense", "gmp_global", "ks", "tfmot")]
    data = cli.load_data()
    cache = cli.run_cache("automatic", data, sources=("benchmarks/automatic.py",))
    runs, timing, variants, allocation_runs = [], [], [], []

    def run(name, model, seed, budget, target=None, variant=None, allocation=None):
        """One `_train` run (or its cached result), keyed by its settings."""
        init = baselines.initial_weights(model, seed)
        config = dict(model=model, seed=seed, budget=budget, target=target, epochs=FLAGS.epochs,
                      validation_examples=FLAGS.validation_examples,
                      switch_every=FLAGS.switch_every,
                      variant=VARIANTS[variant] if variant else None, allocation=allocation)
        return cache.run(name, config, lambda: _train(model, data, seed, budget, target, init,
                                                      variant, allocation))

    for model in FLAGS.models:
        for seed in seeds:
            for budget in budgets:
                result = run(f"{model}_{budget:g}_s{seed}", model, seed, budget)
                runs.append(dict(result, model=model, budget=budget, seed=seed,
                                 budget_info=result["budget"]))
        if FLAGS.variants and model in FLAGS.variant_models:
            for variant in FLAGS.variants:
                for budget in budgets:
                    result = run(f"{model}_{budget:g}_s{FLAGS.variant_seed}_{variant}", model,
                                 FLAGS.variant_seed, budget,
                                 variant=variant if VARIANTS[variant] else None)
                    variants.append(dict(result, model=model, budget=budget,
                                         seed=FLAGS.variant_seed, variant=variant,
                                         budget_info=result["budget"]))
        for allocation in FLAGS.compare_allocations if model in FLAGS.compare_models else ():
            for seed in seeds:
                for budget in budgets:
                    result = run(f"{model}_{budget:g}_s{seed}_{allocation}", model, seed, budget,
                                 allocation=allocation)
                    allocation_runs.append(dict(result, model=model, budget=budget, seed=seed,
                                                allocation=allocation,
                                                budget_info=result["budget"]))
        if FLAGS.timing_target:  # its own pair of runs, one right after the other
            budget = budgets[0]
            automatic = run(f"{model}_timing_{budget:g}_s{seeds[0]}", model, seeds[0], budget)
            fixed = run(f"{model}_timing_fixed_{FLAGS.timing_target:g}_s{seeds[0]}", model,
                        seeds[0], None, target=FLAGS.timing_target)
            timing.append({"model": model, "budget": budget,
                           "automatic_seconds": automatic["train_seconds"],
                           "target": FLAGS.timing_target, "fixed_seconds": fixed["train_seconds"],
                           "fixed_test_accuracy": fixed["test_accuracy"]})
    payload = {"models": FLAGS.models, "budgets": budgets, "runs": runs, "timing": timing,
               "variants": variants, "variant_arguments": VARIANTS,
               "allocation_runs": allocation_runs,
               "pareto_runs": pareto_runs}
    report.publish("automatic", os.path.join(FLAGS.output_dir, "results.json"), payload,
                   automatic_report.render, FLAGS.markdown,
                   more=[(automatic_report.runs_section, automatic_report.RUNS_SECTION)])
    automatic_report.plot(payload, os.path.join(FLAGS.output_dir, "automatic.png"))


if __name__ == "__main__":
    define_flags()
    app.run(main)
