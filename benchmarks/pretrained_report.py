"""The pretrained benchmark's report: its runs' means over seeds, the
differences paired by seed, issue 19's targets, the tables of
BENCHMARKS.md's pretrained section and the plot; all from the payload
alone."""

import math
import os

from benchmarks.harness import plots
from benchmarks.harness import report
from benchmarks.harness import stats
from benchmarks.harness import tables

MODEL = "lenet5"
# ks_magnitude / ks_erk: ks with allocation="magnitude" (gmp_global's split)
# / "erk" (the default before "auto").
METHODS = ("ks", "tfmot", "gmp_global", "ks_scratch", "ks_magnitude", "ks_erk")
# Every kernel the benchmark prunes, as keras_switch.models.lenet_5 names them.
LAYERS = ("conv1", "conv2", "fc1", "fc2", "fc3")
# Issue 19's targets at GOAL_TARGET: ks - tfmot and ks - gmp_global (pt,
# paired means), export and step ratios to Dense.
GOAL_TARGET = 0.95
GOALS = {"vs_tfmot": 0.5, "vs_gmp_global": -0.1, "export": 0.08, "step": 1.3}


def aggregate(runs):
    """One row per (method, target), by target (dense first) then in method
    order: the seeds, accuracy per seed, its mean and sd, mean overall and
    per-layer sparsity, mean train seconds."""
    order = ("dense",) + METHODS

    def key(method_target):
        method, target = method_target
        return (-1 if target is None else target,
                order.index(method) if method in order else len(order), method)

    groups = stats.group(runs, ("method", "target"))
    rows = []
    for method, target in sorted(groups, key=key):
        group = groups[(method, target)]
        row = stats.over_seeds(group, ("sparsity", "layer_sparsity", "train_seconds"))
        row["sd_accuracy"] = stats.sd(row["accuracy"])
        rows.append({"method": method, "target": target, **row})
    return rows


def paired(runs, other, target, method="ks"):
    """`method - other` test accuracy (pt) per seed at `target`: (seeds,
    differences, mean, standard error)."""
    return stats.paired(stats.by_seed(runs, method=method, target=target),
                        stats.by_seed(runs, method=other, target=target))


def check_targets(runs, exports, step_time):
    """Issue 19's targets, each {"goal", "measured" (a number or None),
    "met" (None where not measured)}."""
    checks = []
    for other in ("tfmot", "gmp_global"):
        seeds, _, mean, error = paired(runs, other, GOAL_TARGET)
        least = GOALS[f"vs_{other}"]
        checks.append({
            "goal": f"ks − {other} ≥ {least:+.1f} pt at {GOAL_TARGET:.0%}",
            "measured": mean if seeds else None, "error": error if len(seeds) > 1 else None,
            "met": (mean >= least) if seeds else None,
        })
    at_goal = [e for e in exports if e["target"] == GOAL_TARGET]
    ratio = at_goal[0]["ratio"] if at_goal else None
    checks.append({"goal": f"export_sparse ≤ {GOALS['export']:.2f}x dense (stored once) "
                           f"at {GOAL_TARGET:.0%}",
                   "measured": ratio, "met": None if ratio is None else ratio <= GOALS["export"]})
    step = step_time["ratio"]["ks_switching"] if step_time else None
    checks.append({"goal": f"step every layer switched ≤ {GOALS['step']:.1f}x Dense",
                   "measured": step, "met": None if step is None else step <= GOALS["step"]})
    return checks


def results_table(rows):
    return tables.table(
        ["method", "target", "seeds", "acc per seed", "mean ± sd acc", "overall sparsity",
         f"per layer {'/'.join(LAYERS)} (%)", "train s"],
        [[r["method"], tables.target(r["target"]), len(r["seeds"]),
          tables.per_seed(r["accuracy"]),
          f"**{r['mean_accuracy']:.4f}**"
          + ("" if math.isnan(r["sd_accuracy"]) else f" ± {r['sd_accuracy']:.4f}"),
          f"{r['sparsity']:.4f}", tables.percents(r["layer_sparsity"], LAYERS),
          f"{r['train_seconds']:.0f}"] for r in rows])


def paired_table(runs):
    targets = sorted({r["target"] for r in runs if r["method"] == "ks" and r["target"] is not None})
    pairs = [("ks", "tfmot"), ("ks", "gmp_global"), ("ks", "ks_scratch")]
    for variant in ("ks_magnitude", "ks_erk"):
        if any(r["method"] == variant for r in runs):
            pairs.append((variant, "gmp_global"))
    rows = []
    for target in targets:
        cells = [tables.target(target)]
        for method, other in pairs:
            seeds, diffs, mean, error = paired(runs, other, target, method=method)
            cells.append(tables.per_seed(diffs, "+.2f") if seeds else tables.DASH)
            cells.append(f"**{tables.signed(mean, error)}**" if seeds else tables.DASH)
        rows.append(cells)
    header = ["target"]
    for method, other in pairs:
        header += [f"{method} − {other} per seed (pt)", "mean ± s.e."]
    return tables.table(header, rows)


def export_table(exports):
    return tables.table(
        ["target", "seed", "export_sparse gzip'd (B)", "dense, each weight once (B)", "ratio",
         "dense Keras `export()` (B)", "ratio"],
        [[tables.target(e["target"]), e["seed"], f"{e['sparse_bytes']:,}",
          f"{e['dense_once_bytes']:,}", f"**{e['ratio']:.3f}x**",
          f"{e['dense_saved_model_bytes']:,}", f"{e['ratio_to_saved_model']:.3f}x"]
         for e in sorted(exports, key=lambda e: e["target"])])


def step_table(step_time):
    ms, ratio = step_time["ms"], step_time["ratio"]
    return tables.table(
        ["Dense ms/step", "every layer switched, switching (ratio)", "frozen (ratio)",
         "library default (ratio)", "switch_every (recipe / library)", "window steps",
         "rounds"],
        [[f"{ms['dense']:.2f}", f"{ms['ks_switching']:.2f} (**{ratio['ks_switching']:.2f}x**)",
          f"{ms['ks_frozen']:.2f} ({ratio['ks_frozen']:.2f}x)",
          f"{ms['ks_library']:.2f} ({ratio['ks_library']:.2f}x)",
          f"{step_time['switch_every']} / {step_time['library_switch_every']}",
          step_time["window_steps"], step_time["rounds"]]])


def targets_table(checks):
    rows = []
    for c in checks:
        value = c["measured"]
        if value is None:
            shown = "not measured"
        elif "pt" in c["goal"]:
            shown = tables.signed(value, c.get("error"))
        else:
            shown = f"{value:.3f}x"
        rows.append([c["goal"], shown, tables.verdict(c["met"], "yes", "**no**")])
    return tables.table(["issue 19 target", "measured", "met"], rows)


def render(payload):
    """(about, tables) of the pretrained section, from the payload alone."""
    s = payload["settings"]
    p = s["plan"]
    about = (
        f"\n\nLeNet-5 on Fashion-MNIST, {len(s['seeds'])} seed(s): dense pretraining for "
        f"{s['pretrain_epochs']} epochs, then pruning for {s['epochs']} epochs with every conv "
        "and Dense layer pruned (ks: `switch_model` + `compile(target_sparsity=...)`; tfmot: "
        "`prune_low_magnitude` on the whole model; gmp_global: one magnitude threshold over "
        f"all five kernels); ks_scratch: the trainer's recipe, `switched_layers=\"all\"`, "
        f"{s['scratch_epochs']} epochs from the random init. Sparsity is exact zeros over "
        f"every conv and Dense kernel. {s['train_examples']:,} training and "
        f"{s['test_examples']:,} test examples. A pruning run is {p['steps']:,} steps: "
        f"the target ramps in (cubic) until step {p['freeze_step']:,} (TFMOT: "
        f"{p['tfmot_end_step']:,}), then the mask is fixed; masks are updated every "
        f"{p['switch_every']} steps (ks, gmp_global; the interval `fit()` plans) or "
        f"{p['tfmot_frequency']} (tfmot).")
    parts = [results_table(payload["summary"]),
             "Paired by seed (the same pretrained weights and data order):",
             paired_table(payload["runs"])]
    if payload["exports"]:
        parts += ["Whole-model export, gzip'd:", export_table(payload["exports"])]
    if payload["step_time"]:
        parts += ["Training step, LeNet-5 (batch "
                  f"{payload['step_time']['batch_size']}, interleaved medians):",
                  step_table(payload["step_time"])]
    parts.append(targets_table(payload["targets"]))
    return about, "\n\n".join(parts)


# tests/benchmarks/report_test.py makes the section again by this name.
section = render


def plot(rows, path):
    with plots.panels(path) as (axis,):
        for r in rows:
            if r["method"] == "dense":
                plots.dense_line(axis, r["mean_accuracy"], label="dense (pretrained)")
        for method in [m for m in METHODS if any(r["method"] == m for r in rows)]:
            points = sorted((r["sparsity"], r["mean_accuracy"], r["sd_accuracy"]) for r in rows
                            if r["method"] == method and r["target"] is not None)
            xs, ys, sds = zip(*points)
            axis.errorbar([100 * x for x in xs], [100 * y for y in ys],
                          yerr=[0 if math.isnan(e) else 100 * e for e in sds], fmt="o-",
                          linewidth=2.5 if method == "ks" else 1.2, capsize=3, label=method)
        plots.finish(axis, "LeNet-5, Fashion-MNIST: pruning a pretrained model",
                     "measured sparsity, every conv and Dense kernel (%)",
                     "test accuracy (%, mean ± sd of seeds)")


def write(runs, exports, step_time, settings, output_dir, markdown=False, command=None):
    """results.json, pretrained.png and pretrained.md in `output_dir`
    (`report.publish`; with `markdown`, BENCHMARKS.md's section too).
    Returns the payload."""
    payload = {"settings": settings, "runs": runs, "summary": aggregate(runs),
               "exports": exports, "step_time": step_time,
               "targets": check_targets(runs, exports, step_time)}
    report.publish("pretrained", os.path.join(output_dir, "results.json"), payload, render,
                   markdown, command=command, copy=os.path.join(output_dir, "pretrained.md"))
    plot(payload["summary"], os.path.join(output_dir, "pretrained.png"))
    return payload
