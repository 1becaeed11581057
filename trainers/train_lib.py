"""`train_and_evaluate(config, workdir)`: one training run, start to report.

Stages: check the config -> load the data -> claim the workdir (write
config.json) -> build and compile under the strategy -> resume from the last
checkpoint -> fit -> evaluate the stripped model -> export/ -> report.json.

Run directory:

    config.json               the resolved config, written before step 1
    checkpoints/              epoch-NNNN.weights.h5 + state.json (epochs
                              done, the weights file's name), every
                              `checkpoint_every_epochs`; kill-safe (see
                              `Checkpoints`)
    tensorboard/              train/ validation/ (Keras) and switches/
    export/model.keras        the stripped plain-Dense model
    export/saved_model/       the same as a SavedModel (`serve` signature)
    export/sparse/            keras_switch.export_sparse: a SavedModel (`serve`)
                              whose switched layers are stored and computed
                              sparsely
    export/model.tflite       keras_switch.export_tflite (sparse kernels)
    report.json               see REPORT_KEYS; written last, with the sizes
                              of the exports

export/ is written whole into a temporary sibling directory that then
replaces it, so a crash leaves the previous export (and report.json) as
they were.
"""

import concurrent.futures
import glob
import hashlib
import json
import math
import os
import re
import shutil
import signal
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

import keras_switch
import keras_switch.layers
import keras_switch.model
import keras_switch.schedule
from keras_switch import callbacks as switch_callbacks
from keras_switch import data as switch_data
from keras_switch import export as switch_export
from keras_switch import models as switch_models
from keras_switch.data import datasets as switch_datasets

STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker")
OPTIMIZERS = ("adam", "sgd", "adamw", "rmsprop")
# Per-channel input normalisation, by dataset (none for the grey-scale ones).
NORMALIZE = {
    "cifar10": (switch_datasets.CIFAR10_MEAN, switch_datasets.CIFAR10_STD),
    "cifar100": (switch_datasets.CIFAR100_MEAN, switch_datasets.CIFAR100_STD),
}
REPORT_KEYS = (
    "model", "dataset", "test_accuracy", "fc_sparsity", "layers", "epochs",
    "steps", "train_seconds", "export_sizes", "sparse_layers",
)
# report.json's "export_sizes": bytes on disk (sum of file sizes) and after
# gzip -9 (keras_switch.export.gzip_size) of each export.
EXPORTS = (("saved_model", "saved_model"), ("sparse", "sparse"), ("tflite", "model.tflite"))


class ConfigError(ValueError):
    """A config value that cannot work; the message names it."""


# -- config checks ----------------------------------------------------------


def check_config(config):
    """Raises ConfigError for the first bad value, before anything is written."""

    def positive_int(key, value):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ConfigError(
                f"config.{key} must be a positive integer. Received: {value!r}"
            )

    positive_int("num_epochs", config.num_epochs)
    positive_int("batch_size", config.batch_size)
    positive_int("checkpoint_every_epochs", config.checkpoint_every_epochs)
    if not isinstance(config.seed, int):
        raise ConfigError(f"config.seed must be an integer. Received: {config.seed!r}")
    for key in ("max_train_examples", "max_test_examples"):
        if config.get(key) is not None:
            positive_int(key, config[key])
    if config.model not in switch_models.MODELS:
        raise ConfigError(
            f"config.model must be one of {sorted(switch_models.MODELS)}. "
            f"Received: {config.model!r}"
        )
    if config.dataset not in switch_data.DATASETS:
        raise ConfigError(
            f"config.dataset must be one of {sorted(switch_data.DATASETS)}. "
            f"Received: {config.dataset!r}"
        )
    target = config.target_sparsity
    if target is not None and not 0.0 <= target < 1.0:
        raise ConfigError(
            f"config.target_sparsity must be None or in [0, 1). Received: {target!r}"
        )
    penalty = config.sparsity_penalty
    if penalty is not None and penalty < 0:
        raise ConfigError(
            f"config.sparsity_penalty must be None or >= 0. Received: {penalty!r}"
        )
    if target is not None and penalty is not None:
        raise ConfigError(
            "Set config.target_sparsity or config.sparsity_penalty, not both. "
            f"Received: target_sparsity={target!r}, sparsity_penalty={penalty!r}"
        )
    for key, allowed in (
        ("allocation", keras_switch.model.ALLOCATIONS),
        ("switch_estimator", keras_switch.layers.ESTIMATORS),
    ):
        if config[key] not in allowed:
            raise ConfigError(
                f"config.{key} must be one of {allowed}. Received: {config[key]!r}"
            )
    for key in ("task_optimizer", "switch_optimizer"):
        settings = config[key]
        if settings.name not in OPTIMIZERS:
            raise ConfigError(
                f"config.{key}.name must be one of {OPTIMIZERS}. "
                f"Received: {settings.name!r}"
            )
        if not settings.learning_rate > 0:
            raise ConfigError(
                f"config.{key}.learning_rate must be > 0. "
                f"Received: {settings.learning_rate!r}"
            )
    schedule = config.schedule
    if schedule.mode not in keras_switch.schedule.MODES:
        raise ConfigError(
            f"config.schedule.mode must be one of {keras_switch.schedule.MODES}. "
            f"Received: {schedule.mode!r}"
        )
    if (
        isinstance(schedule.switch_every, bool)
        or not isinstance(schedule.switch_every, int)
        or schedule.switch_every < 1
    ):
        raise ConfigError(
            "config.schedule.switch_every must be a positive integer. "
            f"Received: {schedule.switch_every!r}"
        )
    for key in ("warmup_epochs", "freeze_epochs", "ramp_epochs"):
        value = schedule[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(
                f"config.schedule.{key} must be an integer >= 0. Received: {value!r}"
            )
    if schedule.warmup_epochs + schedule.freeze_epochs >= config.num_epochs:
        raise ConfigError(
            "config.schedule.warmup_epochs + freeze_epochs must leave at least "
            f"one switching epoch of config.num_epochs={config.num_epochs}. "
            f"Received: warmup_epochs={schedule.warmup_epochs}, "
            f"freeze_epochs={schedule.freeze_epochs}"
        )


# -- the run ------------------------------------------------------------------


def train_and_evaluate(config, workdir, strategy="auto", init_from=None):
    """Trains `config` into `workdir` (resuming if it holds a checkpoint of the
    same config) and returns the report dict written to report.json."""
    check_config(config)
    if strategy not in STRATEGIES:
        raise ConfigError(
            f"--strategy must be one of {STRATEGIES}. Received: {strategy!r}"
        )
    # First: MultiWorkerMirroredStrategy must configure the collective ops
    # before TensorFlow runs anything.
    distribution = make_strategy(strategy)
    (x_train, y_train), (x_test, y_test) = _load_data(config)
    keras.utils.set_random_seed(config.seed)
    steps_per_epoch = math.ceil(len(x_train) / config.batch_size)
    with distribution.scope():  # bad switcher settings raise here...
        model = build_model(config, x_train.shape[1:])
        compile_model(model, config, steps_per_epoch)
    warm_start(model, init_from)  # --init_from; a checkpoint restored below wins
    chief = is_chief(distribution)
    if chief:  # the chief owns the workdir
        _claim_workdir(config, workdir)  # ...before anything is written

    print(f"Strategy: {type(distribution).__name__} over "
          f"{distribution.num_replicas_in_sync} replica(s).")
    # Multi-worker: every worker runs the same steps (the collectives need
    # them all), but only the chief writes into the workdir; the others write
    # into a temporary directory that is removed at the end.
    outputs = workdir if chief else _worker_scratch(distribution, workdir)
    checkpoints = Checkpoints(os.path.join(workdir, "checkpoints"), chief=chief,
                              scratch=os.path.join(outputs, "checkpoints"))
    try:
        return _run(config, outputs, chief, distribution, model, checkpoints,
                    (x_train, y_train), (x_test, y_test), steps_per_epoch)
    except PEER_ERRORS as error:
        if not _is_multi_worker(distribution):
            raise
        raise WorkerLost(_worker_lost_message(error, checkpoints, distribution)) from error
    finally:
        if not chief:
            shutil.rmtree(outputs, ignore_errors=True)


def _run(config, outputs, chief, distribution, model, checkpoints, train_arrays,
         test_arrays, steps_per_epoch):
    initial_epoch, earlier_seconds = checkpoints.restore(model)
    if initial_epoch:
        print(f"Resuming from {checkpoints.directory}: {initial_epoch} epochs done.")

    augment = bool(config.augment)
    normalize = NORMALIZE.get(config.dataset)
    test = switch_data.make_dataset(
        *test_arrays, config.batch_size, training=False, normalize=normalize
    )
    log_dir = os.path.join(outputs, "tensorboard")
    checkpoints.start_clock(earlier_seconds)
    if initial_epoch < config.num_epochs:
        # Epoch e's batches depend only on (seed, e): a resumed run trains on
        # exactly the batches the uninterrupted run would have.
        train = switch_data.make_dataset(
            *train_arrays, config.batch_size, training=True, seed=config.seed,
            augment=augment, normalize=normalize, epochs=config.num_epochs,
            initial_epoch=initial_epoch,
        )
        train = _inject_nan(train, initial_epoch * steps_per_epoch)
        model.fit(
            train,
            epochs=config.num_epochs,
            initial_epoch=initial_epoch,
            steps_per_epoch=steps_per_epoch,
            validation_data=test,
            shuffle=False,  # the tf.data pipeline shuffles, seeded
            verbose=2,
            callbacks=[
                StopOnNonFiniteLoss(steps_per_epoch, checkpoints),
                checkpoints.callback(config.checkpoint_every_epochs),
                keras.callbacks.TensorBoard(log_dir=log_dir),
                switch_callbacks.SwitchSummaries(log_dir),
            ],
        )
    train_seconds = checkpoints.elapsed() if initial_epoch < config.num_epochs else earlier_seconds

    print(f"Weights fingerprint: {weights_fingerprint(model)} "
          f"({'chief' if chief else 'worker, writing to a temporary directory'})")
    report = _report(model, config, test, train_seconds)
    report.update(_export(model, os.path.join(outputs, "export")))
    _write_json(os.path.join(outputs, "report.json"), report)
    if chief:
        _print_summary(report)
    return report


def weights_fingerprint(model):
    """sha256 (16 hex digits) of every model weight (task network, switcher,
    masks, step counter): equal on every worker of a multi-worker run."""
    digest = hashlib.sha256()
    for variable in model.weights:
        digest.update(np.ascontiguousarray(keras.ops.convert_to_numpy(variable)).tobytes())
    return digest.hexdigest()[:16]


class WorkerLost(RuntimeError):
    """Another worker of a multi-worker run died or became unreachable."""


# What a collective raises on the survivors when a peer dies: gRPC's
# UNAVAILABLE once the connection drops (at once for a killed process), or
# the coordination service's heartbeat abort for a host that vanishes.
PEER_ERRORS = (
    tf.errors.UnavailableError, tf.errors.AbortedError,
    tf.errors.CancelledError, tf.errors.DeadlineExceededError,
)


def _worker_scratch(distribution, workdir):
    """A non-chief worker's output directory: one fixed name per (workdir,
    task) under the system temp dir, emptied first, so a worker that was
    killed (and could not remove it) leaves nothing behind once restarted."""
    resolver = distribution.cluster_resolver
    key = hashlib.sha256(os.path.abspath(workdir).encode()).hexdigest()[:12]
    path = os.path.join(tempfile.gettempdir(),
                        f"ks-worker-{resolver.task_type}{resolver.task_id}-{key}")
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    return path


def _is_multi_worker(distribution):
    resolver = getattr(distribution, "cluster_resolver", None)
    return resolver is not None and bool(resolver.cluster_spec().as_dict())


def _worker_lost_message(error, checkpoints, distribution):
    """One line: which peer, what TensorFlow said, what is kept, what to do."""
    text = getattr(error, "message", None) or str(error)
    resolver = distribution.cluster_resolver
    me = (resolver.task_type, str(resolver.task_id))
    # The peer named in the error, if there is exactly one besides this task.
    peers = {task for task in re.findall(r"/job:(\w+)(?:/replica:\d+)?/task:(\d+)", text)
             if task != me}
    peer = " ".join(peers.pop()) if len(peers) == 1 else "another worker"
    cause = re.search(r'grpc_message:"([^"]+)"', text)
    if cause is None:
        cause = re.search(r"aborted by: ?([^\n]+)", text)
    reason = cause.group(1) if cause else text.strip().splitlines()[0]
    reason = reason.strip().rstrip(":").strip()
    try:
        with open(checkpoints.state) as f:
            epochs_done = int(json.load(f)["epochs_done"])
        kept = (f"the last complete checkpoint in {checkpoints.directory} "
                f"(epoch {epochs_done}) is kept")
    except (OSError, ValueError, KeyError, TypeError):
        kept = "no checkpoint had been written yet, a restart starts afresh"
    return (
        f"lost contact with {peer} of the multi-worker run "
        f"({type(error).__name__}: {reason}); stopped, {kept}. Restart every "
        "worker with the same command and TF_CONFIG to resume."
    )


def is_chief(distribution):
    """Whether this process writes the run's files: always, except for the
    non-chief workers of a multi-worker run (the chief is task "chief", or
    "worker" 0 when the cluster names no chief)."""
    if not _is_multi_worker(distribution):
        return True
    resolver = distribution.cluster_resolver
    if resolver.task_type == "chief":
        return True
    names_a_chief = "chief" in resolver.cluster_spec().as_dict()
    return not names_a_chief and resolver.task_type == "worker" and resolver.task_id == 0


def make_strategy(name):
    """auto: mirrored over the GPUs if any, else one device; mirrored without
    GPUs: over every logical CPU device (see --cpu_devices)."""
    if name == "multi_worker":  # before anything initialises TensorFlow
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if name == "one_device" or (name == "auto" and not gpus):
        return tf.distribute.OneDeviceStrategy("/gpu:0" if gpus else "/cpu:0")
    if name in ("mirrored", "auto"):
        devices = gpus or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([d.name for d in devices])
    return tf.distribute.MultiWorkerMirroredStrategy()


def build_model(config, input_shape):
    num_classes = switch_data.DATASETS[config.dataset]["num_classes"]
    switcher = keras_switch.Switcher(**dict(config.switcher))
    return switch_models.build_model(
        config.model, tuple(input_shape), num_classes, switcher=switcher
    )


def compile_model(model, config, steps_per_epoch):
    schedule = config.schedule
    freeze_step = None
    if schedule.freeze_epochs:
        freeze_step = (config.num_epochs - schedule.freeze_epochs) * steps_per_epoch
    model.compile(
        task_optimizer=_optimizer(config.task_optimizer),
        switch_optimizer=_optimizer(config.switch_optimizer),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        target_sparsity=config.target_sparsity,
        sparsity_penalty=config.sparsity_penalty,
        target_ramp_steps=schedule.ramp_epochs * steps_per_epoch,
        target_ramp_power=schedule.ramp_power,
        allocation=config.allocation,
        train_pruned_weights=config.train_pruned_weights,
        switch_estimator=config.switch_estimator,
        schedule=keras_switch.SwitchSchedule(
            mode=schedule.mode,
            switch_every=schedule.switch_every,
            warmup_steps=schedule.warmup_epochs * steps_per_epoch,
            freeze_step=freeze_step,
        ),
    )


def _optimizer(settings):
    return keras.optimizers.get(
        {"class_name": settings.name, "config": {"learning_rate": settings.learning_rate}}
    )


def _load_data(config):
    (x, y), (xt, yt) = switch_data.load_arrays(
        config.dataset, data_dir=config.data_dir, source=config.data_source
    )
    if config.get("max_train_examples"):
        x, y = x[: config.max_train_examples], y[: config.max_train_examples]
    if config.get("max_test_examples"):
        xt, yt = xt[: config.max_test_examples], yt[: config.max_test_examples]
    return (x, y), (xt, yt)


def warm_start(model, path):
    """--init_from: copies the weights of the `.keras` model at `path` into
    `model`, layer by layer by name; no-op for `path=None`.

    A `Dense` or `SwitchedDense` layer gives its kernel and bias (so a plain
    dense network, or a previous run's stripped export/model.keras, warm-starts
    the switched layers of the same name); any other layer with weights
    (Conv2D, BatchNormalization, ...) gives all of them. Switchers are not
    copied. Layers of `model` absent from the file keep their fresh
    initialisation, layers of the file absent from `model` are ignored; both
    are listed on stdout. The file is loaded with `safe_mode=True` (no
    arbitrary code, e.g. no Lambda layers). Call it before restoring a
    checkpoint: the checkpoint takes precedence.

    Raises:
        ConfigError: naming `path`, if it is missing, is not a loadable
            `.keras` file (corrupt, or naming a class that is neither built
            into Keras nor registered), no layer matches by name, or a matching
            layer's weights differ in names or shapes.
    """
    if path is None:
        return
    import zipfile

    if not os.path.isfile(path) or not zipfile.is_zipfile(path):
        what = "does not exist" if not os.path.exists(path) else "is not a zip archive"
        raise ConfigError(
            f"--init_from={path} {what}; expected a .keras model file (a zip "
            "written by keras.Model.save, e.g. a previous run's export/model.keras)."
        )
    try:
        source = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as error:  # Keras raises many types on a bad file
        reason = " ".join(str(error).split()).rstrip(".")
        unknown = re.search(r"Could not locate (class|function) '([^']+)'", reason)
        if unknown:  # Keras' message buries this under the whole config
            reason = (
                f"unknown {unknown.group(1)} {unknown.group(2)!r}, neither built "
                "into Keras nor registered with keras.saving.register_keras_serializable"
            )
        else:
            reason = f"{type(error).__name__}: " + (
                reason if len(reason) <= 500 else reason[:500] + " ..."
            )
        raise ConfigError(
            f"Cannot load --init_from={path}: {reason}. "
            "Expected a .keras file written by keras.Model.save whose layers "
            "are built into Keras or registered by keras_switch (it is loaded "
            "with safe_mode=True: no arbitrary code)."
        ) from error
    targets = _weight_layers(model)
    sources = _weight_layers(source)
    matched = [name for name in sources if name in targets]
    if not matched:
        raise ConfigError(
            f"--init_from={path}: no layer of the saved model {source.name!r} "
            f"matches a layer of {model.name!r} by name. Layers with weights "
            f"in the file: {sorted(sources)}; in the model: {sorted(targets)}."
        )
    for name in matched:
        have, want = sources[name], targets[name]
        have_names, want_names = [n for n, _ in have], [n for n, _ in want]
        if have_names != want_names:
            raise ConfigError(
                f"--init_from={path}: layer {name!r} holds weights {have_names} "
                f"in the file but {want_names} in the model."
            )
        for (weight, value), (_, variable) in zip(have, want):
            if tuple(value.shape) != tuple(variable.shape):
                raise ConfigError(
                    f"--init_from={path}: layer {name!r} {weight} has shape "
                    f"{tuple(value.shape)} in the file but the model expects "
                    f"{tuple(variable.shape)}."
                )
    for name in matched:
        for (_, value), (_, variable) in zip(sources[name], targets[name]):
            variable.assign(keras.ops.convert_to_numpy(value))
    fresh = sorted(set(targets) - set(matched))
    ignored = sorted(set(sources) - set(matched))
    print(f"Initialised {len(matched)} layer(s) from {path}: {', '.join(matched)}"
          + (f"; not in the file (fresh): {', '.join(fresh)}" if fresh else "")
          + (f"; not in the model (ignored): {', '.join(ignored)}" if ignored else ""))


def _weight_layers(model):
    """{layer name: [(weight name, variable)]} of `model`'s layers with task
    weights, in model order (see warm_start); switchers are left out."""
    from keras_switch import _keras_internals

    layers = _keras_internals.flatten_layers(model)
    skip = {
        id(inner)
        for layer in layers
        if isinstance(layer, (keras_switch.Switcher, keras_switch.SwitchedDense))
        for inner in _keras_internals.flatten_layers(layer)[1:]
    }
    out = {}
    for layer in layers[1:]:
        if id(layer) in skip:
            continue
        if isinstance(layer, (keras.layers.Dense, keras_switch.SwitchedDense)):
            weights = [("kernel", layer.kernel)]
            if layer.bias is not None:
                weights.append(("bias", layer.bias))
        elif isinstance(layer, keras_switch.Switcher) or len(
            _keras_internals.flatten_layers(layer)
        ) > 1:
            continue  # a switcher, or a container whose leaves are listed
        else:
            weights = [(v.name, v) for v in layer.weights]
        if weights:
            out[layer.name] = weights
    return out


# -- workdir, checkpoints, report, export ----------------------------------------


# Config keys added after runs were already written, each with the value that
# does what a config without it did: a config.json that lacks one is read
# with that value, so such a run still resumes under the default.
_ADDED_KEYS = {"switch_estimator": "sigmoid"}


def _claim_workdir(config, workdir):
    """Writes config.json, or checks that the one there is this config.

    Raises ConfigError, having written nothing, for a workdir that is a file,
    cannot be created or is not writable (trainers/train.py checks the same
    before TensorFlow starts; this guards library callers).
    """
    if os.path.exists(workdir) and not os.path.isdir(workdir):
        raise ConfigError(
            f"--workdir={workdir} is an existing file; expected a directory."
        )
    try:
        os.makedirs(workdir, exist_ok=True)
    except OSError as error:
        raise ConfigError(
            f"--workdir={workdir} cannot be created: {error.strerror} "
            f"({error.filename}); expected a directory path this user can write."
        ) from error
    if not os.access(workdir, os.W_OK | os.X_OK):
        raise ConfigError(
            f"--workdir={workdir} is not writable by this user (uid "
            f"{os.geteuid()}); expected a directory this user can write to."
        )
    path = os.path.join(workdir, "config.json")
    resolved = json.loads(config.to_json())
    if os.path.exists(path):
        with open(path) as f:
            existing = json.load(f)
        existing = {**_ADDED_KEYS, **existing}
        if existing != resolved:
            changed = sorted(
                k for k in set(existing) | set(resolved)
                if existing.get(k) != resolved.get(k)
            )
            raise ConfigError(
                f"{workdir} holds a run with a different config (keys {changed}). "
                "Use a new --workdir, or the same config to resume; nothing "
                "was changed."
            )
        return
    _write_json(path, resolved)


def _write_json(path, value):
    """Writes `value` to `path` atomically (a crash leaves the old file)."""
    directory = os.path.dirname(path) or "."
    with tempfile.NamedTemporaryFile("w", dir=directory, delete=False, suffix=".tmp") as f:
        json.dump(value, f, indent=2)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(f.name, path)


class Checkpoints:
    """Checkpoints that survive a kill at any instant.

    `save()` writes the weights (model, switcher, both optimizers, step
    counter) to a new file `epoch-NNNN.weights.h5`, flushed to disk, then
    replaces `state.json` atomically; `state.json` names the weights file
    that goes with it. So the latest complete checkpoint is always the one
    `state.json` names: a kill while the weights are written leaves a stray
    file that nothing refers to (removed by the next save), never a torn
    checkpoint.
    """

    def __init__(self, directory, chief=True, scratch=None):
        if not chief and scratch is None:
            raise ValueError("A non-chief worker's Checkpoints need `scratch`.")
        self.directory = directory
        self.state = os.path.join(directory, "state.json")
        self.chief = chief
        self.scratch = scratch  # where a non-chief worker's saves go
        self._clock = (time.time(), 0.0)

    def restore(self, model):
        """Loads the checkpoint into `model`: (epochs done, seconds spent)."""
        if not os.path.exists(self.state):
            return 0, 0.0
        try:
            with open(self.state) as f:
                state = json.load(f)
            epochs_done = int(state["epochs_done"])
            seconds = float(state["train_seconds"])
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(
                f"{self.state} is not a checkpoint state written by this "
                f"trainer ({error}). Move it away to start afresh."
            ) from error
        # Checkpoints of earlier versions: one fixed weights file.
        weights = os.path.join(self.directory, state.get("weights", "latest.weights.h5"))
        model.build_optimizers()
        model.load_weights(weights)
        return epochs_done, seconds

    def start_clock(self, earlier_seconds):
        self._clock = (time.time(), earlier_seconds)

    def elapsed(self):
        started, earlier = self._clock
        return earlier + time.time() - started

    def save(self, model, epochs_done):
        """Writes the checkpoint of `epochs_done` epochs. Every worker of a
        multi-worker run calls it (saving may need all of them); only the
        chief's lands in `directory`, the others' go to `scratch`, removed
        afterwards."""
        directory = self.directory if self.chief else self.scratch
        try:
            os.makedirs(directory, exist_ok=True)
            name = f"epoch-{epochs_done:04d}.weights.h5"
            path = os.path.join(directory, name)
            fault_point("checkpoint_start")
            model.save_weights(path)
            _fsync(path)
            fault_point("checkpoint_weights_written")
            _write_json(
                os.path.join(directory, "state.json"),
                {"epochs_done": epochs_done, "train_seconds": self.elapsed(),
                 "weights": name},
            )
            fault_point("checkpoint_state_written")
            for stale in glob.glob(os.path.join(directory, "*.weights.h5")):
                if os.path.basename(stale) != name:
                    os.remove(stale)
        finally:
            if not self.chief:
                shutil.rmtree(directory, ignore_errors=True)

    def callback(self, every_epochs):
        checkpoints = self

        class _Save(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                if (epoch + 1) % every_epochs == 0:
                    checkpoints.save(self.model, epoch + 1)

        return _Save()


def _fsync(path):
    with open(path, "rb") as f:
        os.fsync(f.fileno())


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite."""


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Raises `TrainingDiverged` naming the step at the first batch after
    which a loss (task or switch) or a weight is NaN or infinite, before any
    later checkpoint is written: the last good checkpoint stays the latest.

    The weights are checked too because a NaN can poison them while the
    logged loss stays finite (a NaN batch gives NaN gradients). The check is
    one fused reduction per step.
    """

    def __init__(self, steps_per_epoch, checkpoints):
        super().__init__()
        self.steps_per_epoch = steps_per_epoch
        self.checkpoints = checkpoints
        self.epoch = 0
        self._all_finite = None

    def on_train_begin(self, logs=None):
        variables = list(self.model.trainable_variables)

        @tf.function
        def all_finite():
            return tf.reduce_all(
                [tf.reduce_all(tf.math.is_finite(v)) for v in variables]
            )

        self._all_finite = all_finite

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        problem = None
        for key in ("loss", "switch_loss"):
            value = (logs or {}).get(key)
            if value is not None and not math.isfinite(float(value)):
                problem = f"Training {key.replace('_', ' ')} is {float(value)}"
                break
        if problem is None and not bool(self._all_finite()):
            bad = next(v.path for v in self.model.trainable_variables
                       if not np.all(np.isfinite(keras.ops.convert_to_numpy(v))))
            problem = f"Weights became NaN or infinite ({bad})"
        if problem is None:
            return
        step = self.epoch * self.steps_per_epoch + batch + 1
        kept = (
            f"the last good checkpoint in {self.checkpoints.directory} is kept"
            if os.path.exists(self.checkpoints.state)
            else "no checkpoint had been written yet"
        )
        raise TrainingDiverged(
            f"{problem} at step {step} (epoch {self.epoch + 1}, batch "
            f"{batch + 1}); stopped, {kept}. Lower the learning rate or check "
            "the data."
        )


# Fault injection for the reliability tests: KERAS_SWITCH_FAULT="NAME:N"
# kills the process (SIGKILL) the N-th time it passes the point NAME (see
# `Checkpoints.save`), or, for "nan_batch:N", turns the N-th training batch
# (1-based global step) into NaNs. Unset in normal use.
_FAULT_COUNTS = {}


def _fault():
    spec = os.environ.get("KERAS_SWITCH_FAULT")
    if not spec:
        return None, 0
    name, _, count = spec.partition(":")
    return name, int(count or 1)


def fault_point(name):
    wanted, count = _fault()
    if wanted != name:
        return
    _FAULT_COUNTS[name] = _FAULT_COUNTS.get(name, 0) + 1
    if _FAULT_COUNTS[name] == count:
        os.kill(os.getpid(), signal.SIGKILL)


def _inject_nan(dataset, initial_step):
    wanted, step = _fault()
    if wanted != "nan_batch":
        return dataset
    index = step - 1 - initial_step

    def poison(i, batch):
        images, labels = batch
        bad = tf.fill(tf.shape(images), float("nan"))
        return tf.where(tf.equal(i, index), bad, images), labels

    return dataset.enumerate().map(poison)


def _accuracy(model, dataset):
    correct = total = 0
    for x, y in dataset:
        predictions = np.argmax(model.predict_on_batch(x), axis=-1)
        correct += int(np.sum(predictions == y.numpy()))
        total += len(predictions)
    return correct / total


def _report(model, config, test, train_seconds):
    sparsity = keras_switch.sparsity_report(model)
    return {
        "model": config.model,
        "dataset": config.dataset,
        "test_accuracy": _accuracy(keras_switch.strip_switches(model), test),
        "fc_sparsity": sparsity["overall"],
        "layers": sparsity["layers"],
        "epochs": config.num_epochs,
        "steps": int(keras.ops.convert_to_numpy(model.switching_step)),
        "train_seconds": train_seconds,
    }


def _export(model, directory):
    """Writes export/ (see the module docstring) and returns the report's
    "export_sizes" and "sparse_layers".

    Everything is written into a temporary sibling of `directory`, which
    then takes its place: a failure leaves the previous export untouched.
    (Leftovers of a killed export are removed first; the export is derived
    from the checkpoint, so nothing is lost.)
    """
    parent = os.path.dirname(os.path.abspath(directory))
    for stale in glob.glob(os.path.join(parent, ".export-*")):
        shutil.rmtree(stale, ignore_errors=True)
    staging = tempfile.mkdtemp(dir=parent, prefix=".export-")
    try:
        stripped = keras_switch.strip_switches(model)
        stripped.save(os.path.join(staging, "model.keras"))
        stripped.export(os.path.join(staging, "saved_model"), verbose=False)
        sparse = keras_switch.export_sparse(model, os.path.join(staging, "sparse"))
        keras_switch.export_tflite(model, os.path.join(staging, "model.tflite"))
        paths = [os.path.join(staging, name) for _, name in EXPORTS]
        # zlib releases the GIL: the exports compress side by side (a
        # ResNet34's take 7 s instead of 12 on 2 cores).
        with concurrent.futures.ThreadPoolExecutor(len(paths)) as pool:
            gzipped = list(pool.map(switch_export.gzip_size, paths))
        sizes = {key: switch_export.raw_size(path) for (key, _), path in zip(EXPORTS, paths)}
        sizes.update({f"{key}_gzip": size for (key, _), size in zip(EXPORTS, gzipped)})
        if os.path.exists(directory):
            previous = staging + ".old"
            os.replace(directory, previous)
            os.replace(staging, directory)
            shutil.rmtree(previous)
        else:
            os.replace(staging, directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return {"export_sizes": sizes, "sparse_layers": sparse["layers"]}


def _print_summary(report):
    print(f"\n{report['model']} on {report['dataset']}: test accuracy "
          f"{report['test_accuracy']:.4f}, FC sparsity {report['fc_sparsity']:.4f}, "
          f"{report['steps']} steps in {report['train_seconds']:.0f} s")
    print(f"  {'layer':<16} {'shape':>11} {'nonzeros':>9} {'sparsity':>9}")
    for row in report["layers"]:
        shape = "x".join(str(d) for d in row["shape"])
        print(f"  {row['name']:<16} {shape:>11} {row['nonzeros']:>9} {row['sparsity']:>9.4f}")
    sizes = report["export_sizes"]
    print("  export (KiB on disk / gzip -9): " + ", ".join(
        f"{key} {sizes[key] / 1024:.0f}/{sizes[key + '_gzip'] / 1024:.0f}"
        for key, _ in EXPORTS))
