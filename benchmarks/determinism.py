r"""What `trainers.train --deterministic` costs: training time with and
without TensorFlow's deterministic ops, and whether the runs repeat.

    python -m benchmarks.determinism
    python -m benchmarks.determinism --models=lenet300 --rounds=5

Op determinism is a process-wide switch that cannot be turned off again, so
the two settings cannot share a process. Instead, each round runs the
trainer twice on the same config and seed, once with `--deterministic` and
once without, in alternating order (so drift of the machine's load hits both
alike), each in a fresh process and workdir. Reported per model: the median
over rounds of `train_seconds` (from report.json: the fit, its per-epoch
validation and tracing; not the process start, the data loading or the
export) for each setting, the median of the per-round ratios
deterministic / default, and whether every run of a setting gave the same
report.json metrics (test_accuracy, fc_sparsity, per-layer nonzeros, steps).
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile

from absl import app
from absl import flags

FLAGS = flags.FLAGS
flags.DEFINE_list("models", ["lenet300", "lenet5"], "Models: lenet300, lenet5.")
flags.DEFINE_integer("rounds", 3, "Pairs of runs (deterministic, default) per model.")
flags.DEFINE_integer("epochs", 3, "Epochs per run (1 ramp, 1 frozen).")
flags.DEFINE_integer("max_train_examples", None,
                     "Cut the training set (default: all 60000).")
flags.DEFINE_string("data_dir", "/usr/share/datasets/fashion-mnist",
                    "Fashion-MNIST IDX files.")
flags.DEFINE_string("output", "benchmarks/results/determinism.json", "Results JSON.")
flags.DEFINE_bool("markdown", False, "Rewrite the determinism section of BENCHMARKS.md.")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
METRICS = ("test_accuracy", "fc_sparsity", "steps")


def _run_trainer(model_name, deterministic):
    """One trainer run in a fresh process: its report.json."""
    with tempfile.TemporaryDirectory(prefix="ks-determinism-") as workdir:
        command = [
            sys.executable, "-m", "trainers.train",
            f"--config=configs/{model_name}_fashion_mnist.py", f"--workdir={workdir}",
            f"--config.data_dir={FLAGS.data_dir}", f"--config.num_epochs={FLAGS.epochs}",
            "--config.schedule.ramp_epochs=1", "--config.schedule.freeze_epochs=1",
        ]
        if FLAGS.max_train_examples:
            command.append(f"--config.max_train_examples={FLAGS.max_train_examples}")
        if deterministic:
            command.append("--deterministic")
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2",
                   PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
        result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
        if result.returncode:
            raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}):\n"
                               f"{result.stderr[-3000:]}")
        with open(os.path.join(workdir, "report.json")) as f:
            return json.load(f)


def _signature(report):
    """The metrics two repeatable runs must share."""
    return json.dumps([[report[k] for k in METRICS],
                       [layer["nonzeros"] for layer in report["layers"]]])


def measure(model_name):
    seconds = {"deterministic": [], "default": []}
    signatures = {"deterministic": set(), "default": set()}
    ratios = []
    for r in range(FLAGS.rounds):
        order = ["deterministic", "default"] if r % 2 == 0 else ["default", "deterministic"]
        this_round = {}
        for setting in order:
            report = _run_trainer(model_name, setting == "deterministic")
            this_round[setting] = report["train_seconds"]
            seconds[setting].append(report["train_seconds"])
            signatures[setting].add(_signature(report))
            print(f"{model_name} round {r + 1}/{FLAGS.rounds} {setting}: "
                  f"{report['train_seconds']:.1f} s, test accuracy "
                  f"{report['test_accuracy']:.4f}", flush=True)
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
    lines = [
        "| model | epochs | runs per setting | default train s (median) "
        "| `--deterministic` train s (median) | ratio (median of rounds) "
        "| identical metrics: deterministic / default |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        seconds = r["median_seconds"]
        same = r["repeatable"]
        lines.append(
            f"| {r['model']} | {r['epochs']} | {r['rounds']} | {seconds['default']:.1f} "
            f"| {seconds['deterministic']:.1f} | **{r['ratio']:.2f}x** "
            f"| {'yes' if same['deterministic'] else 'NO'} / "
            f"{'yes' if same['default'] else 'no'} |"
        )
    return "\n".join(lines)


def section(payload):
    """(about, table) of the determinism section, from the JSON payload."""
    return "", markdown_table(payload["results"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if FLAGS.rounds < 1:
        raise app.UsageError(f"--rounds must be at least 1. Received: {FLAGS.rounds}")
    results = [measure(model_name) for model_name in FLAGS.models]
    from benchmarks import report

    payload = {"results": results}
    report.publish("determinism", FLAGS.output, payload, section, FLAGS.markdown)


if __name__ == "__main__":
    app.run(main)
