"""What `trainers.train --deterministic` costs: training time with and
without TensorFlow's deterministic ops, and whether the runs repeat.

    python -m benchmarks.determinism
    python -m benchmarks.determinism --models=lenet300 --rounds=5

Op determinism cannot be turned off within a process, so each round runs
the trainer once per setting, each in a fresh process, in alternating
order. Reported per model: the median `train_seconds` of each setting, the
median per-round ratio deterministic / default, and whether every run of a
setting gave the same report.json metrics.
"""

import json
import statistics
import tempfile

from absl import app
from absl import flags

from benchmarks.harness import cli
from benchmarks.harness import report
from benchmarks.harness import tables
from benchmarks.harness import trainer

FLAGS = flags.FLAGS
METRICS = ("test_accuracy", "fc_sparsity", "steps")


def define_flags():
    cli.define_models(["lenet300", "lenet5"])
    flags.DEFINE_integer("rounds", 3, "Pairs of runs (deterministic, default) per model.")
    flags.DEFINE_integer("epochs", 3, "Epochs per run (1 ramp, 1 frozen).")
    flags.DEFINE_integer("max_train_examples", None,
                         "Cut the training set (default: all 60000).")
    cli.define_data(truncate=False, help="Fashion-MNIST IDX files.")
    flags.DEFINE_string("output", "benchmarks/results/determinism.json", "Results JSON.")
    cli.define_markdown("determinism")


def _run_trainer(model_name, deterministic):
    """One trainer run in a fresh process: its report.json."""
    with tempfile.TemporaryDirectory(prefix="ks-determinism-") as workdir:
        args = [
            f"--config=configs/{model_name}_fashion_mnist.py", f"--workdir={workdir}",
            f"--config.data_dir={FLAGS.data_dir}", f"--config.num_epochs={FLAGS.epochs}",
            "--config.schedule.ramp_epochs=1", "--config.schedule.freeze_epochs=1",
        ]
        if FLAGS.max_train_examples:
            args.append(f"--config.max_train_examples={FLAGS.max_train_examples}")
        if deterministic:
            args.append("--deterministic")
        return trainer.run(args, workdir)


def _signature(trained):
    """The metrics two repeatable runs (their report.json) must share."""
    return json.dumps([[trained[k] for k in METRICS],
                       [layer["nonzeros"] for layer in trained["layers"]]])


def measure(model_name):
    seconds = {"deterministic": [], "default": []}
    signatures = {"deterministic": set(), "default": set()}
    ratios = []
    for r in range(FLAGS.rounds):
        order = ["deterministic", "default"] if r % 2 == 0 else ["default", "deterministic"]
        this_round = {}
        for setting in order:
            trained = _run_trainer(model_name, setting == "deterministic")
            this_round[setting] = trained["train_seconds"]
            seconds[setting].append(trained["train_seconds"])
            signatures[setting].add(_signature(trained))
            print(f"{model_name} round {r + 1}/{FLAGS.rounds} {setting}: "
                  f"{trained['train_seconds']:.1f} s, test accuracy "
                  f"{trained['test_accuracy']:.4f}", flush=True)
        ratios.append(this_round["deterministic"] / this_round["default"])
    return {
        "model": model_name,
        "epochs": FLAGS.epochs,
        "rounds": FLAGS.rounds,
        "train_seconds": seconds,
        "median_seconds": {k: statistics.median(v) for k, v in seconds.items()},
        "ratio": statistics.median(ratios),
        "ratios": ratios,
        "repeatable": {k: len(v) == 1 for k, v in signatures.items()},
    }


def markdown_table(results):
    return tables.table(
        ["model", "epochs", "runs per setting", "default train s (median)",
         "`--deterministic` train s (median)", "ratio (median of rounds)",
         "identical metrics: deterministic / default"],
        [[r["model"], r["epochs"], r["rounds"], f"{r['median_seconds']['default']:.1f}",
          f"{r['median_seconds']['deterministic']:.1f}", f"**{r['ratio']:.2f}x**",
          f"{'yes' if r['repeatable']['deterministic'] else 'NO'} / "
          f"{'yes' if r['repeatable']['default'] else 'no'}"] for r in results])


# tests/benchmarks/report_test.py makes the section again by this name.
section = report.results_section(markdown_table)


def main(argv):
    cli.check_no_arguments(argv)
    if FLAGS.rounds < 1:
        raise app.UsageError(f"--rounds must be at least 1. Received: {FLAGS.rounds}")
    results = [measure(model_name) for model_name in FLAGS.models]
    payload = {"results": results}
    report.publish("determinism", FLAGS.output, payload, section, FLAGS.markdown)


if __name__ == "__main__":
    define_flags()
    app.run(main)
