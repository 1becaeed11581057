r"""Trains a switched network from a config file.

    python -m trainers.train --config=configs/lenet300_fashion_mnist.py \
        --workdir=/tmp/lenet300 [--config.target_sparsity=0.95] [--strategy=auto] \
        [--init_from=/tmp/dense/export/model.keras]

Everything about the experiment lives in the config (`--config.<key>=<value>`
overrides any key; unknown keys are an error). The run directory layout is
described in trainers/train_lib.py and docs/trainer.md. Restarting with the same
--workdir and config resumes from the last checkpoint; a checkpoint there
takes precedence over --init_from.

Bad input exits with status 2 and one `error: ...` line naming the value,
before anything is written (docs/trainer.md, "Bad input"): the flags are parsed with
absl's errors reworded (trainers/flag_parsing.py), and the checks that need
no TensorFlow (trainers/preflight.py) run before it is imported.

Exit status: 0 done; 1 an unexpected error (a traceback); 2 bad input; 3 the
loss or a weight became NaN/Inf (the last good checkpoint is kept); 4 another
worker of a --strategy=multi_worker run died or became unreachable (the last
checkpoint is kept: restart every worker to resume).
"""

import os
import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from trainers import flag_parsing
from trainers import preflight

config_flags.DEFINE_config_file(
    "config", None, "Experiment config file (configs/*.py).", lock_config=True
)
flags.DEFINE_string("workdir", None, "Run directory (created if missing).")
flags.DEFINE_enum(
    "strategy", "auto", list(preflight.STRATEGIES),
    "How training is distributed. TensorFlow backend: tf.distribute, auto = "
    "mirrored over the GPUs if any, else one device; multi_worker reads "
    "TF_CONFIG (checked before TensorFlow starts). JAX backend "
    "(KERAS_BACKEND=jax): auto = data_parallel over the accelerators if "
    "there are several, else one device; data_parallel = "
    "keras.distribution.DataParallel over every device. PyTorch backend "
    "(KERAS_BACKEND=torch): auto and one_device, one device.",
)
flags.DEFINE_integer(
    "cpu_devices", 0, lower_bound=0, help=
    "Split the CPU into this many logical devices before TensorFlow (or, "
    "with KERAS_BACKEND=jax, JAX) starts, for testing mirrored or "
    "data-parallel training without GPUs; 0 leaves it whole.",
)
flags.DEFINE_string(
    "init_from", None,
    "Warm start: a .keras model file (e.g. a dense pretrained network, or a "
    "previous run's export/model.keras) whose weights are copied into the new "
    "network, layer by layer by name (Dense or SwitchedDense kernel and bias; "
    "all weights of other layers such as Conv2D); shapes must agree. Loaded "
    "with safe_mode=True, so no arbitrary code runs. A checkpoint in --workdir "
    "takes precedence: a resumed run continues from the checkpoint.",
)
flags.DEFINE_bool(
    "deterministic", False,
    "Enable TensorFlow's deterministic ops "
    "(tf.config.experimental.enable_op_determinism): with the config's seed, "
    "two runs give identical report.json metrics. Can cost speed.",
)
flags.mark_flags_as_required(["config", "workdir"])
FLAGS = flags.FLAGS

USAGE_ERROR = 2  # exit status of every bad-input error
TRAINING_DIVERGED = 3  # exit status when a loss or weight became NaN/Inf
WORKER_LOST = 4  # exit status when another worker of a multi-worker run died


def _fail(message, status=USAGE_ERROR):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(status)


def _parse_flags(argv):
    try:
        return flag_parsing.parse_flags(FLAGS, argv)
    except preflight.ConfigError as error:
        _fail(error)


def main(argv):
    if len(argv) > 1:
        _fail(f"Unexpected arguments: {argv[1:]}")
    try:
        FLAGS.config.keys()  # a config file that failed to load raises here
    except OSError as error:
        _fail(flag_parsing.config_file_message(sys.argv, error))
    try:  # before TensorFlow starts
        preflight.check_flags(FLAGS.workdir, FLAGS.strategy, FLAGS.init_from,
                              tf_config=os.environ.get("TF_CONFIG"),
                              backend=os.environ.get("KERAS_BACKEND", "tensorflow"))
        preflight.check_config(FLAGS.config)  # all but the model and dataset names
    except preflight.ConfigError as error:
        _fail(error)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.set_verbosity(logging.WARNING)  # TF's SavedModel export logs at INFO
    if FLAGS.cpu_devices and os.environ.get("KERAS_BACKEND") == "jax":
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_"
                                   f"platform_device_count={FLAGS.cpu_devices}").strip()
    import tensorflow as tf

    if FLAGS.cpu_devices:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * FLAGS.cpu_devices
        )
    if FLAGS.deterministic:
        tf.config.experimental.enable_op_determinism()
    from trainers import train_lib
    from trainers.checkpoints import TrainingDiverged
    from trainers.distributed import WorkerLost

    try:
        train_lib.train_and_evaluate(
            FLAGS.config, FLAGS.workdir, FLAGS.strategy, init_from=FLAGS.init_from
        )
    except TrainingDiverged as error:
        _fail(error, TRAINING_DIVERGED)
    except WorkerLost as error:
        _fail(error, WORKER_LOST)
    except (ValueError, FileNotFoundError, ImportError) as error:
        _fail(error)


if __name__ == "__main__":
    app.run(main, flags_parser=_parse_flags)
