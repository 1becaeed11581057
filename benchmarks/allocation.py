"""Could any mask reach the accuracy target? Gradual magnitude pruning at
fixed per-layer splits of one overall sparsity, and at other mask-update
intervals.

    python -m benchmarks.allocation
    python -m benchmarks.allocation --target=0.95 --splits=0.90:0.50

Each `--splits` entry fixes the sparsity of `fc2:fc3` (`fc1` takes what
keeps the overall FC sparsity at `--target`) and gradual magnitude pruning
trains at that split, with the init, data and budget of `benchmarks.pareto`.
`global` rows are global magnitude pruning, once per `--intervals` entry.
"""

import math

from absl import app
from absl import flags

from benchmarks.harness import cli
from benchmarks.harness import lenet
from benchmarks.harness import report
from benchmarks.harness import stats
from benchmarks.harness import tables

# Keras is imported where a model trains: report_test imports this module.

FLAGS = flags.FLAGS


def define_flags():
    flags.DEFINE_string("model", "lenet300", "Model: lenet300 or lenet5.")
    flags.DEFINE_float("target", 0.98, "Overall FC sparsity (all three Dense kernels).")
    flags.DEFINE_list("splits", ["0.939:0.554", "0.943:0.40", "0.943:0.20", "0.96:0.55",
                                 "0.90:0.55"],
                      "fc2:fc3 sparsities to fix; fc1 takes the rest of the budget.")
    flags.DEFINE_list("intervals", ["100", "10"],
                      "Mask-update intervals (steps) of the global rows.")
    flags.DEFINE_integer("switch_every", None,
                         "Mask-update interval of the split rows (default: the "
                         "keras-switch recipe's schedule.switch_every).")
    flags.DEFINE_list("seeds", ["0", "1"], "Seeds (init, data order).")
    cli.define_budget(epochs=10, batch_size=128)
    cli.define_data()
    flags.DEFINE_string("output", "benchmarks/results/allocation.json", "Results JSON.")
    cli.define_markdown("allocation")


def first_layer_sparsity(sizes, target, rest):
    """The sparsity of the first layer that keeps the overall sparsity at
    `target` when the others have `rest` ({layer: sparsity}).

    Raises:
        ValueError: when no first-layer sparsity in [0, 1] does.
    """
    first, *others = sizes
    kept = (1.0 - target) * sum(sizes.values())
    kept -= sum((1.0 - rest[name]) * sizes[name] for name in others)
    sparsity = 1.0 - kept / sizes[first]
    if not 0.0 <= sparsity <= 1.0:
        raise ValueError(
            f"Split {rest} cannot reach overall sparsity {target}: {first} would "
            f"need sparsity {sparsity:.4f}, expected a value in [0, 1]")
    return sparsity


def parse_split(text, names):
    """`"0.94:0.55"` -> {fc2: 0.94, fc3: 0.55} for `names` (the layers after
    the first)."""
    parts = text.split(":")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = None
    if values is None or len(values) != len(names) or not all(0 <= v < 1 for v in values):
        raise app.UsageError(
            f"--splits entry {text!r}: expected {len(names)} sparsities in [0, 1) "
            f"joined by ':' ({':'.join(names)}), e.g. 0.94:0.55")
    return dict(zip(names, values))


def _run(model, data, seed, allocation, every, ramp_steps, power, init):
    from benchmarks.harness import baselines
    from benchmarks.harness import runs as bench_runs

    return bench_runs.train_plain(
        model, data, seed, FLAGS.epochs, FLAGS.batch_size, 1e-3, init,
        pruning=lambda layers: baselines.GradualPruning(
            layers, "magnitude", allocation, FLAGS.target, ramp_steps, every,
            power=power, seed=seed))


def markdown_table(rows):
    return tables.table(
        ["mask", "fc1/fc2/fc3 sparsity asked (%)", "measured (%)", "FC sparsity", "update every",
         "acc per seed", "mean acc"],
        [[r["mask"], tables.percents(r["asked"]) if r["asked"] else tables.DASH, r["measured"],
          f"{r['fc_sparsity']:.4f}", r["every"], tables.per_seed(r["accuracy"]),
          f"**{r['mean']:.4f}**"] for r in rows])


def section(payload):
    """(about, table) of the allocation section, from the JSON payload."""
    about = f" ({payload['model']}, target {payload['target']:g}, {payload['epochs']} epochs)"
    return about, markdown_table(payload["results"])


def main(argv):
    from benchmarks.harness import baselines
    from benchmarks.harness import runs as bench_runs

    cli.check_no_arguments(argv)
    if FLAGS.model not in lenet.MODELS:
        raise app.UsageError(f"--model={FLAGS.model!r}: expected one of {lenet.MODELS}")
    if FLAGS.switch_every is not None and FLAGS.switch_every < 1:
        raise app.UsageError(f"--switch_every={FLAGS.switch_every}: expected a positive integer")
    if not 0.0 < FLAGS.target < 1.0:
        raise app.UsageError(f"--target={FLAGS.target}: expected a value in (0, 1)")
    intervals = []
    for text in FLAGS.intervals:
        if not text.isdigit() or int(text) < 1:
            raise app.UsageError(f"--intervals entry {text!r}: expected a positive integer")
        intervals.append(int(text))
    plain = baselines.plain_model(FLAGS.model)
    sizes = {name: math.prod(plain.get_layer(name).kernel.shape) for name in baselines.FC_LAYERS}
    splits = []
    for text in FLAGS.splits:
        rest = parse_split(text, baselines.FC_LAYERS[1:])
        try:
            first = first_layer_sparsity(sizes, FLAGS.target, rest)
        except ValueError as error:
            raise app.UsageError(f"--splits entry {text!r}: {error}") from None
        splits.append({baselines.FC_LAYERS[0]: first, **rest})

    data = cli.load_data()
    config = bench_runs.recipe(FLAGS.model, FLAGS.target, 0, FLAGS.epochs,
                               batch_size=FLAGS.batch_size)
    steps_per_epoch = -(-len(data[0][0]) // FLAGS.batch_size)
    ramp_steps = config.schedule.ramp_epochs * steps_per_epoch
    power = config.schedule.ramp_power
    plans = [("global", None, every) for every in intervals]
    every = FLAGS.switch_every or config.schedule.switch_every
    plans += [("split", split, every) for split in splits]
    seeds = [int(v) for v in FLAGS.seeds]
    inits = {seed: baselines.initial_weights(FLAGS.model, seed) for seed in seeds}
    rows = []
    for mask, split, every in plans:
        runs = [dict(_run(FLAGS.model, data, seed, split or "global", every, ramp_steps, power,
                          inits[seed]), seed=seed) for seed in seeds]
        row = stats.over_seeds(runs, ("fc_sparsity", "layer_sparsity"))
        rows.append({
            "mask": mask, "asked": split, "every": every, "seeds": seeds,
            "accuracy": row["accuracy"], "mean": row["mean_accuracy"],
            "fc_sparsity": row["fc_sparsity"], "layer_sparsity": row["layer_sparsity"],
            "measured": tables.percents(row["layer_sparsity"]),
        })
        print(markdown_table(rows[-1:]).splitlines()[-1], flush=True)
    payload = {"model": FLAGS.model, "target": FLAGS.target, "epochs": FLAGS.epochs,
               "results": rows}
    report.publish("allocation", FLAGS.output, payload, section, FLAGS.markdown)


if __name__ == "__main__":
    define_flags()
    app.run(main)
