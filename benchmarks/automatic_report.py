"""The automatic benchmark's report: the pareto curves it is judged
against, the verdicts per (model, budget) and the tables and plot of
BENCHMARKS.md's automatic section; all pure functions of the payload."""

from benchmarks.harness import plots
from benchmarks.harness import stats
from benchmarks.harness import tables

# The slack on test accuracy below dense - budget, and its floor on
# LeNet-300-100's sparsity at the 1 pt budget.
TEST_SLACK = 0.002
FLOORS = {("lenet300", 0.01): 0.98}


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
    return [(stats.mean([r["fc_sparsity"] for r in runs]),
             stats.mean([r["test_accuracy"] for r in runs]))
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


def _sd(values):
    return stats.sd(values) if len(values) > 1 else 0.0


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
            accuracy = stats.mean([r["test_accuracy"] for r in runs])
            sparsities = [r["fc_sparsity"] for r in runs]
            sparsity = stats.mean(sparsities)
            dense_accuracy = (stats.mean([r["test_accuracy"] for r in dense])
                              if len(dense) == len(seeds) else None)
            gmp = sparsity_at(curve(payload["pareto_runs"], model, "gmp_global", seeds), accuracy)
            floor = FLOORS.get((model, budget))
            rows.append({
                "model": model, "budget": budget, "seeds": seeds,
                "test_accuracy": accuracy,
                "test_accuracy_sd": _sd([r["test_accuracy"] for r in runs]),
                "fc_sparsity": sparsity,
                "fc_sparsity_sd": _sd(sparsities),
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


def _budget(budget):
    return f"{budget * 100:g} pt"


def summary_table(rows):
    return tables.table(
        ["model", "budget", "test acc (mean ± sd)", "dense acc, same seeds",
         "acc ≥ dense − budget − 0.2 pt", "FC sparsity (mean ± sd)", "range over seeds",
         "gmp_global's sparsity at that acc", "on or above gmp_global", "held-out budget held"],
        [[tables.model_name(r["model"]), _budget(r["budget"]),
          f"{r['test_accuracy']:.4f} ± {r['test_accuracy_sd']:.4f}",
          tables.number(r["dense_accuracy"]), tables.verdict(r["test_target_met"]),
          f"{r['fc_sparsity']:.4f} ± {r['fc_sparsity_sd']:.4f}",
          f"{r['fc_sparsity_range'][0]:.4f}–{r['fc_sparsity_range'][1]:.4f}",
          tables.number(r["gmp_sparsity_at_accuracy"]),
          tables.verdict(r["on_gmp_curve"])
          + (f"; ≥ {r['floor']:.0%}: {tables.verdict(r['floor_met'])}" if r["floor"] else ""),
          f"{r['budget_held']} of {len(r['seeds'])}"] for r in rows])


def runs_table(runs):
    return tables.table(
        ["model", "budget", "seed", "test acc", "FC sparsity", "per layer (%)",
         "held-out: dense reference → final", "train s"],
        [[tables.model_name(r["model"]), _budget(r["budget"]), r["seed"],
          f"{r['test_accuracy']:.4f}", f"{r['fc_sparsity']:.4f}",
          tables.percents(r["layer_sparsity"]),
          f"{r['budget_info']['reference_validation_accuracy']:.4f} → "
          f"{r['budget_info']['validation_accuracy']:.4f}", r["train_seconds"]]
         for r in sorted(runs, key=lambda r: (r["model"], r["budget"], r["seed"]))])


def variants_table(payload):
    rows = []
    for r in sorted(payload["variants"], key=lambda r: (r["model"], r["budget"], r["variant"])):
        arguments = payload["variant_arguments"][r["variant"]]
        dense = curve(payload["pareto_runs"], r["model"], "dense", [r["seed"]])
        gmp = sparsity_at(curve(payload["pareto_runs"], r["model"], "gmp_global",
                                [r["seed"]]), r["test_accuracy"])
        test_met = (None if not dense else
                    r["test_accuracy"] >= dense[0][1] - r["budget"] - TEST_SLACK)
        rows.append([tables.model_name(r["model"]), _budget(r["budget"]), r["variant"],
                     ", ".join(f"{k}={v}" for k, v in arguments.items()) or "defaults",
                     f"{r['test_accuracy']:.4f}", f"{r['fc_sparsity']:.4f}",
                     tables.verdict(test_met),
                     tables.verdict(None if gmp is None else r["fc_sparsity"] >= gmp)])
    return tables.table(["model", "budget", "design", "AccuracyBudget arguments", "test acc",
                         "FC sparsity", "acc ≥ dense − budget − 0.2 pt",
                         "on or above gmp_global"], rows)


def allocation_table(payload):
    """Each compared allocation against the default's runs of the same
    (model, budget), paired by seed: accuracy and sparsity differences."""
    rows = []
    for (model, budget, allocation), runs in stats.group(
            payload["allocation_runs"], ("model", "budget", "allocation")).items():
        default = [r for r in payload["runs"] if r["model"] == model and r["budget"] == budget]
        mine = {r["seed"]: r for r in runs}
        seeds, accuracy, accuracy_mean, accuracy_se = stats.paired(
            stats.by_seed(default), stats.by_seed(runs))
        _, _, sparsity_mean, sparsity_se = stats.paired(
            stats.by_seed(default, "fc_sparsity"), stats.by_seed(runs, "fc_sparsity"))
        accuracy_other = stats.mean([mine[s]["test_accuracy"] for s in seeds])
        gmp = sparsity_at(curve(payload["pareto_runs"], model, "gmp_global", seeds),
                          accuracy_other)
        sparsity_other = stats.mean([mine[s]["fc_sparsity"] for s in seeds])
        rows.append([tables.model_name(model), _budget(budget), allocation, len(seeds),
                     f"{accuracy_other:.4f}", f"{sparsity_other:.4f}",
                     tables.signed(accuracy_mean, accuracy_se),
                     tables.signed(sparsity_mean, sparsity_se),
                     tables.verdict(None if gmp is None else sparsity_other >= gmp),
                     f"{sum(bool(mine[s]['budget_info']['met']) for s in seeds)} of {len(seeds)}"])
    return tables.table(
        ["model", "budget", "allocation", "seeds", "its test acc", "its FC sparsity",
         "default − it: acc (pt)", "default − it: sparsity (pt)", "it on or above gmp_global",
         "held-out budget held"], rows)


def timing_table(timing):
    return tables.table(
        ["model", "automatic (budget) s", "fixed target s", "ratio"],
        [[tables.model_name(t["model"]),
          f"{t['automatic_seconds']} ({_budget(t['budget'])})",
          f"{t['fixed_seconds']} ({t['target']:g})",
          f"{t['automatic_seconds'] / t['fixed_seconds']:.2f}x"] for t in timing])


# The per-run table: a section of its own in BENCHMARKS.md's appendix.
RUNS_SECTION = {"section": "automatic_runs",
                "section_command": "python -m benchmarks.automatic --markdown"}


def render(payload):
    """(about, tables) of the automatic section, from the payload alone; the
    per-run table is `runs_section`'s."""
    parts = [summary_table(summarize(payload))]
    if payload.get("variants"):
        parts += ["Designs tried (one seed; the targets read off that seed's dense and "
                  "gmp_global runs):", variants_table(payload)]
    if payload.get("allocation_runs"):
        parts += ["The default allocation against another, same seeds and budgets "
                  "(differences paired by seed, mean ± standard error):",
                  allocation_table(payload)]
    if payload.get("timing"):
        parts += ["Cost (the first seed, one process, one run after the other):",
                  timing_table(payload["timing"])]
    return "", "\n\n".join(parts)


# tests/benchmarks/report_test.py makes the section again by this name.
section = render


def runs_section(payload):
    """(about, table) of the appendix's per-run section: each run's accuracy,
    sparsities and held-out measurements."""
    return "", runs_table(payload["runs"])


def plot(payload, path):
    models = [m for m in payload["models"] if any(r["model"] == m for r in payload["runs"])]
    with plots.panels(path, len(models)) as axes:
        for axis, model in zip(axes, models):
            seeds = sorted({r["seed"] for r in payload["runs"] if r["model"] == model})
            for method, style in (("gmp_global", "s-"), ("ks", "o-"), ("tfmot", "^:")):
                points = [p for p in curve(payload["pareto_runs"], model, method, seeds)
                          if p[0] > 0]
                if points:
                    xs, ys = zip(*points)
                    axis.plot([100 * x for x in xs], [100 * y for y in ys], style,
                              label=f"{method} (fixed targets)")
            for budget, marker in zip(payload["budgets"], ("*", "P", "X")):
                runs = [r for r in payload["runs"]
                        if r["model"] == model and r["budget"] == budget]
                if runs:
                    axis.scatter([100 * r["fc_sparsity"] for r in runs],
                                 [100 * r["test_accuracy"] for r in runs], marker=marker,
                                 s=90, zorder=3, label=f"automatic, {_budget(budget)} budget")
            dense = curve(payload["pareto_runs"], model, "dense", seeds)
            if dense:
                plots.dense_line(axis, dense[0][1])
            axis.set_xlim(88, 100)
            plots.finish(axis, f"{tables.model_name(model)}, Fashion-MNIST, seeds {seeds}",
                         "FC sparsity (%)", "test accuracy (%)", legend_size=7)
