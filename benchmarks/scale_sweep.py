"""The scale sweep of `benchmarks.step_time --scale_sweep`: what a switched
layer costs as it grows, against its Dense twin.

One layer, `Input(width) -> Dense(width)` (width * width weights, all
switched; MSE on fixed random batches), trained by `train_on_batch` in a
fresh process per (width, mode), so that each peak RSS is its own:

* `dense`: the plain Keras model;
* `switch`: `switch_model` of it, compiled with `target_sparsity`, a switch
  step on every batch (what one switch step costs);
* `recipe`: the same with a switch step every `RECIPE_EVERY` batches (the
  trainer's recipe), timed over whole intervals.

Reported per width: the median step time of each mode and its ratio to
Dense, and the peak RSS over Dense's divided by the switched weights
(bytes per switched weight).
"""

import json
import resource
import subprocess
import sys
import time

import numpy as np

from benchmarks.harness import tables

MODES = ("dense", "switch", "recipe")
RECIPE_EVERY = 100
# Issue 30's targets: a switch step within 3x a Dense step, and at most 24
# bytes of extra peak memory per switched weight.
TARGET_RATIO = 3.0
TARGET_BYTES = 24.0


def child(mode, width, batch_size, steps):
    """Trains one (mode, width) model in this process; returns
    `{"ms": [per-step ms], "peak_rss_mib": float}` (the warm-up steps not
    timed), and the switched model's `"sparsity"`."""
    import keras

    import keras_switch

    rng = np.random.default_rng(0)
    x = rng.random((batch_size, width), dtype="float32")
    y = rng.random((batch_size, width), dtype="float32")
    inputs = keras.Input((width,))
    model = keras.Model(inputs, keras.layers.Dense(width)(inputs))
    if mode == "dense":
        model.compile(optimizer="adam", loss="mse")
    else:
        model = keras_switch.switch_model(model)
        every = 1 if mode == "switch" else RECIPE_EVERY
        model.compile(optimizer="adam", loss="mse", target_sparsity=0.9, target_ramp_steps=1,
                      schedule=keras_switch.SwitchSchedule(switch_every=every, freeze_step=None))
    warmup = 2 if mode != "recipe" else RECIPE_EVERY
    times = []
    for step in range(warmup + steps):
        started = time.perf_counter()
        model.train_on_batch(x, y)
        if step >= warmup:
            times.append(1000.0 * (time.perf_counter() - started))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    result = {"ms": times, "peak_rss_mib": peak}
    if mode != "dense":
        result["sparsity"] = keras_switch.sparsity_report(model)["overall"]
    return result


def sweep(widths, batch_size, steps, module="benchmarks.step_time"):
    """Runs `child` for every width and mode, each in a fresh process of
    `python -m module --scale_child=mode,width ...`; returns one result per
    width."""
    results = []
    for width in widths:
        measured = {}
        for mode in MODES:
            mode_steps = steps if mode != "recipe" else RECIPE_EVERY * max(1, steps // 5)
            output = subprocess.run(
                [sys.executable, "-m", module, f"--scale_child={mode},{width}",
                 f"--batch_size={batch_size}", f"--scale_steps={mode_steps}"],
                check=True, capture_output=True, text=True).stdout
            measured[mode] = json.loads(output.strip().splitlines()[-1])
        weights = width * width
        ms = {mode: float(np.median(m["ms"])) for mode, m in measured.items()}
        # The recipe's cost is its mean step: one switch step per interval.
        ms["recipe"] = float(np.mean(measured["recipe"]["ms"]))
        peak = {mode: m["peak_rss_mib"] for mode, m in measured.items()}
        extra = {mode: (peak[mode] - peak["dense"]) * 2**20 / weights
                 for mode in ("switch", "recipe")}
        results.append({
            "width": width, "switched_weights": weights, "batch_size": batch_size,
            "steps": steps, "ms_per_step": ms, "peak_rss_mib": peak,
            "ratio": {mode: ms[mode] / ms["dense"] for mode in ("switch", "recipe")},
            "bytes_per_switched_weight": extra,
        })
        print(f"width {width} ({weights / 1e6:.1f}M weights): dense {ms['dense']:.1f} ms, "
              f"switch {ms['switch']:.1f} ms ({results[-1]['ratio']['switch']:.1f}x), "
              f"recipe {ms['recipe']:.1f} ms; extra peak "
              f"{extra['switch']:.0f} B/weight (switch), {extra['recipe']:.0f} (recipe)",
              flush=True)
    return results


def markdown_table(results):
    rows = []
    for r in results:
        ms, ratio, extra = r["ms_per_step"], r["ratio"], r["bytes_per_switched_weight"]
        rows.append([
            f"{r['switched_weights'] / 1e6:.1f}M ({r['width']}x{r['width']})",
            f"{ms['dense']:.1f}",
            f"{ms['switch']:.1f} (**{ratio['switch']:.1f}x**, "
            f"{_met(ratio['switch'] <= TARGET_RATIO)})",
            f"{ms['recipe']:.1f} ({ratio['recipe']:.2f}x)",
            f"{r['peak_rss_mib']['dense']:.0f} / {r['peak_rss_mib']['switch']:.0f} / "
            f"{r['peak_rss_mib']['recipe']:.0f}",
            f"**{extra['switch']:.0f}** ({_met(extra['switch'] <= TARGET_BYTES)}) / "
            f"{extra['recipe']:.0f}",
        ])
    return tables.table(
        ["switched weights", "Dense ms/step", "switch step ms (ratio, ≤ 3x)",
         f"recipe ms/step (every {RECIPE_EVERY}; ratio)",
         "peak RSS MiB: Dense / switch / recipe",
         "extra bytes per switched weight: switch (≤ 24) / recipe"], rows)


def _met(met):
    return "met" if met else "missed"
