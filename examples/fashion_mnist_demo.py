"""`make demo`: a switched LeNet-300-100 on real Fashion-MNIST, offline.

    python examples/fashion_mnist_demo.py [--epochs 8] [--target-sparsity 0.9]

Trains with the default schedule (a task step then a switch step on every
batch), ramps the overall FC sparsity to the target over the first half of
training, freezes the mask for the last epoch, then prints the test accuracy
of the stripped (plain Dense) model and the per-layer sparsity.
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

import keras_switch  # noqa: E402
from keras_switch.data import idx  # noqa: E402
from keras_switch.models import lenet_300_100  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--target-sparsity", type=float, default=0.9)
    parser.add_argument("--data-dir", default=idx.FASHION_MNIST_DIR)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.epochs < 2:
        parser.error(f"--epochs must be >= 2 (one frozen epoch). Got {args.epochs}")
    if not 0.0 <= args.target_sparsity < 1.0:
        parser.error(f"--target-sparsity must be in [0, 1). Got {args.target_sparsity}")

    try:
        (x_train, y_train), (x_test, y_test) = idx.load_fashion_mnist(args.data_dir)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    keras.utils.set_random_seed(args.seed)
    steps_per_epoch = -(-len(x_train) // args.batch_size)
    model = lenet_300_100()
    model.compile(
        task_optimizer=keras.optimizers.Adam(1e-3),
        switch_optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        target_sparsity=args.target_sparsity,
        target_ramp_steps=steps_per_epoch * (args.epochs // 2),
        schedule=keras_switch.SwitchSchedule(
            freeze_step=steps_per_epoch * (args.epochs - 1)
        ),
    )
    start = time.time()
    model.fit(
        x_train, y_train, batch_size=args.batch_size, epochs=args.epochs, verbose=2
    )
    train_seconds = time.time() - start

    stripped = keras_switch.strip_switches(model)
    stripped.compile(
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    _, accuracy = stripped.evaluate(x_test, y_test, batch_size=1000, verbose=0)
    report = keras_switch.sparsity_report(model)
    print(f"\nFashion-MNIST test accuracy (stripped Dense model): {accuracy:.4f}")
    for layer in report["layers"]:
        shape = "x".join(str(d) for d in layer["shape"])
        print(
            f"  {layer['name']:<5} {shape:>8}  nonzeros {layer['nonzeros']:>6}  "
            f"sparsity {layer['sparsity']:.4f}"
        )
    print(f"  overall FC sparsity {report['overall']:.4f}")
    print(f"  training time {train_seconds:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
