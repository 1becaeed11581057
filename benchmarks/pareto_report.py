"""The pareto benchmark's report: its runs' means over seeds, the tables of
BENCHMARKS.md's accuracy section (keras-switch against each baseline and the
issue-4 targets, then the differences paired by seed with issue 17's), the
appendix's per-run table, and the plot."""

import math
import os

from benchmarks.harness import plots
from benchmarks.harness import report
from benchmarks.harness import stats
from benchmarks.harness import tables

BASELINES = ("tfmot", "gmp_global", "gmp_at_ks", "random_at_ks")
# Drawn as solid lines; the rest (baselines at ks's split, ablations) dotted.
MAIN_METHODS = ("ks", "gmp_global", "tfmot")
# Accuracy targets of issue 4 (mean of seeds, same budget as the baselines).
ISSUE_TARGETS = {("lenet300", 0.95): 0.890, ("lenet300", 0.98): 0.883,
                 ("lenet5", 0.95): 0.892, ("lenet5", 0.98): 0.880}


# Issue 17's targets, on paired means over seeds: (model, target) -> the
# least `ks - gmp_global` (pt); at every target ks - gmp_global >=
# PAIRED_FLOOR and ks >= tfmot; dense - ks <= DENSE_GAP.
PAIRED_GOALS = {("lenet300", 0.99): 0.5, ("lenet300", 0.995): 0.5,
                ("lenet5", 0.99): 0.5, ("lenet5", 0.995): 0.5}
PAIRED_FLOOR = -0.1
DENSE_GAP = {("lenet300", 0.98): 0.3}


def paired(runs, method, other, model, target, other_target=None):
    """Per seed `method - other` test accuracy (pt) over the seeds both ran
    at (model, target): (seeds, differences, mean, standard error). `other`
    is read at `other_target` (default `target`; None for dense)."""
    other_target = target if other_target is None else other_target
    return stats.paired(
        stats.by_seed(runs, model=model, method=method, target=target),
        stats.by_seed(runs, model=model, method=other,
                      target=None if other == "dense" else other_target))


def paired_table(runs):
    """keras-switch (and each ks_* variant) minus gmp_global, tfmot and
    dense, paired by seed, with issue 17's targets."""
    keys = sorted({(r["model"], r["target"], r["method"]) for r in runs
                   if r["method"].startswith("ks") and r["target"] is not None},
                  key=lambda k: (tables.model_order(k[0]), k[1], k[2] != "ks", k[2]))
    rows = []
    for model, target, method in keys:
        seeds, diffs, mean, error = paired(runs, method, "gmp_global", model, target)
        if not seeds:
            continue
        _, _, vs_tfmot, tfmot_error = paired(runs, method, "tfmot", model, target)
        dense_seeds, _, dense_gap, dense_error = paired(runs, "dense", method, model, None,
                                                        other_target=target)
        goals, met = [], []
        least = PAIRED_GOALS.get((model, target), PAIRED_FLOOR)
        goals.append(f"vs gmp ≥ {least:+.1f}")
        met.append(tables.verdict(mean >= least, "yes", "**no**"))
        if not math.isnan(vs_tfmot):
            goals.append("vs tfmot ≥ 0")
            met.append(tables.verdict(vs_tfmot >= 0, "yes", "**no**"))
        if (model, target) in DENSE_GAP and dense_seeds:
            goals.append(f"dense − ks ≤ {DENSE_GAP[(model, target)]:.1f}")
            met.append(tables.verdict(dense_gap <= DENSE_GAP[(model, target)], "yes", "**no**"))
        rows.append([
            tables.model_name(model), tables.target(target), method, len(seeds),
            tables.per_seed(diffs, "+.2f"), f"**{tables.signed(mean, error)}**",
            tables.signed(vs_tfmot, tfmot_error),
            tables.signed(dense_gap, dense_error) if dense_seeds else tables.DASH,
            "; ".join(goals), " / ".join(met)])
    return tables.table(["model", "target", "method", "seeds",
                         "ks − gmp_global per seed (pt)", "mean ± s.e.", "ks − tfmot",
                         "dense − ks", "issue 17 target", "met"], rows)


def aggregate(runs):
    """Groups runs by (model, method, target): means over seeds, and the
    mean top-magnitude overlap per layer of keras-switch runs."""
    rows = []
    for (model, method, target), group in stats.group(
            runs, ("model", "method", "target")).items():
        row = {"model": model, "method": method, "target": target, **stats.over_seeds(
            group, ("fc_sparsity", "hidden_sparsity", "layer_sparsity", "train_seconds"))}
        overlap = [r["top_magnitude_overlap"] for r in group if "top_magnitude_overlap" in r]
        row["top_magnitude_overlap"] = {
            name: stats.mean([o[name] for o in overlap if o[name] is not None])
            for name in overlap[0]
        } if overlap else None
        rows.append(row)
    rows.sort(key=lambda r: (tables.model_order(r["model"]),
                             -1 if r["target"] is None else r["target"], r["method"]))
    return rows


def markdown_table(rows):
    return tables.table(
        ["model", "method", "target", "FC sparsity (measured)", "hidden-only", "per layer (%)",
         "acc per seed", "mean acc", "kept ∩ top-|w|", "train s"],
        [[tables.model_name(r["model"]), r["method"], tables.target(r["target"]),
          f"{r['fc_sparsity']:.4f}", f"{r['hidden_sparsity']:.4f}",
          tables.percents(r["layer_sparsity"]), tables.per_seed(r["accuracy"]),
          f"**{r['mean_accuracy']:.4f}**",
          tables.percents(r["top_magnitude_overlap"], spec=".0f", unit="%")
          if r["top_magnitude_overlap"] else tables.DASH,
          f"{r['train_seconds']:.0f}"] for r in rows])


def comparison_table(rows):
    """keras-switch against every baseline at each (model, target)."""
    by_key = {(r["model"], r["method"], r["target"]): r for r in rows}
    lines = []
    for (model, method, target), ks in by_key.items():
        if method != "ks" or target is None:
            continue
        cells, best = [], None
        for name in BASELINES:
            other = by_key.get((model, name, target))
            cells.append(tables.number(None if other is None else other["mean_accuracy"]))
            if other is not None and (best is None or other["mean_accuracy"] > best):
                best = other["mean_accuracy"]
        goal = ISSUE_TARGETS.get((model, target))
        met = []
        if goal is not None:
            met.append("accuracy" if ks["mean_accuracy"] >= goal else "**accuracy missed**")
        if best is not None:
            met.append("≥ baselines" if ks["mean_accuracy"] >= best else "**below a baseline**")
        met.append("sparsity" if ks["fc_sparsity"] >= target - 0.005 else "**sparsity missed**")
        lines.append([
            tables.model_name(model), tables.target(target),
            f"{ks['mean_accuracy']:.4f} ({ks['fc_sparsity']:.4f})", *cells,
            tables.DASH if best is None else f"{100 * (ks['mean_accuracy'] - best):+.2f}",
            tables.number(goal, ".3f"), ", ".join(met)])
    return tables.table(["model", "target", "ks mean acc (FC sparsity)", *BASELINES,
                         "ks − best baseline (pt)", "issue target", "met"], lines)


def plot(rows, path):
    models = [m for m in tables.MODEL_NAMES if any(r["model"] == m for r in rows)]
    colour = plots.colours({r["method"] for r in rows})
    with plots.panels(path, len(models)) as axes:
        for axis, model in zip(axes, models):
            model_rows = [r for r in rows if r["model"] == model and r["target"] is not None]
            for r in rows:
                if r["model"] == model and r["method"] == "dense":
                    plots.dense_line(axis, r["mean_accuracy"])
            # The range of keras-switch, global magnitude pruning and dense:
            # a method that collapses (TFMOT at 99.5%) would otherwise
            # flatten the differences that matter; its points are marked.
            span = [100 * r["mean_accuracy"] for r in rows
                    if r["model"] == model and r["method"] in ("ks", "gmp_global", "dense")]
            bottom = min(span) - 2.0
            axis.set_ylim(bottom, max(span) + 0.5)
            for method in sorted({r["method"] for r in model_rows}):
                xs, ys = zip(*sorted((100 * r["fc_sparsity"], 100 * r["mean_accuracy"])
                                     for r in model_rows if r["method"] == method))
                style = "o-" if method in MAIN_METHODS else "o:"
                axis.plot(xs, ys, style, color=colour[method], label=method,
                          linewidth=2.5 if method == "ks" else 1.2)
                plots.clipped(axis, xs, ys, bottom, colour[method])
            plots.sparsity_axis(axis, [r["target"] for r in model_rows])
            plots.finish(axis, f"{tables.model_name(model)}, Fashion-MNIST",
                         "measured FC sparsity (%)", "test accuracy (%, mean of seeds)")


# The per-run table: a section of its own in BENCHMARKS.md's appendix.
RUNS_SECTION = {"section": "pareto_runs",
                "section_command": "python -m benchmarks.pareto --markdown"}


def section(payload):
    """(about, tables) of the pareto section, from the JSON payload (its
    "summary": `aggregate` of its "runs"): keras-switch against each
    baseline, then the differences paired by seed."""
    rows = payload["summary"]
    return "", (comparison_table(rows) + "\n\n"
                + "Paired by seed (the same init and data order for every method):\n\n"
                + paired_table(payload["runs"]))


def runs_section(payload):
    """(about, table) of the appendix's per-run section: every method's
    sparsities and accuracy per seed."""
    return "", markdown_table(payload["summary"])


def write(runs, output_dir, markdown=False, command=None):
    """results.json (the runs and their `aggregate`), pareto.png and
    pareto.md (both sections' text) in `output_dir`, through
    `report.publish`: with `markdown`, BENCHMARKS.md's pareto and
    pareto_runs sections too. `command` defaults to this process's. Returns
    the aggregated rows."""
    rows = aggregate(runs)
    output, payload = os.path.join(output_dir, "results.json"), {"runs": runs, "summary": rows}
    report.publish("pareto", output, payload, section, markdown, command=command,
                   copy=os.path.join(output_dir, "pareto.md"),
                   more=[(runs_section, RUNS_SECTION)])
    plot(rows, os.path.join(output_dir, "pareto.png"))
    return rows
