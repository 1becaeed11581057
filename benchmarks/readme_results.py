"""README's "Results at a glance" and BENCHMARKS.md's "At a glance":
keras-switch minus gradual global magnitude pruning and minus TFMOT at each
target sparsity, paired by seed, as a table between README's
`<!-- results:begin ... -->` / `<!-- results:end -->` markers and
BENCHMARKS.md's `glance` ones, and a small plot of accuracy against
sparsity. Both are made from the pareto benchmark's committed results
(`RESULTS`) and nothing else, so rerun this whenever that file changes:

    python -m benchmarks.readme_results
"""

import json
import os

from absl import app
from absl import flags

from benchmarks import pareto_report
from benchmarks.harness import cli
from benchmarks.harness import plots
from benchmarks.harness import report
from benchmarks.harness import tables

FLAGS = flags.FLAGS
RESULTS = os.path.join(report.ROOT, "benchmarks", "results", "pareto", "results.json")
README = os.path.join(report.ROOT, "README.md")
PLOT = os.path.join(report.ROOT, "benchmarks", "results", "pareto", "glance.png")
COMMAND = "python -m benchmarks.readme_results"
# The two baselines of the table, by their method names in results.json.
BASELINES = (("gmp_global", "GMP"), ("tfmot", "TFMOT"))
# The plot's methods and their labels (colours: `plots.FIXED_COLOURS`).
PLOTTED = (("ks", "keras-switch"), ("gmp_global", "GMP (global)"), ("tfmot", "TFMOT"))


def define_flags():
    """The command line's flags (defined only when run as a program)."""
    flags.DEFINE_string("results", RESULTS, "The pareto benchmark's results.json.")
    flags.DEFINE_string("readme", README, "The README whose results section is rewritten.")
    flags.DEFINE_string("benchmarks_md", report.BENCHMARKS_MD,
                        "The BENCHMARKS.md whose glance section is rewritten.")
    flags.DEFINE_string("plot", PLOT, "Where the PNG goes.")


def _models(runs):
    return sorted({r["model"] for r in runs if r["method"] == "ks"}, key=tables.model_order)


def _targets(runs):
    return sorted({r["target"] for r in runs if r["method"] == "ks" and r["target"] is not None})


def table(payload, source=RESULTS):
    """The markdown table (with the line under it saying what it shows and
    naming `source`, the file `payload` was read from) of `ks - baseline`
    test accuracy in points, mean ± standard error of the differences paired
    by seed, a row per target, two columns per model."""
    runs = payload["runs"]
    models, seeds = _models(runs), set()
    header = ["FC sparsity"] + [f"{tables.model_name(m)}: ks − {label}" if i == 0
                                else f"ks − {label}"
                                for m in models for i, (_, label) in enumerate(BASELINES)]
    rows = []
    for target in _targets(runs):
        row = [f"{100 * target:g}%"]
        for model in models:
            for method, _ in BASELINES:
                paired, _, mean, error = pareto_report.paired(runs, "ks", method, model, target)
                seeds.add(len(paired))
                row.append(tables.signed(mean, error) if paired else tables.DASH)
        rows.append(row)
    counts = sorted(seeds - {0})
    over = (f"{counts[0]}" if len(counts) == 1 else f"{counts[0]}–{counts[-1]}") if counts else "0"
    return (tables.table(header, rows) + "\n\n"
            f"Test accuracy difference in points on Fashion-MNIST (positive: keras-switch is "
            f"more accurate), mean ± standard error over {over} seeds paired by seed; "
            f"from `{os.path.relpath(source, report.ROOT)}`.")


def plot(payload, path):
    """Mean test accuracy against measured FC sparsity, one panel per model,
    keras-switch and the two baselines in the colours of every figure, the
    x axis spaced by the fraction of connections kept
    (`plots.sparsity_axis`). The y axis spans
    keras-switch's and GMP's points (and dense), where the differences are
    tenths of a point; a baseline far below leaves the panel."""
    summary = payload["summary"]
    models = _models(payload["runs"])
    with plots.panels(path, len(models), size=(4.2, 3.2)) as axes:
        for axis, model in zip(axes, models):
            shown = []
            for row in summary:
                if row["model"] == model and row["method"] == "dense":
                    plots.dense_line(axis, row["mean_accuracy"])
                    shown.append(row["mean_accuracy"])
            for method, label in PLOTTED:
                points = sorted((r["fc_sparsity"], r["mean_accuracy"]) for r in summary
                                if r["model"] == model and r["method"] == method
                                and r["target"] is not None)
                if points:
                    sparsity, accuracy = zip(*points)
                    if method != "tfmot":
                        shown += accuracy
                    axis.plot([100 * s for s in sparsity], [100 * a for a in accuracy], "o-",
                              color=plots.FIXED_COLOURS[method], label=label,
                              linewidth=2 if method == "ks" else 1.2)
            plots.sparsity_axis(axis, _targets(payload["runs"]))
            axis.minorticks_off()
            axis.set_ylim(100 * min(shown) - 1.5, 100 * max(shown) + 0.5)
            plots.finish(axis, tables.model_name(model), "FC sparsity (%)",
                         "test accuracy (%)", legend_size=7)


def main(argv):
    cli.check_no_arguments(argv)
    with open(FLAGS.results) as f:
        payload = json.load(f)
    body = table(payload, FLAGS.results)
    report.replace_section("results", body, path=FLAGS.readme, command=COMMAND)
    report.replace_section("glance", body, path=FLAGS.benchmarks_md, command=COMMAND)
    plot(payload, FLAGS.plot)
    print(body)


if __name__ == "__main__":
    define_flags()
    app.run(main)
