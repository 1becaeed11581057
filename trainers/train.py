r"""Trains a switched network from a config file.

    python -m trainers.train --config=configs/lenet300_fashion_mnist.py \
        --workdir=/tmp/lenet300 [--config.target_sparsity=0.95] [--strategy=auto] \
        [--init_from=/tmp/dense/export/model.keras]

Everything about the experiment lives in the config (`--config.<key>=<value>`
overrides any key; unknown keys are an error). The run directory layout is
described in trainers/train_lib.py and README.md. Restarting with the same
--workdir and config resumes from the last checkpoint; a checkpoint there
takes precedence over --init_from.

Bad input (an unknown or ill-typed flag or config key, a bad config value,
malformed TF_CONFIG, a --workdir that cannot be written, missing or malformed
data, an --init_from file that cannot be loaded) exits with status 2 and one
`error: ...` line on stderr naming the value and what was expected, before
anything is written to --workdir. The checks that need no TensorFlow run
before it is imported, so they answer in well under a second.

Exit status: 0 done; 1 an unexpected error (a traceback); 2 bad input; 3 the
loss or a weight became NaN/Inf (the last good checkpoint is kept); 4 another
worker of a --strategy=multi_worker run died or became unreachable (the last
checkpoint is kept: restart every worker to resume).
"""

import json
import os
import re
import sys
import zipfile

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
    "device; multi_worker reads TF_CONFIG (checked before TensorFlow starts).",
)
flags.DEFINE_integer(
    "cpu_devices", 0, lower_bound=0, help=
    "Split the CPU into this many logical devices before TensorFlow starts "
    "(for testing mirrored training without GPUs); 0 leaves it whole.",
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
TF_CONFIG_EXAMPLE = (
    '{"cluster": {"worker": ["host1:port", "host2:port"]}, '
    '"task": {"type": "worker", "index": 0}}'
)


class UsageError(ValueError):
    """A flag, the environment or the config cannot work; the message says why."""


def _fail(message):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(USAGE_ERROR)


# -- flag parsing -------------------------------------------------------------


def _parse_flags(argv):
    """absl's flag parsing, with its errors reported as `error: ...`, exit 2.

    ml_collections reports an override of a key the config does not have
    (`--config.no_such_key=1`) as a bare AttributeError traceback; that is
    turned into a message naming the override.
    """
    try:
        return FLAGS(argv)
    except flags.Error as error:
        _fail(f"{str(error).rstrip('.')}. Pass --helpfull to see the flags.")
    except OSError as error:  # ml_collections: the config file failed to load
        _fail(_config_file_message(argv, error))
    except (AttributeError, KeyError) as error:
        message = _unknown_key_message(argv, error)
        if message is None:
            raise
        _fail(message)


def _unknown_key_message(argv, error):
    """The message for `--config.<path>` naming a key the config lacks, or
    None when `error` is not about an override."""
    overrides = [
        (match.group(1), arg)
        for arg in argv[1:]
        for match in [re.match(r"^--?config\.([^=\s]+)", arg)]
        if match
    ]
    # The exception's text is the missing key in quotes, then possibly
    # ml_collections' "Did you mean ..." hint.
    text = str(error).strip("\"'")
    quoted = re.search(r"'([^']+)'", str(error))
    key = quoted.group(1) if quoted else text
    culprits = [arg for path, arg in overrides if key in path.split(".")]
    if not culprits:
        return None
    hint = re.search(r"Did you mean \"[^\"]+\" instead of \"[^\"]+\"\?", str(error))
    return (
        f"unknown config key: {culprits[0]} ({key!r} is not a key of "
        f"--config={_config_path(argv)}). Overrides must name an existing "
        "key, see README.md (Config keys)."
        + (f" {hint.group(0)}" if hint else "")
    )


def _config_file_message(argv, error):
    reason = " ".join(str(error).split())
    reason = reason.replace(
        "Configuration is not available because of an earlier failure to load: ", ""
    )
    return f"--config={_config_path(argv)}: {reason}"


def _config_path(argv):
    """The --config file named in `argv` (the last one, as absl does)."""
    found = "?"
    for i, arg in enumerate(argv):
        match = re.match(r"^--?config(=(.*))?$", arg)
        if match:
            found = match.group(2) if match.group(1) else (
                argv[i + 1] if i + 1 < len(argv) else "?"
            )
    return found


# -- checks that need no TensorFlow -------------------------------------------


def check_flags():
    """Raises UsageError for a bad --config file, --workdir, TF_CONFIG (with
    --strategy=multi_worker) or --init_from file, before TensorFlow starts."""
    try:
        FLAGS.config.keys()  # a config file that failed to load raises here
    except OSError as error:
        raise UsageError(_config_file_message(sys.argv, error)) from None
    check_workdir(FLAGS.workdir)
    if FLAGS.strategy == "multi_worker":
        check_tf_config(os.environ.get("TF_CONFIG"))
    if FLAGS.init_from is not None:
        check_keras_file(FLAGS.init_from)


def check_workdir(workdir):
    """The run directory must be a directory (or creatable as one) that this
    process may write to. Nothing is created: an existing workdir keeps its
    contents and its modification time."""
    if not workdir:
        raise UsageError("--workdir is empty; expected the run directory.")
    path = os.path.abspath(workdir)
    if os.path.exists(path) and not os.path.isdir(path):
        raise UsageError(
            f"--workdir={workdir} is an existing file; expected a directory "
            "(existing, or one to create)."
        )
    existing = path
    while not os.path.lexists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise UsageError(
            f"--workdir={workdir} cannot be created: {existing} is a file, "
            "not a directory."
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        what = "the workdir" if existing == path else "its parent"
        raise UsageError(
            f"--workdir={workdir} is not writable: {what} {existing} does not "
            f"allow this user (uid {os.geteuid()}) to create files; expected a "
            "directory this user can write to."
        )


def check_tf_config(raw):
    """TF_CONFIG for MultiWorkerMirroredStrategy: unset (one local worker), or
    JSON {"cluster": {job: ["host:port", ...]}, "task": {"type": job,
    "index": i}} with 0 <= i < len(cluster[job])."""
    if raw is None or not raw.strip():
        return
    shown = raw if len(raw) <= 200 else raw[:200] + "..."

    def bad(why):
        return UsageError(
            f"TF_CONFIG {why}; --strategy=multi_worker expects JSON like "
            f"{TF_CONFIG_EXAMPLE}. Received: TF_CONFIG={shown}"
        )

    try:
        tf_config = json.loads(raw)
    except json.JSONDecodeError as error:
        raise bad(f"is not valid JSON ({error})") from None
    if not isinstance(tf_config, dict):
        raise bad(f"is a JSON {type(tf_config).__name__}, not an object")
    for key in ("cluster", "task"):
        if key not in tf_config:
            raise bad(f'has no "{key}"')
    cluster, task = tf_config["cluster"], tf_config["task"]
    if not isinstance(cluster, dict) or not cluster:
        raise bad('"cluster" is not a non-empty object of job name -> addresses')
    for job, addresses in cluster.items():
        if (
            not isinstance(addresses, list)
            or not addresses
            or not all(isinstance(a, str) and ":" in a for a in addresses)
        ):
            raise bad(f'"cluster"."{job}" is not a non-empty list of "host:port"')
    if not isinstance(task, dict):
        raise bad('"task" is not an object with "type" and "index"')
    job, index = task.get("type"), task.get("index")
    if job not in cluster and job != "evaluator":
        raise bad(f'"task"."type"={job!r} is not a job of "cluster" {sorted(cluster)}')
    if isinstance(index, bool) or not isinstance(index, int):
        raise bad(f'"task"."index"={index!r} is not an integer')
    if job in cluster and not 0 <= index < len(cluster[job]):
        raise bad(
            f'"task"."index"={index} is out of range for the '
            f'{len(cluster[job])} "{job}" address(es) of "cluster"'
        )


def check_keras_file(path):
    """--init_from must name a .keras file (a zip archive); whether Keras can
    load it is checked once TensorFlow is up (train_lib.warm_start)."""
    if not os.path.isfile(path):
        what = "is a directory" if os.path.isdir(path) else "does not exist"
        raise UsageError(
            f"--init_from={path} {what}; expected a .keras model file (e.g. a "
            "previous run's export/model.keras)."
        )
    if not path.endswith(".keras"):
        raise UsageError(
            f"--init_from={path} does not end in .keras; expected a model "
            "saved by keras.Model.save('....keras')."
        )
    if not zipfile.is_zipfile(path):
        raise UsageError(
            f"--init_from={path} is not a .keras file: it is not a zip archive "
            "(a .keras file is a zip holding config.json and "
            "model.weights.h5). Is it corrupt or truncated?"
        )


def main(argv):
    if len(argv) > 1:
        _fail(f"Unexpected arguments: {argv[1:]}")
    try:
        check_flags()
    except UsageError as error:
        _fail(error)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.set_verbosity(logging.WARNING)  # TF's SavedModel export logs at INFO
    import tensorflow as tf

    if FLAGS.cpu_devices:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * FLAGS.cpu_devices
        )
    if FLAGS.deterministic:
        tf.config.experimental.enable_op_determinism()
    from trainers import train_lib

    try:
        train_lib.train_and_evaluate(
            FLAGS.config, FLAGS.workdir, FLAGS.strategy, init_from=FLAGS.init_from
        )
    except (train_lib.TrainingDiverged, train_lib.WorkerLost) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(TRAINING_DIVERGED if isinstance(error, train_lib.TrainingDiverged)
                 else WORKER_LOST)
    except (ValueError, FileNotFoundError, ImportError) as error:
        _fail(error)


if __name__ == "__main__":
    app.run(main, flags_parser=_parse_flags)
