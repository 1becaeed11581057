r"""Automatic sparsity: an accuracy budget instead of a target, judged against
the pareto curves of `benchmarks.pareto`.

    python -m benchmarks.automatic --markdown         # the protocol (~25 min)
    python -m benchmarks.automatic --models=lenet300 --budgets=0.01 --seeds=0

Each run is the trainer's recipe for the model (configs/common.py: 10
epochs, batch 128, Adam 1e-3, a switch step every 100, the last 2 epochs
frozen) with `accuracy_budget` set and no target: `validation_examples`
(5,000, the trainer's default) are held out of the 60,000 training
examples exactly as the trainer holds them out (a seeded draw), the rest
trains, and the test set is only used at the end. Every run starts from
the same initial weights as the pareto runs of its (model, seed).

Reported per model and budget, over seeds: the test accuracy, the FC
sparsity reached and its spread, whether the budget held on the held-out
data, and the issue's targets, read off the pareto runs of the same seeds
(`--pareto_results`): mean test accuracy >= mean dense - budget - 0.2 pt,
and the automatic point on or above gradual global magnitude pruning's
curve (its sparsity >= the sparsity at which `gmp_global`, interpolated
linearly between the pareto targets, keeps the same mean accuracy); on
LeNet-300-100 with the 1 pt budget, at least 98%. The cost: for each model,
one run with the first budget and seed and one with the fixed-target recipe
(`--timing_target`) on the same 55,000 examples, trained one right after the
other in this process (their own runs, so that they can be timed again on an
idle machine without training the rest again).

Runs are cached as JSON in `--output_dir/runs/` (`--rerun` to train again).
"""

import json
import math
import os
import time

import keras
import numpy as np
from absl import app
from absl import flags

import keras_switch
from benchmarks import common
from benchmarks import report
from keras_switch import data as switch_data
from trainers import train_lib

# Designs tried on the way to the default (seed 0 only, `--variants`):
# AccuracyBudget arguments, with `reference_fraction` standing for
# reference_steps = that fraction of the steps to the freeze.
VARIANTS = {
    "default": {},  # the library's defaults, on the variant seed
    "ref25_margin1": {"reference_fraction": 0.25, "search_margin": 1.0},
    "ref50_margin1": {"reference_fraction": 0.5, "search_margin": 1.0},
    "ref10_margin1": {"reference_fraction": 0.1, "search_margin": 1.0},
    "ref10_margin05": {"reference_fraction": 0.1, "search_margin": 0.5},
    "erk": {"reference_fraction": 0.1, "allocation": "erk"},
}


def define_flags():
    """The command line's flags (defined only when run as a script, so that
    tests can import this module next to other benchmarks)."""
    flags.DEFINE_list("models", list(common.MODELS), f"Models, of {common.MODELS}.")
    flags.DEFINE_list("variants", [],
                      f"Designs tried, of {sorted(VARIANTS)} (on --variant_seed).")
    flags.DEFINE_integer("variant_seed", 0, "The seed the --variants run on.")
    flags.DEFINE_list("variant_models", list(common.MODELS), "Models the --variants run on.")
    flags.DEFINE_list("budgets", ["0.005", "0.01"], "Accuracy budgets (fractions).")
    # Seed 0 chose the design (--variants): the protocol runs on other seeds.
    flags.DEFINE_list("seeds", ["1", "2", "3"], "Seeds (init, data order, held-out draw).")
    flags.DEFINE_integer("epochs", 10, "Epochs of every run.")
    flags.DEFINE_integer("validation_examples", 5000, "Training examples held out.")
    flags.DEFINE_integer("switch_every", None, "Mask update interval (default: the recipe's; "
                         "smoke runs need fewer).")
    flags.DEFINE_float("timing_target", 0.98, "Target of the fixed-target run timed next to "
                       "each model's automatic run of the first seed (0: none).")
    flags.DEFINE_string("data_dir", "/usr/share/datasets/fashion-mnist",
                        "Directory of the Fashion-MNIST IDX files.")
    flags.DEFINE_integer("max_train_examples", None, "Truncate the training set (smoke runs).")
    flags.DEFINE_integer("max_test_examples", None, "Truncate the test set (smoke runs).")
    flags.DEFINE_string("pareto_results", "benchmarks/results/pareto/results.json",
                        "benchmarks.pareto's results (the curves and dense runs).")
    flags.DEFINE_string("output_dir", "benchmarks/results/automatic", "Where runs and results go.")
    flags.DEFINE_bool("rerun", False, "Train again even where a run's JSON exists.")
    flags.DEFINE_bool("markdown", False, "Rewrite the generated section of BENCHMARKS.md.")


FLAGS = flags.FLAGS

# The slack on test accuracy below dense - budget, and its floor on
# LeNet-300-100's sparsity at the 1 pt budget.
TEST_SLACK = 0.002
FLOORS = {("lenet300", 0.01): 0.98}


def _train(model_name, data, seed, budget, target, init, variant=None):
    """One recipe run with `budget` (or the fixed `target`) on the training
    split less the held-out examples, its AccuracyBudget built with the
    arguments of `variant` if given; the result dict."""
    (x, y), (xt, yt) = data
    config = common.recipe(model_name, target, seed, FLAGS.epochs,
                           switch_every=FLAGS.switch_every)
    config.accuracy_budget = budget
    config.validation_examples = FLAGS.validation_examples if budget is not None else None
    # The same examples are held out of a fixed-target run too (the timing
    # compares like with like), as the trainer would draw them.
    (x, y), heldout = train_lib.held_out_split(x, y, FLAGS.validation_examples, seed)
    keras.utils.set_random_seed(seed)
    model = train_lib.build_model(config, x.shape[1:])
    common.set_initial_weights(model, init)
    steps_per_epoch = math.ceil(len(x) / config.batch_size)
    train_lib.compile_model(model, config, steps_per_epoch, sparsity=None if variant is None
                            else lambda schedule: _variant(variant, budget, schedule))
    train = switch_data.make_dataset(x, y, config.batch_size, training=True, seed=seed)
    history = keras.callbacks.History()
    start = time.perf_counter()
    # Both kinds of run train on the same 55,000 examples and validate on the
    # held-out ones every epoch, as the trainer validates (a fixed target on
    # the test set): the budget's cost is then its own checks. (Keras'
    # validation pass runs the switcher on every batch while switching.)
    model.fit(train, epochs=config.num_epochs, verbose=0, callbacks=[history],
              validation_data=heldout)
    seconds = time.perf_counter() - start
    result = common._result(keras_switch.strip_switches(model), (xt, yt), seconds)
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


def _cached(name, train):
    path = os.path.join(FLAGS.output_dir, "runs", f"{name}.json")
    if os.path.exists(path) and not FLAGS.rerun:
        with open(path) as f:
            return json.load(f)
    print(f"[automatic] {name} ...", flush=True)
    result = train()
    common.write_json(path, result)
    print(f"[automatic]   acc {result['test_accuracy']:.4f} at FC sparsity "
          f"{result['fc_sparsity']:.4f} ({result['train_seconds']} s)", flush=True)
    return result


# -- the report: pure functions of the payload ---------------------------------


def curve(pareto_runs, model, method, seeds):
    """[(FC sparsity, mean test accuracy)] of `method` over `seeds`, dense
    (sparsity 0) first, by target."""
    points = {}
    for run in pareto_runs:
        if run["model"] != model or run["seed"] not in seeds:
            continue
        if run["method"] == "dense" or (run["method"] == method and run["target"]):
            key = 0.0 if run["method"] == "dense" else run["target"]
            points.setdefault(key, []).append(run)
    return [(float(np.mean([r["fc_sparsity"] for r in runs])),
             float(np.mean([r["test_accuracy"] for r in runs])))
            for _, runs in sorted(points.items()) if len(runs) == len(seeds)]


def sparsity_at(points, accuracy):
    """The highest sparsity at which the piecewise-linear curve `points`
    keeps at least `accuracy` (None if it never does)."""
    best = None
    for (s1, a1), (s2, a2) in zip(points, points[1:]):
        if a2 >= accuracy:
            best = max(best or 0.0, s2)
        elif a1 >= accuracy:
            best = max(best or 0.0, s1 + (a1 - accuracy) / (a1 - a2) * (s2 - s1))
    if best is None and points and points[0][1] >= accuracy:
        best = points[0][0]
    return best


def summarize(payload):
    """One row per (model, budget) with the targets met or missed."""
    rows = []
    for model in payload["models"]:
        for budget in payload["budgets"]:
            runs = [r for r in payload["runs"] if r["model"] == model and r["budget"] == budget]
            if not runs:
                continue
            seeds = sorted(r["seed"] for r in runs)
            dense = [r for r in payload["pareto_runs"] if r["model"] == model
                     and r["method"] == "dense" and r["seed"] in seeds]
            accuracy = float(np.mean([r["test_accuracy"] for r in runs]))
            sparsities = [r["fc_sparsity"] for r in runs]
            sparsity = float(np.mean(sparsities))
            dense_accuracy = (float(np.mean([r["test_accuracy"] for r in dense]))
                              if len(dense) == len(seeds) else None)
            gmp = sparsity_at(curve(payload["pareto_runs"], model, "gmp_global", seeds), accuracy)
            floor = FLOORS.get((model, budget))
            rows.append({
                "model": model, "budget": budget, "seeds": seeds,
                "test_accuracy": accuracy,
                "test_accuracy_sd": float(np.std([r["test_accuracy"] for r in runs], ddof=1))
                if len(runs) > 1 else 0.0,
                "fc_sparsity": sparsity,
                "fc_sparsity_sd": float(np.std(sparsities, ddof=1)) if len(runs) > 1 else 0.0,
                "fc_sparsity_range": [min(sparsities), max(sparsities)],
                "budget_held": sum(bool(r["budget_info"]["met"]) for r in runs),
                "dense_accuracy": dense_accuracy,
                "test_target_met": (None if dense_accuracy is None else
                                    accuracy >= dense_accuracy - budget - TEST_SLACK),
                "gmp_sparsity_at_accuracy": gmp,
                "on_gmp_curve": None if gmp is None else sparsity >= gmp,
                "floor": floor,
                "floor_met": None if floor is None else sparsity >= floor,
            })
    return rows


def _number(value):
    return "–" if value is None else f"{value:.4f}"


def _met(value):
    return "–" if value is None else ("met" if value else "**missed**")


def render(payload):
    rows = summarize(payload)
    lines = [
        "| model | budget | test acc (mean ± sd) | dense acc, same seeds | acc ≥ dense − budget − 0.2 pt "
        "| FC sparsity (mean ± sd) | range over seeds | gmp_global's sparsity at that acc "
        "| on or above gmp_global | held-out budget held |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        gmp = r["gmp_sparsity_at_accuracy"]
        floor = f"; ≥ {r['floor']:.0%}: {_met(r['floor_met'])}" if r["floor"] else ""
        lines.append(
            f"| {report.MODEL_NAMES[r['model']]} | {r['budget'] * 100:g} pt "
            f"| {r['test_accuracy']:.4f} ± {r['test_accuracy_sd']:.4f} "
            f"| {_number(r['dense_accuracy'])} "
            f"| {_met(r['test_target_met'])} "
            f"| {r['fc_sparsity']:.4f} ± {r['fc_sparsity_sd']:.4f} "
            f"| {r['fc_sparsity_range'][0]:.4f}–{r['fc_sparsity_range'][1]:.4f} "
            f"| {_number(gmp)} "
            f"| {_met(r['on_gmp_curve'])}{floor} "
            f"| {r['budget_held']} of {len(r['seeds'])} |")
    lines += ["", "Per run:", "",
              "| model | budget | seed | test acc | FC sparsity | per layer (%) "
              "| held-out: dense reference → final | train s |",
              "|---|---|---|---|---|---|---|---|"]
    for r in sorted(payload["runs"], key=lambda r: (r["model"], r["budget"], r["seed"])):
        info = r["budget_info"]
        layers = "/".join(f"{100 * s:.1f}" for s in r["layer_sparsity"].values())
        lines.append(
            f"| {report.MODEL_NAMES[r['model']]} | {r['budget'] * 100:g} pt | {r['seed']} "
            f"| {r['test_accuracy']:.4f} | {r['fc_sparsity']:.4f} | {layers} "
            f"| {info['reference_validation_accuracy']:.4f} → "
            f"{info['validation_accuracy']:.4f} | {r['train_seconds']} |")
    variants = payload.get("variants") or []
    if variants:
        lines += ["", "Designs tried (one seed; the targets read off that seed's dense and "
                  "gmp_global runs):", "",
                  "| model | budget | design | AccuracyBudget arguments | test acc | FC sparsity "
                  "| acc ≥ dense − budget − 0.2 pt | on or above gmp_global |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in sorted(variants, key=lambda r: (r["model"], r["budget"], r["variant"])):
            arguments = payload["variant_arguments"][r["variant"]]
            dense = curve(payload["pareto_runs"], r["model"], "dense", [r["seed"]])
            gmp = sparsity_at(curve(payload["pareto_runs"], r["model"], "gmp_global",
                                    [r["seed"]]), r["test_accuracy"])
            test_met = (None if not dense else
                        r["test_accuracy"] >= dense[0][1] - r["budget"] - TEST_SLACK)
            shown = ", ".join(f"{k}={v}" for k, v in arguments.items()) or "defaults"
            lines.append(
                f"| {report.MODEL_NAMES[r['model']]} | {r['budget'] * 100:g} pt "
                f"| {r['variant']} | {shown} | {r['test_accuracy']:.4f} | {r['fc_sparsity']:.4f} "
                f"| {_met(test_met)} | {_met(None if gmp is None else r['fc_sparsity'] >= gmp)} |")
    timing = payload.get("timing") or []
    if timing:
        lines += ["", "Cost (the first seed, one process, one run after the other):", "",
                  "| model | automatic (budget) s | fixed target s | ratio |", "|---|---|---|---|"]
        for t in timing:
            lines.append(
                f"| {report.MODEL_NAMES[t['model']]} | {t['automatic_seconds']} "
                f"({t['budget'] * 100:g} pt) | {t['fixed_seconds']} ({t['target']:g}) "
                f"| {t['automatic_seconds'] / t['fixed_seconds']:.2f}x |")
    return "", "\n".join(lines)


# tests/benchmarks/report_test.py makes the section again by this name.
section = render


def plot(payload, path):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    models = [m for m in payload["models"] if any(r["model"] == m for r in payload["runs"])]
    figure, axes = plt.subplots(1, len(models), figsize=(6 * len(models), 4.5), squeeze=False)
    for axis, model in zip(axes[0], models):
        seeds = sorted({r["seed"] for r in payload["runs"] if r["model"] == model})
        for method, style in (("gmp_global", "s-"), ("ks", "o-"), ("tfmot", "^:")):
            points = [p for p in curve(payload["pareto_runs"], model, method, seeds) if p[0] > 0]
            if points:
                xs, ys = zip(*points)
                axis.plot([100 * x for x in xs], [100 * y for y in ys], style,
                          label=f"{method} (fixed targets)")
        for budget, marker in zip(payload["budgets"], ("*", "P", "X")):
            runs = [r for r in payload["runs"] if r["model"] == model and r["budget"] == budget]
            if runs:
                axis.scatter([100 * r["fc_sparsity"] for r in runs],
                             [100 * r["test_accuracy"] for r in runs], marker=marker, s=90,
                             zorder=3, label=f"automatic, {budget * 100:g} pt budget")
        dense = curve(payload["pareto_runs"], model, "dense", seeds)
        if dense:
            axis.axhline(100 * dense[0][1], color="grey", linestyle="--", label="dense")
        axis.set_xlim(88, 100)
        axis.set_title(f"{report.MODEL_NAMES[model]}, Fashion-MNIST, seeds {seeds}")
        axis.set_xlabel("FC sparsity (%)")
        axis.set_ylabel("test accuracy (%)")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    unknown = sorted(set(FLAGS.models) - set(common.MODELS))
    unknown += sorted(set(FLAGS.variants) - set(VARIANTS))
    if unknown:
        raise app.UsageError(f"Unknown models or variants {unknown}; models: "
                             f"{common.MODELS}, variants: {sorted(VARIANTS)}")
    budgets = [float(b) for b in FLAGS.budgets]
    seeds = [int(s) for s in FLAGS.seeds]
    with open(FLAGS.pareto_results) as f:
        pareto_runs = [r for r in json.load(f)["runs"] if r["model"] in FLAGS.models
                       and r["method"] in ("dense", "gmp_global", "ks", "tfmot")]
    data = common.load_data(FLAGS.data_dir, FLAGS.max_train_examples, FLAGS.max_test_examples)
    runs, timing, variants = [], [], []
    for model in FLAGS.models:
        for seed in seeds:
            init = common.initial_weights(model, seed)
            for budget in budgets:
                result = _cached(f"{model}_{budget:g}_s{seed}", lambda: _train(
                    model, data, seed, budget, None, init))
                runs.append(dict(result, model=model, budget=budget, seed=seed,
                                 budget_info=result["budget"]))
        if FLAGS.variants and model in FLAGS.variant_models:
            init = common.initial_weights(model, FLAGS.variant_seed)
            for variant in FLAGS.variants:
                for budget in budgets:
                    result = _cached(
                        f"{model}_{budget:g}_s{FLAGS.variant_seed}_{variant}",
                        lambda: _train(model, data, FLAGS.variant_seed, budget, None, init,
                                       variant if VARIANTS[variant] else None))
                    variants.append(dict(result, model=model, budget=budget,
                                         seed=FLAGS.variant_seed, variant=variant,
                                         budget_info=result["budget"]))
        if FLAGS.timing_target:  # its own pair of runs, one right after the other
            init = common.initial_weights(model, seeds[0])
            budget = budgets[0]
            automatic = _cached(f"{model}_timing_{budget:g}_s{seeds[0]}", lambda: _train(
                model, data, seeds[0], budget, None, init))
            fixed = _cached(f"{model}_timing_fixed_{FLAGS.timing_target:g}_s{seeds[0]}",
                            lambda: _train(model, data, seeds[0], None, FLAGS.timing_target,
                                           init))
            timing.append({"model": model, "budget": budget,
                           "automatic_seconds": automatic["train_seconds"],
                           "target": FLAGS.timing_target, "fixed_seconds": fixed["train_seconds"],
                           "fixed_test_accuracy": fixed["test_accuracy"]})
    payload = {"models": FLAGS.models, "budgets": budgets, "runs": runs, "timing": timing,
               "variants": variants, "variant_arguments": VARIANTS,
               "pareto_runs": pareto_runs}
    report.publish("automatic", os.path.join(FLAGS.output_dir, "results.json"), payload,
                   render, FLAGS.markdown)
    plot(payload, os.path.join(FLAGS.output_dir, "automatic.png"))


if __name__ == "__main__":
    define_flags()
    app.run(main)
