"""Checks of the trainer's input that need no TensorFlow, and claiming the
workdir.

Nothing here imports TensorFlow, Keras or keras_switch (a test checks it):
trainers/train.py runs these checks before TensorFlow starts, so bad input
is answered in well under a second, and before anything is written. Every
error is a `ConfigError` whose message names the flag or config key and the
value received; the binary prints it as one `error: ...` line and exits 2.
"""

import json
import os
import zipfile

from trainers.atomic_json import write_json

STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker", "data_parallel")
# The --strategy values each Keras backend runs: tf.distribute's on
# TensorFlow, keras.distribution's on JAX, one device on PyTorch (Keras has
# no distribution for it).
BACKEND_STRATEGIES = {
    "tensorflow": ("auto", "one_device", "mirrored", "multi_worker"),
    "jax": ("auto", "one_device", "data_parallel"),
    "torch": ("auto", "one_device"),
}
TF_CONFIG_EXAMPLE = (
    '{"cluster": {"worker": ["host1:port", "host2:port"]}, '
    '"task": {"type": "worker", "index": 0}}'
)
# Config keys added after runs were already written, each with the value that
# does what a config without it did: a config.json that lacks one is read
# with that value, so such a run still resumes under the default.
_ADDED_KEYS = {"switch_estimator": "sigmoid"}


class ConfigError(ValueError):
    """A flag, the environment or a config value cannot work; the message
    names it and the value received.

    The one error type for bad input across trainers/ (flag_parsing.py,
    build.py, warm_start.py, train_lib.py raise it too); it lives here, in
    the module that loads no TensorFlow, so every one of them can import
    it."""


def check_flags(workdir, strategy="auto", init_from=None, tf_config=None,
                backend="tensorflow"):
    """The checks of the binary's flags that need no TensorFlow: --workdir,
    --strategy on the Keras `backend`, `tf_config` (the TF_CONFIG variable) with
    --strategy=multi_worker, and the --init_from file. Nothing is written.

    Raises:
        ConfigError: for the first of them that cannot work (see
            check_workdir, check_strategy, check_tf_config, check_keras_file).
    """
    check_workdir(workdir)
    check_strategy(strategy, backend)
    if strategy == "multi_worker":
        check_tf_config(tf_config)
    if init_from is not None:
        check_keras_file(init_from)


def check_strategy(name, backend="tensorflow"):
    """Raises ConfigError unless `name` (--strategy) is one of STRATEGIES
    (the binary's enum flag refuses others already; in-process callers of
    train_lib.train_and_evaluate are checked here) and one that the Keras
    `backend` runs (BACKEND_STRATEGIES): tf.distribute's strategies need
    TensorFlow, data_parallel is JAX's keras.distribution.DataParallel."""
    if name not in STRATEGIES:
        raise ConfigError(f"--strategy must be one of {STRATEGIES}. Received: {name!r}")
    if backend not in BACKEND_STRATEGIES:
        raise ConfigError(
            f"The trainer runs on the Keras backends {sorted(BACKEND_STRATEGIES)}. "
            f"Received: KERAS_BACKEND={backend!r}")
    if name not in BACKEND_STRATEGIES[backend]:
        raise ConfigError(
            f"--strategy={name} does not run on the {backend} backend of Keras "
            f"(KERAS_BACKEND={backend}); it takes --strategy of "
            f"{BACKEND_STRATEGIES[backend]}.")


def check_tf_config(raw):
    """TF_CONFIG for MultiWorkerMirroredStrategy: unset (one local worker), or
    JSON {"cluster": {job: ["host:port", ...]}, "task": {"type": job,
    "index": i}} with 0 <= i < len(cluster[job]) (or type "evaluator").

    Raises:
        ConfigError: `TF_CONFIG <what is wrong>; --strategy=multi_worker
            expects JSON like ... Received: TF_CONFIG=<the value, cut at 200
            characters>`.
    """
    if raw is None or not raw.strip():
        return
    shown = raw if len(raw) <= 200 else raw[:200] + "..."

    def bad(why):
        return ConfigError(
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


def is_model_file(model):
    """Whether config.model names a user's saved model (a path ending in
    `.keras`) rather than a zoo architecture."""
    return isinstance(model, str) and model.endswith(".keras")


def check_keras_file(path, name="--init_from"):
    """`name` (--init_from, or config.model given a file) must name a .keras
    file (a zip archive); whether Keras can load it is checked once
    TensorFlow is up (trainers/warm_start.py, trainers/build.py).

    Raises:
        ConfigError: if `path` does not exist, is a directory, does not end
            in .keras, or is not a zip archive.
    """
    if not os.path.isfile(path):
        what = "is a directory" if os.path.isdir(path) else "does not exist"
        raise ConfigError(
            f"{name}={path} {what}; expected a .keras model file (e.g. a "
            "previous run's export/model.keras)."
        )
    if not path.endswith(".keras"):
        raise ConfigError(
            f"{name}={path} does not end in .keras; expected a model "
            "saved by keras.Model.save('....keras')."
        )
    if not zipfile.is_zipfile(path):
        raise ConfigError(
            f"{name}={path} is not a .keras file: it is not a zip archive "
            "(a .keras file is a zip holding config.json and "
            "model.weights.h5). Is it corrupt or truncated?"
        )


# -- the trainer's own config keys ----------------------------------------------

OPTIMIZERS = ("adam", "sgd", "adamw", "rmsprop")


def check_config(config, models=None, datasets=None):
    """Raises ConfigError for the first bad value of a key only the trainer
    reads: sizes and counts, the seed, `model` (one of `models`, or a
    `.keras` file: see `is_model_file`), `dataset` (one of `datasets`), the optimizers, and the schedule's epochs. With
    `models` or `datasets` None (trainers/train.py, before TensorFlow is
    imported: the names live in keras_switch), that name is not checked. The keys
    that become arguments of library objects (`schedule.mode`,
    `schedule.switch_every`, the sparsity keys, `switch_estimator`,
    `switcher.*`) are checked by those objects, once, when train_lib builds
    them (trainers/build.py)."""
    for key in ("num_epochs", "batch_size", "checkpoint_every_epochs"):
        _check_int(key, config[key], minimum=1)
    if isinstance(config.seed, bool) or not isinstance(config.seed, int):
        raise ConfigError(f"config.seed must be an integer. Received: {config.seed!r}")
    for key in ("max_train_examples", "max_test_examples", "validation_examples"):
        if config.get(key) is not None:
            _check_int(key, config[key], minimum=1)
    if config.get("validation_examples") is not None and config.get("accuracy_budget") is None:
        raise ConfigError(
            "config.validation_examples holds out training examples for an "
            "accuracy budget, and config.accuracy_budget is None. Received: "
            f"validation_examples={config.validation_examples!r}")
    if is_model_file(config.model):
        check_keras_file(config.model, "config.model")
        models = None
    for key, names in (("model", models), ("dataset", datasets)):
        if names is not None and config[key] not in names:
            raise ConfigError(
                f"config.{key} must be one of {sorted(names)}. Received: {config[key]!r}"
            )
    for key in ("task_optimizer", "switch_optimizer"):
        settings = config[key]
        if settings.name not in OPTIMIZERS:
            raise ConfigError(
                f"config.{key}.name must be one of {OPTIMIZERS}. "
                f"Received: {settings.name!r}"
            )
        rate = settings.learning_rate
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not rate > 0:
            raise ConfigError(
                f"config.{key}.learning_rate must be > 0. "
                f"Received: {settings.learning_rate!r}"
            )
    schedule = config.schedule
    for key in ("warmup_epochs", "freeze_epochs", "ramp_epochs"):
        _check_int(f"schedule.{key}", schedule[key], minimum=0)
    if schedule.warmup_epochs + schedule.freeze_epochs >= config.num_epochs:
        raise ConfigError(
            "config.schedule.warmup_epochs + freeze_epochs must leave at least "
            f"one switching epoch of config.num_epochs={config.num_epochs}. "
            f"Received: warmup_epochs={schedule.warmup_epochs}, "
            f"freeze_epochs={schedule.freeze_epochs}"
        )


def _check_int(key, value, minimum):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        expected = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ConfigError(f"config.{key} must be {expected}. Received: {value!r}")


# -- the workdir --------------------------------------------------------------


def check_workdir(workdir):
    """The run directory must be a directory (or creatable as one) that this
    process may write to. Nothing is created: an existing workdir keeps its
    contents and its modification time.

    Raises:
        ConfigError: if `workdir` is empty, is a file or lies below one, or
            does not let this user create files in it (or, while it does not
            exist yet, in its nearest existing parent).
    """
    if not workdir:
        raise ConfigError("--workdir is empty; expected the run directory.")
    path = os.path.abspath(workdir)
    if os.path.exists(path) and not os.path.isdir(path):
        raise ConfigError(
            f"--workdir={workdir} is an existing file; expected a directory "
            "(existing, or one to create)."
        )
    existing = path
    while not os.path.lexists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise ConfigError(
            f"--workdir={workdir} cannot be created: {existing} is a file, "
            "not a directory."
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        what = "the workdir" if existing == path else "its parent"
        raise ConfigError(
            f"--workdir={workdir} is not writable: {what} {existing} does not "
            f"allow this user (uid {os.geteuid()}) to create files; expected a "
            "directory this user can write to."
        )


def claim_workdir(config, workdir):
    """Creates `workdir` and writes `config` (a ConfigDict) to config.json,
    or checks that the config.json there is this config.

    Raises:
        ConfigError: having written nothing, for a workdir that `check_workdir`
            refuses or that cannot be created, or one that holds a run of
            another config (naming the top-level keys that differ, then each
            differing value, dotted, with the one in its config.json).
    """
    check_workdir(workdir)
    try:
        os.makedirs(workdir, exist_ok=True)
    except OSError as error:
        raise ConfigError(
            f"--workdir={workdir} cannot be created: {error.strerror} "
            f"({error.filename}); expected a directory path this user can write."
        ) from error
    path = os.path.join(workdir, "config.json")
    resolved = json.loads(config.to_json())
    if not os.path.exists(path):
        write_json(path, resolved)
        return
    with open(path) as f:
        existing = {**_ADDED_KEYS, **json.load(f)}
    if existing != resolved:
        differences = _differences(existing, resolved)
        changed = sorted({key.split(".")[0] for key, _, _ in differences})
        values = "; ".join(
            f"config.{key}={new!r} (its config.json: {old!r})"
            for key, old, new in differences
        )
        raise ConfigError(
            f"--workdir={workdir} holds a run with a different config (keys {changed}). "
            "Use a new --workdir, or the same config to resume; nothing "
            f"was changed. Received: {values}"
        )


_ABSENT = "<absent>"


def _differences(old, new, prefix=""):
    """[(dotted key, old value, new value)] of the leaves that differ between
    two config dicts (_ABSENT for a key one of them lacks)."""
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key, _ABSENT), new.get(key, _ABSENT)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append((prefix + key, a, b))
    return out

