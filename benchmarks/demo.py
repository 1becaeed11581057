r"""The figures README.md and the configs' docstrings quote: the training
binary run on each Fashion-MNIST config exactly as its docstring says, its
report.json committed.

    python -m benchmarks.demo
    python -m benchmarks.demo --configs=lenet300_fashion_mnist

Each config runs once in a fresh process and a temporary workdir with
`python -m trainers.train --config=configs/<config>.py --workdir=<tmp>`
(`make demo` runs the first config this way), and its report.json is written
to `benchmarks/results/demo/<config>.json` with the command in front.
`train_seconds` is the trainer's own figure (the fit and its per-epoch
validation, not the process start, data loading or export): run it on an
idle machine. tests/benchmarks/demo_test.py checks that README.md and the
config docstrings quote these files.
"""

import json
import os
import subprocess
import sys
import tempfile

from absl import app
from absl import flags

from benchmarks import common

FLAGS = flags.FLAGS


def define_flags():
    """The command line's flags (defined only when run as a script, so that
    tests can import `quote` next to other benchmarks)."""
    flags.DEFINE_list("configs", ["lenet300_fashion_mnist", "lenet5_fashion_mnist"],
                      "Config names under configs/.")
    flags.DEFINE_string("output_dir", "benchmarks/results/demo",
                        "Where each config's report goes, as <config>.json.")
    flags.DEFINE_list("extra_flags", [],
                      "More trainer flags for a smoke run (e.g. "
                      "--config.num_epochs=1); the committed results use none.")


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def command(config, workdir="/tmp/{config}", extra_flags=()):
    """The trainer's command line for `config`, as its docstring gives it."""
    return ["python", "-m", "trainers.train", f"--config=configs/{config}.py",
            f"--workdir={workdir.format(config=config)}", *extra_flags]


def quote(report):
    """A run's result as README.md and the config docstrings state it."""
    names = "/".join(layer["name"] for layer in report["layers"])
    values = "/".join(f"{layer['sparsity']:.4f}" for layer in report["layers"])
    return (f"test accuracy {report['test_accuracy']:.4f} at FC sparsity "
            f"{report['fc_sparsity']:.4f} ({names} {values})")


def run(config):
    """One trainer run of `config` in a fresh process: its report.json."""
    if not os.path.exists(os.path.join(ROOT, "configs", config + ".py")):
        raise app.UsageError(f"--configs: no configs/{config}.py")
    with tempfile.TemporaryDirectory(prefix="ks-demo-") as tmp:
        args = command(config, os.path.join(tmp, "run"), FLAGS.extra_flags)
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2",
                   PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
        result = subprocess.run([sys.executable, *args[1:]], cwd=ROOT, env=env,
                                capture_output=True, text=True)
        if result.returncode:
            raise RuntimeError(f"{' '.join(args)} failed ({result.returncode}):\n"
                               f"{result.stderr[-3000:]}")
        with open(os.path.join(tmp, "run", "report.json")) as f:
            return json.load(f)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    for config in FLAGS.configs:
        report = run(config)
        path = os.path.join(FLAGS.output_dir, config + ".json")
        common.write_json(path, {"command": " ".join(command(config, extra_flags=FLAGS.extra_flags)),
                                 "report": report})
        print(f"{config}: {quote(report)}, {report['train_seconds']:.0f} s of training "
              f"-> {path}", flush=True)


if __name__ == "__main__":
    define_flags()
    app.run(main)
