"""The figures docs/trainer.md and the configs' docstrings quote: the training
binary run on each Fashion-MNIST config exactly as its docstring says, its
report.json committed.

    python -m benchmarks.demo
    python -m benchmarks.demo --configs=lenet300_fashion_mnist

Each config runs once in a fresh process and a temporary workdir; its
report.json goes to `benchmarks/results/demo/<config>.json` with the command
in front. Run it on an idle machine: `train_seconds` is the trainer's own.
"""

import os
import tempfile

from absl import app
from absl import flags

from benchmarks.harness import cli
from benchmarks.harness import report
from benchmarks.harness import trainer

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


def command(config, workdir="/tmp/{config}", extra_flags=()):
    """The trainer's command line for `config`, as its docstring gives it."""
    return ["python", "-m", "trainers.train", f"--config=configs/{config}.py",
            f"--workdir={workdir.format(config=config)}", *extra_flags]


def quote(report):
    """A run's result as docs/trainer.md and the config docstrings state it."""
    if report.get("switched_layers", "fc") != "fc":
        return (f"test accuracy {report['test_accuracy']:.4f} at sparsity "
                f"{report['sparsity']:.4f} over the {len(report['layers'])} switched "
                f"kernels (FC {report['fc_sparsity']:.4f})")
    names = "/".join(layer["name"] for layer in report["layers"])
    values = "/".join(f"{layer['sparsity']:.4f}" for layer in report["layers"])
    return (f"test accuracy {report['test_accuracy']:.4f} at FC sparsity "
            f"{report['fc_sparsity']:.4f} ({names} {values})")


def run(config):
    """One trainer run of `config` in a fresh process: its report.json."""
    if not os.path.exists(os.path.join(report.ROOT, "configs", config + ".py")):
        raise app.UsageError(f"--configs: no configs/{config}.py")
    with tempfile.TemporaryDirectory(prefix="ks-demo-") as tmp:
        workdir = os.path.join(tmp, "run")
        return trainer.run(command(config, workdir, FLAGS.extra_flags)[3:], workdir)


def main(argv):
    cli.check_no_arguments(argv)
    for config in FLAGS.configs:
        trained = run(config)
        path = os.path.join(FLAGS.output_dir, config + ".json")
        shown = " ".join(command(config, extra_flags=FLAGS.extra_flags))
        report.write_json(path, {"command": shown, "report": trained})
        print(f"{config}: {quote(trained)}, {trained['train_seconds']:.0f} s of training "
              f"-> {path}", flush=True)


if __name__ == "__main__":
    define_flags()
    app.run(main)
