r"""Trains a switched network from a config file.

    python -m trainers.train --config=configs/lenet300_fashion_mnist.py \
        --workdir=/tmp/lenet300 [--config.target_sparsity=0.95] [--strategy=auto]

Everything about the experiment lives in the config (`--config.<key>=<value>`
overrides any key; unknown keys are an error). The run directory layout is
described in trainers/train_lib.py and README.md. Restarting with the same
--workdir and config resumes from the last checkpoint.
"""

import os
import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

config_flags.DEFINE_config_file(
    "config", None, "Experiment config file (configs/*.py).", lock_config=True
)
flags.DEFINE_string("workdir", None, "Run directory (created if missing).")
flags.DEFINE_enum(
    "strategy", "auto", ["auto", "one_device", "mirrored", "multi_worker"],
    "tf.distribute strategy: auto = mirrored over the GPUs if any, else one "
    "device; multi_worker reads TF_CONFIG.",
)
flags.DEFINE_integer(
    "cpu_devices", 0,
    "Split the CPU into this many logical devices before TensorFlow starts "
    "(for testing mirrored training without GPUs); 0 leaves it whole.",
)
flags.mark_flags_as_required(["config", "workdir"])
FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.set_verbosity(logging.WARNING)  # TF's SavedModel export logs at INFO
    import tensorflow as tf

    if FLAGS.cpu_devices:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * FLAGS.cpu_devices
        )
    from trainers import train_lib

    try:
        train_lib.train_and_evaluate(FLAGS.config, FLAGS.workdir, FLAGS.strategy)
    except (ValueError, FileNotFoundError, ImportError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    app.run(main)
