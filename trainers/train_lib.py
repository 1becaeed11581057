"""`train_and_evaluate(config, workdir)`: one training run, start to report.

Stages, in this order (each in its own module where it is more than a few
lines): check the config -> the tf.distribute strategy (distributed.py) ->
load the data -> build and compile under the strategy -> --init_from
(warm_start.py) -> claim the workdir, writing config.json (preflight.py) ->
resume from the last checkpoint (checkpoints.py) -> fit -> evaluate the
stripped model -> export/ -> report.json.

Run directory:

    config.json               the resolved config, written before step 1
    checkpoints/              epoch-NNNN.weights.h5 + state.json (epochs
                              done, the weights file's name), every
                              `checkpoint_every_epochs`; kill-safe (see
                              checkpoints.Checkpoints)
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
import math
import os
import shutil
import tempfile

import keras
import numpy as np

import keras_switch
import keras_switch.layers
import keras_switch.schedule
import keras_switch.sparsity
from keras_switch import callbacks as switch_callbacks
from keras_switch import data as switch_data
from keras_switch import export as switch_export
from keras_switch import models as switch_models
from keras_switch.data import datasets as switch_datasets
from trainers import distributed
from trainers import preflight
from trainers.checkpoints import Checkpoints
from trainers.checkpoints import StopOnNonFiniteLoss
from trainers.checkpoints import inject_nan
from trainers.preflight import ConfigError
from trainers.warm_start import warm_start

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


def train_and_evaluate(config, workdir, strategy="auto", init_from=None):
    """Trains `config` into `workdir` (resuming if it holds a checkpoint of the
    same config) and returns the report dict written to report.json.

    Raises:
        ConfigError: for bad input (naming the flag or config key), before
            anything is written; also ValueError/OSError for bad data files.
        checkpoints.TrainingDiverged: a loss or weight became NaN/Inf.
        distributed.WorkerLost: another worker of a multi-worker run died.
    """
    check_config(config)
    preflight.check_strategy(strategy)
    distribution = distributed.make_strategy(strategy)  # before TF runs anything
    (x_train, y_train), (x_test, y_test) = _load_data(config)
    keras.utils.set_random_seed(config.seed)
    steps_per_epoch = math.ceil(len(x_train) / config.batch_size)
    with distribution.scope():  # bad switcher settings raise here...
        model = build_model(config, x_train.shape[1:])
        compile_model(model, config, steps_per_epoch)
    warm_start(model, init_from)  # --init_from; a checkpoint restored below wins
    chief = distributed.is_chief(distribution)
    if chief:  # the chief owns the workdir
        preflight.claim_workdir(config, workdir)  # ...before anything is written
    print(f"Strategy: {type(distribution).__name__} over "
          f"{distribution.num_replicas_in_sync} replica(s).")

    with distributed.output_directory(distribution, workdir) as outputs:
        checkpoints = Checkpoints(os.path.join(workdir, "checkpoints"), chief=chief,
                                  scratch=os.path.join(outputs, "checkpoints"))
        with distributed.stop_on_lost_worker(distribution, checkpoints):
            initial_epoch, earlier_seconds = checkpoints.restore(model)
            if initial_epoch:
                print(f"Resuming from {checkpoints.directory}: {initial_epoch} epochs done.")
            normalize = NORMALIZE.get(config.dataset)
            test = switch_data.make_dataset(
                x_test, y_test, config.batch_size, training=False, normalize=normalize
            )
            checkpoints.start_clock(earlier_seconds)
            if initial_epoch < config.num_epochs:
                _fit(model, config, (x_train, y_train), test, initial_epoch,
                     steps_per_epoch, checkpoints, os.path.join(outputs, "tensorboard"))
                train_seconds = checkpoints.elapsed()
            else:
                train_seconds = earlier_seconds
            print(f"Weights fingerprint: {distributed.weights_fingerprint(model)} "
                  f"({'chief' if chief else 'worker, writing to a temporary directory'})")
            report = _report(model, config, test, train_seconds)
            report.update(_export(model, os.path.join(outputs, "export")))
            preflight.write_json(os.path.join(outputs, "report.json"), report)
    if chief:
        _print_summary(report)
    return report


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
        ("allocation", keras_switch.sparsity.ALLOCATIONS),
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


def _load_data(config):
    (x, y), (xt, yt) = switch_data.load_arrays(
        config.dataset, data_dir=config.data_dir, source=config.data_source
    )
    if config.get("max_train_examples"):
        x, y = x[: config.max_train_examples], y[: config.max_train_examples]
    if config.get("max_test_examples"):
        xt, yt = xt[: config.max_test_examples], yt[: config.max_test_examples]
    return (x, y), (xt, yt)


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


def _fit(model, config, train_arrays, test, initial_epoch, steps_per_epoch,
         checkpoints, log_dir):
    """Trains from `initial_epoch` to config.num_epochs, checkpointing."""
    # Epoch e's batches depend only on (seed, e): a resumed run trains on
    # exactly the batches the uninterrupted run would have.
    train = switch_data.make_dataset(
        *train_arrays, config.batch_size, training=True, seed=config.seed,
        augment=bool(config.augment), normalize=NORMALIZE.get(config.dataset),
        epochs=config.num_epochs, initial_epoch=initial_epoch,
    )
    model.fit(
        inject_nan(train, initial_epoch * steps_per_epoch),  # a test hook, see checkpoints.py
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
