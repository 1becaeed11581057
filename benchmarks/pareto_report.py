"""The pareto benchmark's report: its runs' means over seeds, the tables of
BENCHMARKS.md's accuracy section (every method, then keras-switch against
each baseline and the issue-4 targets) and the plot."""

import collections
import math
import os
import statistics

from benchmarks import report

BASELINES = ("tfmot", "gmp_global", "gmp_at_ks", "random_at_ks")
# Accuracy targets of issue 4 (mean of seeds, same budget as the baselines).
ISSUE_TARGETS = {("lenet300", 0.95): 0.890, ("lenet300", 0.98): 0.883,
                 ("lenet5", 0.95): 0.892, ("lenet5", 0.98): 0.880}


# Issue 17's targets, on paired means over seeds: (model, target) -> the
# least `ks - gmp_global` (pt); at every target also ks >= gmp_global - 0.1
# and ks >= tfmot; dense - ks <= 0.3 pt for LeNet-300-100 at 98%.
PAIRED_GOALS = {("lenet300", 0.99): 0.5, ("lenet300", 0.995): 0.5,
                ("lenet5", 0.99): 0.5, ("lenet5", 0.995): 0.5}
PAIRED_FLOOR = -0.1
DENSE_GAP = {("lenet300", 0.98): 0.3}


def paired(runs, method, other, model, target, other_target=None):
    """Per seed `method - other` test accuracy (pt) over the seeds both ran
    at (model, target): (seeds, differences, mean, standard error). `other`
    is read at `other_target` (default `target`; None for dense)."""
    other_target = target if other_target is None else other_target

    def by_seed(name, at):
        return {r["seed"]: r["test_accuracy"] for r in runs
                if r["model"] == model and r["method"] == name and r["target"] == at}

    mine = by_seed(method, target)
    theirs = by_seed(other, None if other == "dense" else other_target)
    seeds = sorted(set(mine) & set(theirs))
    diffs = [100 * (mine[s] - theirs[s]) for s in seeds]
    mean = _mean(diffs)
    error = statistics.stdev(diffs) / math.sqrt(len(diffs)) if len(diffs) > 1 else float("nan")
    return seeds, diffs, mean, error


def paired_table(runs):
    """keras-switch (and each ks_* variant) minus gmp_global, tfmot and
    dense, paired by seed, with issue 17's targets."""
    lines = [
        "| model | target | method | seeds | ks − gmp_global per seed (pt) "
        "| mean ± s.e. | ks − tfmot | dense − ks | issue 17 target | met |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    keys = sorted({(r["model"], r["target"], r["method"]) for r in runs
                   if r["method"].startswith("ks") and r["target"] is not None},
                  key=lambda k: (list(report.MODEL_NAMES).index(k[0])
                                 if k[0] in report.MODEL_NAMES else 9, k[1], k[2] != "ks", k[2]))
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
        met.append("yes" if mean >= least else "**no**")
        if not math.isnan(vs_tfmot):
            goals.append("vs tfmot ≥ 0")
            met.append("yes" if vs_tfmot >= 0 else "**no**")
        if (model, target) in DENSE_GAP and dense_seeds:
            goals.append(f"dense − ks ≤ {DENSE_GAP[(model, target)]:.1f}")
            met.append("yes" if dense_gap <= DENSE_GAP[(model, target)] else "**no**")

        def shown(value, err):
            return "–" if math.isnan(value) else f"{value:+.2f} ± {err:.2f}"

        lines.append(
            f"| {report.MODEL_NAMES.get(model, model)} | {_shown_target(target)} | {method} "
            f"| {len(seeds)} | {' / '.join(f'{d:+.2f}' for d in diffs)} "
            f"| **{shown(mean, error)}** | {shown(vs_tfmot, tfmot_error)} "
            f"| {shown(dense_gap, dense_error) if dense_seeds else '–'} "
            f"| {'; '.join(goals)} | {' / '.join(met)} |"
        )
    return "\n".join(lines)


def _shown_target(target):
    """0.90, 0.95, ... with two decimals; 0.995 with three."""
    return f"{target:.2f}" if round(target, 2) == target else f"{target:.3f}"


def _mean(values):
    return statistics.fmean(values) if values else float("nan")


def aggregate(runs):
    """Groups runs by (model, method, target): means over seeds."""
    groups = collections.defaultdict(list)
    for run in runs:
        groups[(run["model"], run["method"], run["target"])].append(run)
    rows = []
    for (model, method, target), group in groups.items():
        group = sorted(group, key=lambda r: r["seed"])
        overlap = [r["top_magnitude_overlap"] for r in group if "top_magnitude_overlap" in r]
        rows.append({
            "model": model, "method": method, "target": target,
            "seeds": [r["seed"] for r in group],
            "accuracy": [r["test_accuracy"] for r in group],
            "mean_accuracy": _mean([r["test_accuracy"] for r in group]),
            "fc_sparsity": _mean([r["fc_sparsity"] for r in group]),
            "hidden_sparsity": _mean([r["hidden_sparsity"] for r in group]),
            "layer_sparsity": {
                name: _mean([r["layer_sparsity"][name] for r in group])
                for name in group[0]["layer_sparsity"]
            },
            "top_magnitude_overlap": {
                name: _mean([o[name] for o in overlap if o[name] is not None])
                for name in overlap[0]
            } if overlap else None,
            "train_seconds": _mean([r["train_seconds"] for r in group]),
        })
    order = {m: i for i, m in enumerate(report.MODEL_NAMES)}
    rows.sort(key=lambda r: (order.get(r["model"], 9), -1 if r["target"] is None else r["target"],
                             r["method"]))
    return rows


def markdown_table(rows):
    lines = [
        "| model | method | target | FC sparsity (measured) | hidden-only | per layer (%) "
        "| acc per seed | mean acc | kept ∩ top-|w| | train s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        per_layer = "/".join(f"{100 * v:.1f}" for v in r["layer_sparsity"].values())
        overlap = "–"
        if r["top_magnitude_overlap"]:
            overlap = "/".join(f"{100 * v:.0f}%" for v in r["top_magnitude_overlap"].values())
        target = "–" if r["target"] is None else _shown_target(r['target'])
        lines.append(
            f"| {report.MODEL_NAMES.get(r['model'], r['model'])} | {r['method']} | {target} "
            f"| {r['fc_sparsity']:.4f} | {r['hidden_sparsity']:.4f} | {per_layer} "
            f"| {' / '.join(f'{a:.4f}' for a in r['accuracy'])} "
            f"| **{r['mean_accuracy']:.4f}** | {overlap} | {r['train_seconds']:.0f} |"
        )
    return "\n".join(lines)


def comparison_table(rows):
    """keras-switch against every baseline at each (model, target)."""
    by_key = {(r["model"], r["method"], r["target"]): r for r in rows}
    lines = [
        "| model | target | ks mean acc (FC sparsity) | " + " | ".join(BASELINES)
        + " | ks − best baseline (pt) | issue target | met |",
        "|---|---|---|" + "---|" * len(BASELINES) + "---|---|---|",
    ]
    for (model, method, target), ks in by_key.items():
        if method != "ks" or target is None:
            continue
        cells, best = [], None
        for name in BASELINES:
            other = by_key.get((model, name, target))
            cells.append("–" if other is None else f"{other['mean_accuracy']:.4f}")
            if other is not None and (best is None or other["mean_accuracy"] > best):
                best = other["mean_accuracy"]
        gap = "–" if best is None else f"{100 * (ks['mean_accuracy'] - best):+.2f}"
        goal = ISSUE_TARGETS.get((model, target))
        met = []
        if goal is not None:
            met.append("accuracy" if ks["mean_accuracy"] >= goal else "**accuracy missed**")
        if best is not None:
            met.append("≥ baselines" if ks["mean_accuracy"] >= best else "**below a baseline**")
        met.append("sparsity" if ks["fc_sparsity"] >= target - 0.005 else "**sparsity missed**")
        lines.append(
            f"| {report.MODEL_NAMES.get(model, model)} | {_shown_target(target)} "
            f"| {ks['mean_accuracy']:.4f} ({ks['fc_sparsity']:.4f}) | " + " | ".join(cells)
            + f" | {gap} | {'–' if goal is None else f'{goal:.3f}'} | {', '.join(met)} |"
        )
    return "\n".join(lines)


def plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    models = [m for m in report.MODEL_NAMES if any(r["model"] == m for r in rows)]
    figure, axes = plt.subplots(1, len(models), figsize=(6 * len(models), 4.5), squeeze=False)
    for axis, model in zip(axes[0], models):
        model_rows = [r for r in rows if r["model"] == model and r["target"] is not None]
        for r in rows:
            if r["model"] == model and r["method"] == "dense":
                axis.axhline(100 * r["mean_accuracy"], color="grey", linestyle="--",
                             label="dense")
        for method in sorted({r["method"] for r in model_rows}):
            points = sorted(
                (r["fc_sparsity"], r["mean_accuracy"]) for r in model_rows if r["method"] == method
            )
            xs, ys = zip(*points)
            style = "o-" if method in ("ks", "gmp_global", "tfmot") else "o:"
            width = 2.5 if method == "ks" else 1.2
            axis.plot([100 * x for x in xs], [100 * y for y in ys], style,
                      linewidth=width, label=method)
        axis.set_title(f"{report.MODEL_NAMES[model]}, Fashion-MNIST")
        axis.set_xlabel("measured FC sparsity (%)")
        axis.set_ylabel("test accuracy (%, mean of seeds)")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def section(payload):
    """(about, tables) of the pareto section, from the JSON payload (its
    "summary": `aggregate` of its "runs")."""
    rows = payload["summary"]
    return "", (markdown_table(rows) + "\n\n" + comparison_table(rows) + "\n\n"
                + "Paired by seed (the same init and data order for every method):\n\n"
                + paired_table(payload["runs"]))


def write(runs, output_dir, markdown=False, command=None):
    """results.json (the runs and their `aggregate`), pareto.png and
    pareto.md (the section's text) in `output_dir`, through
    `report.publish`: with `markdown`, BENCHMARKS.md's pareto section too.
    `command` defaults to this process's. Returns the aggregated rows."""
    rows = aggregate(runs)
    payload = {"runs": runs, "summary": rows}
    body = report.publish("pareto", os.path.join(output_dir, "results.json"), payload,
                          section, markdown, command=command)
    plot(rows, os.path.join(output_dir, "pareto.png"))
    with open(os.path.join(output_dir, "pareto.md"), "w") as f:
        f.write(body + "\n")
    return rows
