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
import warnings

import keras
import numpy as np

import keras_switch
from keras_switch import callbacks as switch_callbacks
from keras_switch import data as switch_data
from keras_switch import export as switch_export
from keras_switch import models as switch_models
from keras_switch.data import datasets as switch_datasets
from keras_switch.sparsity import BudgetExceededWarning
from keras_switch.sparsity import TargetShortfallWarning
from trainers import distributed
from trainers import preflight
from trainers import tf_export
from trainers.atomic_json import write_json
from trainers.build import build_model
from trainers.build import compile_model
from trainers.checkpoints import Checkpoints
from trainers.checkpoints import StopOnNonFiniteLoss
from trainers.checkpoints import inject_nan
from trainers.warm_start import warm_start

# Input standardisation by dataset, with the training pixels' mean and std
# (none for scikit-learn's digits, whose tests pin raw inputs).
NORMALIZE = {
    "mnist": (switch_datasets.MNIST_MEAN, switch_datasets.MNIST_STD),
    "fashion_mnist": (switch_datasets.FASHION_MNIST_MEAN, switch_datasets.FASHION_MNIST_STD),
    "cifar10": (switch_datasets.CIFAR10_MEAN, switch_datasets.CIFAR10_STD),
    "cifar100": (switch_datasets.CIFAR100_MEAN, switch_datasets.CIFAR100_STD),
}
REPORT_KEYS = (
    "model", "dataset", "test_accuracy", "fc_sparsity", "layers", "epochs",
    "steps", "train_seconds", "export_sizes", "sparse_layers", "target_sparsity",
    "target_shortfall", "input_standardization", "switched_layers", "sparsity",
    "accuracy_budget", "validation_examples", "reference_validation_accuracy",
    "validation_accuracy", "budget_met", "budget_outcome", "keras_backend",
)
# validation_examples=None with an accuracy budget: 10% of the training
# split, at most this many (5,000 of Fashion-MNIST's 60,000: held-out accuracy
# then has a standard error of ~0.45 pt per check, BENCHMARKS.md).
DEFAULT_VALIDATION_EXAMPLES = 5000
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
    preflight.check_strategy(strategy, keras.backend.backend())
    distribution = distributed.make_strategy(strategy)  # before TF runs anything
    (x_train, y_train), (x_test, y_test) = _load_data(config)
    (x_train, y_train), heldout = _hold_out(config, x_train, y_train)
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
                validation = test
                if heldout is not None:  # the budget's held-out data, never the test set
                    validation = switch_data.make_dataset(
                        *heldout, config.batch_size, training=False, normalize=normalize)
                _fit(model, config, (x_train, y_train), validation, initial_epoch,
                     steps_per_epoch, checkpoints, os.path.join(outputs, "tensorboard"))
                train_seconds = checkpoints.elapsed()
            else:
                train_seconds = earlier_seconds
            print(f"Weights fingerprint: {distributed.weights_fingerprint(model)} "
                  f"({'chief' if chief else 'worker, writing to a temporary directory'})")
            report = _report(model, config, test, train_seconds,
                             None if heldout is None else len(heldout[1]))
            report.update(_export(model, os.path.join(outputs, "export")))
            write_json(os.path.join(outputs, "report.json"), report)
    if chief:
        _print_summary(report)
    return report


def check_config(config):
    """Raises ConfigError for the first bad value of the trainer's own keys
    (preflight.check_config); the keys that go to library objects are
    checked by those objects when compile_model builds them."""
    preflight.check_config(config, switch_models.MODELS, switch_data.DATASETS)


def _load_data(config):
    (x, y), (xt, yt) = switch_data.load_arrays(
        config.dataset, data_dir=config.data_dir, source=config.data_source
    )
    if config.get("max_train_examples"):
        x, y = x[: config.max_train_examples], y[: config.max_train_examples]
    if config.get("max_test_examples"):
        xt, yt = xt[: config.max_test_examples], yt[: config.max_test_examples]
    return (x, y), (xt, yt)


def _hold_out(config, x, y):
    """`(x, y)` without the examples held out for an accuracy budget, and
    those (None without a budget): a seeded draw of `validation_examples`
    (default: 10% of the training split, at most 5,000)."""
    if config.get("accuracy_budget") is None:
        return (x, y), None
    count = config.get("validation_examples")
    if count is None:
        count = max(1, min(DEFAULT_VALIDATION_EXAMPLES, len(x) // 10))
    if not 1 <= count < len(x):
        raise preflight.ConfigError(
            f"config.validation_examples={config.get('validation_examples')!r}: the "
            f"accuracy budget needs held-out examples and training examples, and the "
            f"training split has {len(x)}; hold out between 1 and {len(x) - 1}. "
            f"Received: {count} held out")
    return held_out_split(x, y, count, config.seed)


def held_out_split(x, y, count, seed):
    """`(x, y)` less `count` examples drawn with `seed`, and those."""
    order = np.random.default_rng(seed).permutation(len(x))
    return (x[order[count:]], y[order[count:]]), (x[order[:count]], y[order[:count]])


def _fit(model, config, train_arrays, validation, initial_epoch, steps_per_epoch,
         checkpoints, log_dir):
    """Trains from `initial_epoch` to config.num_epochs, checkpointing;
    Keras' validation pass (and an accuracy budget) runs on `validation`."""
    # Epoch e's batches depend only on (seed, e): a resumed run trains on
    # exactly the batches the uninterrupted run would have.
    train = switch_data.make_dataset(
        *train_arrays, config.batch_size, training=True, seed=config.seed,
        augment=bool(config.augment), normalize=NORMALIZE.get(config.dataset),
        epochs=config.num_epochs, initial_epoch=initial_epoch,
    )
    callbacks = [
        StopOnNonFiniteLoss(steps_per_epoch, checkpoints),
        checkpoints.callback(config.checkpoint_every_epochs),
        keras.callbacks.TensorBoard(log_dir=log_dir),
        switch_callbacks.SwitchSummaries(log_dir),
    ]
    with warnings.catch_warnings():  # report.json and the summary say it
        warnings.simplefilter("ignore", TargetShortfallWarning)
        warnings.simplefilter("ignore", BudgetExceededWarning)
        model.fit(
            inject_nan(train, initial_epoch * steps_per_epoch),  # a test hook, see checkpoints.py
            epochs=config.num_epochs,
            initial_epoch=initial_epoch,
            steps_per_epoch=steps_per_epoch,
            validation_data=validation,
            shuffle=False,  # the tf.data pipeline shuffles, seeded
            verbose=2,
            callbacks=callbacks,
        )


def _accuracy(model, dataset):
    correct = total = 0
    for x, y in dataset:
        predictions = np.argmax(model.predict_on_batch(np.asarray(x)), axis=-1)
        correct += int(np.sum(predictions == y.numpy()))
        total += len(predictions)
    return correct / total


def _report(model, config, test, train_seconds, heldout_count):
    sparsity = keras_switch.sparsity_report(model)
    return {
        "model": config.model,
        "dataset": config.dataset,
        "keras_backend": keras.backend.backend(),
        "test_accuracy": _accuracy(keras_switch.strip_switches(model), test),
        # Over the fully connected (Dense) layers; "sparsity" is over every
        # switched layer, convolutions too with switched_layers="all".
        "fc_sparsity": _fc_sparsity(sparsity["layers"]),
        "layers": sparsity["layers"],
        "epochs": config.num_epochs,
        "steps": int(keras.ops.convert_to_numpy(model.switching_step)),
        "train_seconds": train_seconds,
        # A run never misses its target silently: None, or why it fell short.
        "target_sparsity": model.sparsity.target,
        "target_shortfall": model.target_shortfall(),
        # What the exported models expect: inputs as (x - mean) / std of the
        # [0, 1] pixels (None: the [0, 1] pixels as they are).
        "input_standardization": _standardization(config.dataset),
        "switched_layers": config.switched_layers,
        "sparsity": sparsity["overall"],
        **_budget_report(model, heldout_count),
    }


def _budget_report(model, heldout_count):
    """The accuracy budget's outcome (None everywhere without one): the dense
    reference and the final accuracy on the held-out examples, whether the
    budget held, and the sentence saying so."""
    outcome = model.budget_outcome()
    if outcome is None:
        return {key: None for key in ("accuracy_budget", "validation_examples",
                                      "reference_validation_accuracy",
                                      "validation_accuracy", "budget_met", "budget_outcome")}
    return {
        "accuracy_budget": outcome["max_drop"],
        "validation_examples": heldout_count,
        "reference_validation_accuracy": outcome["reference_validation_accuracy"],
        "validation_accuracy": outcome["validation_accuracy"],
        "budget_met": outcome["met"],
        "budget_outcome": outcome["why"],
    }


def _fc_sparsity(layers):
    """Zeros / entries over the rank-2 (Dense) kernels of `layers`."""
    fc = [row for row in layers if len(row["shape"]) == 2]
    entries = sum(math.prod(row["shape"]) for row in fc)
    nonzeros = sum(row["nonzeros"] for row in fc)
    return 1.0 - nonzeros / entries if entries else 0.0


def _standardization(dataset):
    if dataset not in NORMALIZE:
        return None
    mean, std = NORMALIZE[dataset]
    return {"mean": mean, "std": std}


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
        keras_switch.strip_switches(model).save(os.path.join(staging, "model.keras"))
        if keras.backend.backend() == "tensorflow":
            sparse_layers = tf_export.write(model, staging)
        else:  # through a .keras file, in a TensorFlow-backend process
            sparse_layers = tf_export.write_elsewhere(model, staging)
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
    return {"export_sizes": sizes, "sparse_layers": sparse_layers}


def _print_summary(report):
    print(f"\n{report['model']} on {report['dataset']}: test accuracy "
          f"{report['test_accuracy']:.4f}, FC sparsity {report['fc_sparsity']:.4f}"
          + (f" (all switched layers {report['sparsity']:.4f})"
             if report["switched_layers"] != "fc" else "") + ", "
          f"{report['steps']} steps in {report['train_seconds']:.0f} s")
    print(f"  {'layer':<16} {'shape':>11} {'nonzeros':>9} {'sparsity':>9}")
    for row in report["layers"]:
        shape = "x".join(str(d) for d in row["shape"])
        print(f"  {row['name']:<16} {shape:>11} {row['nonzeros']:>9} {row['sparsity']:>9.4f}")
    sizes = report["export_sizes"]
    print("  export (KiB on disk / gzip -9): " + ", ".join(
        f"{key} {sizes[key] / 1024:.0f}/{sizes[key + '_gzip'] / 1024:.0f}"
        for key, _ in EXPORTS))
    if report["target_shortfall"]:
        print(f"warning: this run missed its target: {report['target_shortfall']}")
    if report["accuracy_budget"] is not None:
        print(f"{'' if report['budget_met'] else 'warning: '}accuracy budget "
              f"{report['accuracy_budget'] * 100:g} pt "
              f"{'allowed' if report['budget_met'] else 'was exceeded at'} FC sparsity "
              f"{report['fc_sparsity']:.4f}: {report['budget_outcome']}")
