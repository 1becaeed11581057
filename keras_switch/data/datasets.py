"""Named datasets as NumPy arrays, and the tf.data input pipeline.

`load_arrays("cifar10", data_dir)` reads the offline files (IDX for the
MNISTs, the official pickles for CIFAR), scikit-learn's bundled digits, or
TensorFlow Datasets when it is installed; `make_dataset` turns the arrays into
shuffled, optionally augmented and normalised `tf.data` batches.
"""

import os

import numpy as np
import tensorflow as tf

from keras_switch.data import cifar
from keras_switch.data import idx

# Per-channel (R, G, B) mean and standard deviation of the training pixels,
# scaled to [0, 1]; pass as `make_dataset(..., normalize=(mean, std))`.
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN = (0.5071, 0.4865, 0.4409)
CIFAR100_STD = (0.2673, 0.2564, 0.2762)
# The same for the grey-scale MNISTs' training pixels. Standardised inputs
# prune better than [0, 1] ones (BENCHMARKS.md, "Accuracy vs FC sparsity").
MNIST_MEAN = 0.1307
MNIST_STD = 0.3081
FASHION_MNIST_MEAN = 0.2860
FASHION_MNIST_STD = 0.3530

DATASETS = {
    "mnist": {"num_classes": 10, "input_shape": (28, 28), "data_dir": None},
    "fashion_mnist": {
        "num_classes": 10,
        "input_shape": (28, 28),
        "data_dir": idx.FASHION_MNIST_DIR,
    },
    "cifar10": {"num_classes": 10, "input_shape": (32, 32, 3), "data_dir": None},
    "cifar100": {"num_classes": 100, "input_shape": (32, 32, 3), "data_dir": None},
    "digits": {"num_classes": 10, "input_shape": (8, 8), "data_dir": None},
}
SOURCES = ("auto", "files", "tfds", "sklearn")
# Which sources can serve each dataset ("auto" picks among them).
_SOURCES_OF = {
    "mnist": ("files", "tfds"),
    "fashion_mnist": ("files", "tfds"),
    "cifar10": ("files", "tfds"),
    "cifar100": ("files", "tfds"),
    "digits": ("sklearn",),
}
DIGITS_TEST_SIZE = 297  # the last 297 of scikit-learn's 1797 digits
CROP_PADDING = 4  # pixels of zero padding before the random crop


def load_arrays(dataset, data_dir=None, source="auto"):
    """Loads a dataset of `DATASETS` into NumPy arrays.

    Args:
        dataset: one of `DATASETS`: "mnist", "fashion_mnist", "cifar10",
            "cifar100", "digits".
        data_dir: for `source="files"`, the directory of the files (IDX files
            for the MNISTs, see `load_fashion_mnist`; the official pickle
            folder or its parent for CIFAR, see `load_cifar`); for "tfds",
            TensorFlow Datasets' `data_dir`. Defaults to the dataset's
            `DATASETS[dataset]["data_dir"]`.
        source: "files" (offline files), "sklearn" (digits only: the copy
            bundled with scikit-learn), "tfds" (TensorFlow Datasets, which
            downloads when the data is not in its `data_dir`), or "auto":
            "sklearn" for digits, otherwise "files" when the data directory
            exists and "tfds" when it does not.

    Returns:
        `(x_train, y_train), (x_test, y_test)`: images as float32 in [0, 1]
        with shape `(n,) + DATASETS[dataset]["input_shape"]`, labels as int32.
        digits is split deterministically: the last 297 images are the test
        set.

    Raises:
        ValueError: if `dataset` or `source` is unknown, the source cannot
            serve the dataset, or `source="files"` has no directory.
        ImportError: if `source="tfds"` and tensorflow_datasets is not
            installed (or `source="sklearn"` without scikit-learn).
        FileNotFoundError: if `source="files"` and a file is missing.
    """
    if dataset not in DATASETS:
        raise ValueError(
            "Received an invalid value for `dataset`, expected one of "
            f"{list(DATASETS)}. Received: dataset={dataset!r}"
        )
    if source not in SOURCES:
        raise ValueError(
            "Received an invalid value for `source`, expected one of "
            f"{list(SOURCES)}. Received: source={source!r}"
        )
    if data_dir is None:
        data_dir = DATASETS[dataset]["data_dir"]
    # "auto" given a directory that does not exist: tfds, but a missing
    # tensorflow_datasets is then reported as the missing directory it likely is.
    fell_back = False
    if source == "auto":
        source = _auto_source(dataset, data_dir)
        fell_back = source == "tfds" and data_dir is not None
    if source not in _SOURCES_OF[dataset]:
        raise ValueError(
            f"Received an invalid value for `source` for dataset={dataset!r}, "
            f"expected one of {['auto', *_SOURCES_OF[dataset]]}. "
            f"Received: source={source!r}"
        )
    if source == "sklearn":
        return _load_digits()
    if source == "tfds":
        return _load_tfds(dataset, data_dir, missing_dir=fell_back)
    if data_dir is None:
        raise ValueError(
            f"`source='files'` for dataset={dataset!r} needs `data_dir`, the "
            "directory holding its files. Received: data_dir=None"
        )
    if dataset in ("cifar10", "cifar100"):
        return cifar.load_cifar(data_dir, DATASETS[dataset]["num_classes"])
    return idx.load_fashion_mnist(data_dir)


def _auto_source(dataset, data_dir):
    if dataset == "digits":
        return "sklearn"
    if data_dir is not None and os.path.isdir(data_dir):
        return "files"
    return "tfds"


def _load_digits():
    try:
        from sklearn.datasets import load_digits
    except ImportError as error:
        raise ImportError(
            "dataset='digits' is read from scikit-learn's bundled copy: "
            "`pip install scikit-learn`."
        ) from error
    data = load_digits()
    x = (data.images / 16.0).astype("float32").reshape(-1, 8, 8)
    y = data.target.astype("int32")
    split = len(x) - DIGITS_TEST_SIZE
    return (x[:split], y[:split]), (x[split:], y[split:])


def _load_tfds(dataset, data_dir, missing_dir=False):
    try:
        import tensorflow_datasets as tfds
    except ImportError as error:
        if missing_dir:
            files = (
                "the official python pickles" if dataset.startswith("cifar")
                else "MNIST-format IDX files"
            )
            raise ImportError(
                f"data_dir={data_dir!r} does not exist: expected a directory of "
                f"{dataset}'s {files}. (source='auto' reads TensorFlow Datasets "
                "when the directory is missing, and tensorflow_datasets is not "
                "installed; use source='files' to always read the files.)"
            ) from error
        raise ImportError(
            f"source='tfds' for dataset={dataset!r} needs TensorFlow Datasets, "
            "which is not installed: `pip install tensorflow-datasets`, or use "
            "offline files with source='files' and data_dir=... (see "
            "keras_switch.data.load_fashion_mnist and load_cifar)."
        ) from error
    train, test = tfds.load(
        dataset,
        split=["train", "test"],
        data_dir=data_dir,
        as_supervised=True,
        batch_size=-1,
    )
    shape = DATASETS[dataset]["input_shape"]
    splits = []
    for images, labels in (train, test):
        # tfds gives uint8 (n, h, w, c); the MNISTs' c = 1 is dropped.
        images = np.asarray(images).reshape((-1,) + shape)
        splits.append(
            (images.astype("float32") / 255.0, np.asarray(labels).astype("int32"))
        )
    return tuple(splits)


def make_dataset(
    x, y, batch_size, training, seed=0, augment=False, normalize=None,
    epochs=None, initial_epoch=0,
):
    """Builds the `tf.data` pipeline of `(image, label)` batches.

    Training: shuffle over the whole set (reshuffled each epoch), then, with
    `augment`, pad each image by 4 zero pixels, crop it back to its size at a
    random offset and flip it left-right at random; then batch (the last
    batch may be smaller), normalise, prefetch. Not training: the same without
    shuffling or augmentation. The randomness is a function of `seed` and of
    TensorFlow's global seed (`keras.utils.set_random_seed`) when one is set:
    two pipelines built with the same seeds, in one process or in two, yield
    the same batches, epoch by epoch.

    Args:
        x: images, float32 in [0, 1], shape `(n, ...)`; `(n, height, width,
            channels)` when `augment`.
        y: `n` labels.
        batch_size: positive int.
        training: whether to shuffle and augment.
        seed: int seed of the shuffling and augmentation.
        augment: random crop and flip (training only), for `(n, h, w, c)`
            images such as CIFAR's.
        normalize: None, or `(mean, std)` per channel (scalars, or one value
            per channel of `(n, h, w, c)` images), e.g.
            `(CIFAR10_MEAN, CIFAR10_STD)`: images become
            `(image - mean) / std`.
        epochs: None (one epoch per iteration of the dataset, reshuffled
            each time), or, for training, the total number of epochs: the
            dataset then holds the batches of epochs `initial_epoch` ..
            `epochs - 1` back to back, epoch `e` shuffled (and augmented)
            with its own seed derived from `(seed, e)`. A run resumed at
            epoch `e` therefore sees exactly the batches an uninterrupted run
            sees from epoch `e` on. Iterate it with `fit(...,
            steps_per_epoch=...)`.
        initial_epoch: the first epoch held, with `epochs`.

    Returns:
        A `tf.data.Dataset` of `(images float32, labels)` batches.

    Raises:
        ValueError: if `batch_size` is not a positive int, `x` and `y` differ
            in length or are empty, `augment` gets images that are not
            `(n, h, w, c)`, or `normalize` is malformed.
    """
    if (
        not isinstance(batch_size, (int, np.integer))
        or isinstance(batch_size, bool)
        or batch_size < 1
    ):
        raise ValueError(
            "Received an invalid value for `batch_size`, expected a positive "
            f"int. Received: batch_size={batch_size!r}"
        )
    x = np.asarray(x, dtype="float32")
    y = np.asarray(y)
    if x.ndim == 0 or y.ndim == 0 or len(x) != len(y):
        raise ValueError(
            "`x` and `y` must hold the same number of examples. Received: "
            f"x.shape={x.shape}, y.shape={y.shape}"
        )
    if len(x) == 0:
        raise ValueError(
            f"`x` and `y` are empty. Received: x.shape={x.shape}"
        )
    augment = augment and training
    if augment and x.ndim != 4:
        raise ValueError(
            "`augment=True` expects images of shape (n, height, width, "
            f"channels). Received: x.shape={x.shape}"
        )
    if normalize is not None:
        mean, std = _normalization(normalize, x)

    if epochs is not None:
        for name, value in (("epochs", epochs), ("initial_epoch", initial_epoch)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise ValueError(
                    f"`{name}` must be an int >= 0. Received: {name}={value!r}"
                )
        if not training or initial_epoch >= epochs:
            raise ValueError(
                "`epochs` needs training=True and initial_epoch < epochs. "
                f"Received: training={training}, epochs={epochs}, "
                f"initial_epoch={initial_epoch}"
            )

    examples = tf.data.Dataset.from_tensor_slices((x, y))

    def one_pass(pass_seed, reshuffle):
        dataset = examples
        if training:
            dataset = dataset.shuffle(
                len(x), seed=pass_seed, reshuffle_each_iteration=reshuffle
            )
        if augment:
            # One [2]-int64 stateless seed per image, a new stream each epoch.
            seeds = tf.data.Dataset.random(
                seed=pass_seed, rerandomize_each_iteration=reshuffle
            ).batch(2)
            dataset = tf.data.Dataset.zip(dataset, seeds).map(
                _augmenter(x.shape[1:]),
                num_parallel_calls=tf.data.AUTOTUNE,
                deterministic=True,
            )
        dataset = dataset.batch(batch_size, drop_remainder=False)
        if normalize is not None:

            def standardize(images, labels):
                return (images - mean) / std, labels

            dataset = dataset.map(
                standardize, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
            )
        return dataset

    if epochs is None:
        dataset = one_pass(seed, reshuffle=True)
    else:
        dataset = None
        for epoch in range(initial_epoch, epochs):
            part = one_pass(epoch_seed(seed, epoch), reshuffle=False)
            dataset = part if dataset is None else dataset.concatenate(part)
    return dataset.prefetch(tf.data.AUTOTUNE)


def epoch_seed(seed, epoch):
    """The shuffle/augmentation seed of `epoch` of a run seeded `seed`: the
    same in every process (a 31-bit int)."""
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(epoch)])
    return int(state.generate_state(1)[0] >> 1)


def _normalization(normalize, x):
    """Validates `normalize` -> (mean, std) float32 arrays broadcasting to x."""
    channels = x.shape[-1] if x.ndim == 4 else 1
    try:
        mean, std = normalize
        mean = np.asarray(mean, dtype="float32")
        std = np.asarray(std, dtype="float32")
    except (TypeError, ValueError) as error:
        raise ValueError(
            "Received an invalid value for `normalize`, expected None or "
            f"(mean, std). Received: normalize={normalize!r}"
        ) from error
    for name, value in (("mean", mean), ("std", std)):
        if value.ndim > 1 or value.size not in (1, channels):
            raise ValueError(
                f"Received an invalid value for `normalize`: the {name} must be "
                f"a scalar or {channels} per-channel values for x.shape="
                f"{x.shape}. Received: normalize={normalize!r}"
            )
    if np.any(std <= 0) or not np.all(np.isfinite(std)):
        raise ValueError(
            "Received an invalid value for `normalize`: std must be positive. "
            f"Received: normalize={normalize!r}"
        )
    if mean.size == 1:
        mean = mean.reshape(())
    if std.size == 1:
        std = std.reshape(())
    return mean, std


def _augmenter(image_shape):
    """Pad-crop-flip of one image, seeded by a stateless [2] seed."""
    pad = CROP_PADDING

    def augment(element, seed):
        image, label = element
        crop_seed, flip_seed = tf.unstack(
            tf.random.experimental.stateless_split(seed, num=2)
        )
        image = tf.pad(image, [[pad, pad], [pad, pad], [0, 0]])
        image = tf.image.stateless_random_crop(
            image, size=image_shape, seed=crop_seed
        )
        image = tf.image.stateless_random_flip_left_right(image, seed=flip_seed)
        image.set_shape(image_shape)
        return image, label

    return augment
