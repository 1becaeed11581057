"""TFMOT magnitude-pruning baseline (Keras 2), run in its own venv.

Runs in the venv of `benchmarks/tfmot_env.py` (never Keras 3); called
through `tfmot_env.run()`, which adds `--output`. `--data` is an .npz with
`x_train` float32 [n, 28, 28] (scaled or standardised), `y_train` [n],
`x_test`, `y_test`, and `init_0`, `init_1`, ... in `model.get_weights()`
order: the weights the model starts from.

Modes:
  train      `prune_low_magnitude` on the Dense layers (or, --whole_model,
             the whole model, adding `sparsity` and `layer_sparsity` over
             every kernel, convolutions named conv1, conv2), PolynomialDecay
             0 -> --target ending at round(--end_fraction * steps), Adam,
             `strip_pruning`; sparsity counted as exact zeros. --record_init
             adds `initial_weights_sha256` of the weights `fit` starts from.
  step_time  Median ms per training step of the dense and the pruned model,
             interleaved.

Writes one JSON object to --output.
"""

import argparse
import importlib.metadata
import json
import math
import os
import re
import sys
import time
import zipfile

# Keras 2 and quiet logs, before TensorFlow is imported.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_model_optimization as tfmot  # noqa: E402
import tf_keras  # noqa: E402
# From this script's directory: modules that import no Keras 3.
from harness import lenet  # noqa: E402
from harness import sparsity  # noqa: E402
from harness import timing  # noqa: E402
from tfmot_env import weights_sha256  # noqa: E402

DENSE_NAMES = ("fc1", "fc2", "fc3")
ARRAY_KEYS = ("x_train", "y_train", "x_test", "y_test")


def fail(message):
    """Exits with status 1 and `message` on stderr."""
    sys.exit(f"tfmot_baseline: error: {message}")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help=".npz with data and init_* weights")
    p.add_argument("--model", choices=("lenet300", "lenet5"), required=True)
    p.add_argument("--mode", choices=("train", "step_time"), default="train")
    p.add_argument("--target", type=float, default=0.95, help="final FC sparsity")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch_size", type=int, default=128)
    p.add_argument("--learning_rate", type=float, default=1e-3)
    p.add_argument("--end_fraction", type=float, default=0.79,
                   help="PolynomialDecay end_step = round(end_fraction * total steps)")
    p.add_argument("--frequency", type=int, default=100, help="steps between mask updates")
    p.add_argument("--whole_model", action="store_true",
                   help="train: prune_low_magnitude on the whole model (every Conv2D "
                        "and Dense layer), not only the Dense layers")
    p.add_argument("--record_init", action="store_true",
                   help="train: add initial_weights_sha256 (the weights fit starts from)")
    p.add_argument("--rounds", type=int, default=7, help="step_time: interleaved rounds")
    p.add_argument("--steps_per_round", type=int, default=50,
                   help="step_time: timed steps per model per round")
    p.add_argument("--output", required=True, help="JSON result path")
    args = p.parse_args(argv)
    if not 0.0 <= args.target < 1.0:
        p.error("--target must be in [0, 1)")
    return args


def load_data(path):
    """(arrays dict, list of init weights) from the npz; exits if invalid."""
    if not os.path.isfile(path):
        fail(f"--data file not found: {path}")
    if not zipfile.is_zipfile(path):
        fail(f"--data {path} is not an .npz (zip) file")
    try:
        with np.load(path, allow_pickle=False) as npz:
            contents = {key: npz[key] for key in npz.files}
    except Exception as e:  # np.load raises several types for a bad file.
        fail(f"cannot read {path} as .npz: {e}")
    missing = [key for key in ARRAY_KEYS if key not in contents]
    if missing:
        fail(f"{path} lacks {missing}; it has {sorted(contents)}")
    arrays = {}
    for split in ("train", "test"):
        x, y = contents[f"x_{split}"], contents[f"y_{split}"]
        if x.ndim != 3 or x.shape[1:] != (28, 28) or y.shape != (x.shape[0],):
            fail(f"x_{split} must be [n, 28, 28] and y_{split} [n]; "
                 f"got {x.shape} and {y.shape}")
        # Catches raw 0-255 pixels; [0, 1] and standardised inputs both pass.
        if x.size and not (np.all(np.isfinite(x)) and np.abs(x).max() <= 10.0):
            fail(f"x_{split} must be finite pixels scaled to [0, 1] or standardised "
                 f"(|x| <= 10); range is [{x.min()}, {x.max()}]")
        arrays[f"x_{split}"] = x.astype(np.float32)
        arrays[f"y_{split}"] = y.astype(np.int64)
    init_keys = sorted((k for k in contents if re.fullmatch(r"init_\d+", k)),
                       key=lambda k: int(k[5:]))
    if init_keys != [f"init_{i}" for i in range(len(init_keys))]:
        fail(f"init_* keys must be init_0..init_N without gaps; got {init_keys}")
    return arrays, [contents[k] for k in init_keys]


def build_model(name, init_weights):
    """LeNet-300-100 or LeNet-5 (`harness/lenet.py`, logits out) in Keras 2,
    set to `init_weights`."""
    model = lenet.lenet(tf_keras, name)
    expected = [w.shape for w in model.get_weights()]
    got = [w.shape for w in init_weights]
    if got != expected:
        fail(f"init_* shapes {got} do not match {name}'s get_weights() shapes {expected}")
    model.set_weights(init_weights)
    return model


def prune_dense_layers(model, **kwargs):
    """`model` with every Dense layer wrapped in prune_low_magnitude
    (`kwargs`: its arguments), sharing its layers (so its weights)."""
    def clone_fn(layer):
        if isinstance(layer, tf_keras.layers.Dense):
            return tfmot.sparsity.keras.prune_low_magnitude(layer, **kwargs)
        return layer

    return tf_keras.models.clone_model(model, clone_function=clone_fn)


def kernel_layers(model):
    """{name: layer} of every Conv2D and Dense layer in model order, the
    convolutions named conv1, conv2, ... (the Keras 2 model leaves them
    auto-named)."""
    out, convs = {}, 0
    for layer in model.layers:
        if isinstance(layer, tf_keras.layers.Conv2D):
            convs += 1
            out[f"conv{convs}"] = layer
        elif isinstance(layer, tf_keras.layers.Dense):
            out[layer.name] = layer
    return out


class RecordInitialWeights(tf_keras.callbacks.Callback):
    """Records `weights_sha256` of the weights the model's layers (pruning
    wrappers unwrapped) hold when training begins, in the plain model's
    `get_weights()` order; reads them only."""

    def __init__(self):
        super().__init__()
        self.sha256 = None

    def on_train_begin(self, logs=None):
        weights = []
        for layer in self.model.layers:
            if isinstance(layer, tf_keras.layers.Wrapper):  # PruneLowMagnitude
                layer = layer.layer
            weights += layer.get_weights()
        self.sha256 = weights_sha256(weights)


def compile_model(model, learning_rate):
    model.compile(
        optimizer=tf_keras.optimizers.Adam(learning_rate),
        loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )


def make_schedule(args, n_train):
    steps_per_epoch = math.ceil(n_train / args.batch_size)
    end_step = round(args.end_fraction * args.epochs * steps_per_epoch)
    # The wrapper counts steps from 1 and updates masks at multiples of
    # --frequency up to end_step: with end_step < frequency nothing is pruned.
    if end_step < args.frequency:
        fail(f"end_step {end_step} < --frequency {args.frequency}: no mask update would run")
    schedule = tfmot.sparsity.keras.PolynomialDecay(
        initial_sparsity=0.0, final_sparsity=args.target,
        begin_step=0, end_step=end_step, frequency=args.frequency)
    return schedule, end_step


def versions():
    return {
        "tensorflow": tf.__version__,
        "tf_keras": tf_keras.__version__,
        "tfmot": importlib.metadata.version("tensorflow-model-optimization"),
    }


def train(args, arrays, init_weights):
    x_train, y_train = arrays["x_train"], arrays["y_train"]
    schedule, end_step = make_schedule(args, len(x_train))
    # The whole model is TFMOT's documented way: every Conv2D and Dense kernel.
    prune = (tfmot.sparsity.keras.prune_low_magnitude if args.whole_model
             else prune_dense_layers)
    pruned = prune(build_model(args.model, init_weights), pruning_schedule=schedule)
    compile_model(pruned, args.learning_rate)
    dataset = (tf.data.Dataset.from_tensor_slices((x_train, y_train))
               .shuffle(len(x_train), seed=args.seed, reshuffle_each_iteration=True)
               .batch(args.batch_size))

    callbacks = [tfmot.sparsity.keras.UpdatePruningStep()]
    record = RecordInitialWeights() if args.record_init else None
    if record is not None:
        callbacks.append(record)  # After UpdatePruningStep's on_train_begin.
    start = time.perf_counter()
    pruned.fit(dataset, epochs=args.epochs, verbose=0, callbacks=callbacks)
    train_seconds = time.perf_counter() - start

    stripped = tfmot.sparsity.keras.strip_pruning(pruned)
    logits = stripped.predict(arrays["x_test"], batch_size=1000, verbose=0)
    accuracy = float(np.mean(np.argmax(logits, axis=-1) == arrays["y_test"]))

    kernels = {name: stripped.get_layer(name).kernel.numpy() for name in DENSE_NAMES}
    result = {
        "method": "tfmot",
        "model": args.model,
        "target": args.target,
        "seed": args.seed,
        "epochs": args.epochs,
        "end_step": end_step,
        "test_accuracy": accuracy,
        **sparsity.fc_sparsities(kernels, DENSE_NAMES[-1]),
        "train_seconds": train_seconds,
        "versions": versions(),
    }
    if args.whole_model:
        every = {name: layer.kernel.numpy() for name, layer in kernel_layers(stripped).items()}
        result.update(whole_model=True, frequency=args.frequency,
                      end_fraction=args.end_fraction, **sparsity.sparsities(every))
    if record is not None:
        result["initial_weights_sha256"] = record.sha256
    return result


def step_time(args, arrays, init_weights):
    """Interleaved training-step timing, dense vs pruned, each through its
    compiled train function on 8 fixed batches. The pruning wrapper counts
    its own steps and remasks on schedule, so `UpdatePruningStep
    .on_train_begin` once makes each call a `fit` step's pruning work."""
    x_train, y_train = arrays["x_train"], arrays["y_train"]
    schedule, _ = make_schedule(args, len(x_train))
    models = {
        "dense": build_model(args.model, init_weights),
        "tfmot": prune_dense_layers(build_model(args.model, init_weights),
                                    pruning_schedule=schedule),
    }
    callback = tfmot.sparsity.keras.UpdatePruningStep()
    callback.set_model(models["tfmot"])
    callback.on_train_begin()

    n = 8 * args.batch_size
    idx = np.random.default_rng(args.seed).choice(len(x_train), size=n, replace=len(x_train) < n)
    batches = (tf.data.Dataset.from_tensor_slices((x_train[idx], y_train[idx]))
               .batch(args.batch_size).cache().repeat())
    iterators = {key: iter(batches) for key in models}
    for model in models.values():
        compile_model(model, args.learning_rate)
    for key, model in models.items():
        timing.train_step_ms(model, iterators[key], 20)  # Traces the train function, warms up.
    per_round = timing.interleave(
        {key: (lambda key=key: timing.train_step_ms(models[key], iterators[key],
                                                    args.steps_per_round)) for key in models},
        args.rounds)
    dense_ms, tfmot_ms = timing.median(per_round["dense"]), timing.median(per_round["tfmot"])
    return {
        "mode": "step_time",
        "model": args.model,
        "target": args.target,
        "batch_size": args.batch_size,
        "rounds": args.rounds,
        "steps_per_round": args.steps_per_round,
        "dense_ms": dense_ms,
        "tfmot_ms": tfmot_ms,
        "ratio": tfmot_ms / dense_ms,
        "versions": versions(),
    }


def main(argv=None):
    args = parse_args(argv)
    arrays, init_weights = load_data(args.data)
    tf_keras.utils.set_random_seed(args.seed)
    if args.mode == "train":
        result = train(args, arrays, init_weights)
    else:
        result = step_time(args, arrays, init_weights)
    with open(args.output, "w") as f:
        json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
