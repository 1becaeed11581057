"""Fashion-MNIST as every benchmark trains on it, its seeded training
batches, and the identity of those arrays (part of a cached run's key).

TensorFlow is imported where data is read: the flags (`cli`) import this
module in processes that only make tables."""

import hashlib
import os

import numpy as np

# Where Debian's dataset-fashion-mnist puts the IDX files.
DATA_DIR = "/usr/share/datasets/fashion-mnist"


def load_data(data_dir, max_train=None, max_test=None):
    """Fashion-MNIST as float32 arrays standardised as the trainer does
    (`(x - mean) / std` of the training pixels), optionally truncated:
    ((x, y), (x_test, y_test)). Every method, TFMOT included, trains on these
    same arrays."""
    from keras_switch import data as switch_data
    from trainers import train_lib

    (x, y), (xt, yt) = switch_data.load_arrays(
        "fashion_mnist", data_dir=data_dir, source="files"
    )
    mean, std = train_lib.NORMALIZE["fashion_mnist"]
    x, xt = ((images - mean) / std for images in (x, xt))
    if max_train:
        x, y = x[:max_train], y[:max_train]
    if max_test:
        xt, yt = xt[:max_test], yt[:max_test]
    return (x, y), (xt, yt)


def identity(data_dir, data):
    """What a run's data is: {"dir": `data_dir`, absolute, "sha256": of the
    arrays of `data` (`load_data`'s), dtypes and shapes included}. Other
    files, another truncation or another standardisation give another
    digest."""
    digest = hashlib.sha256()
    for array in (array for split in data for array in split):
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype}{array.shape}".encode())
        digest.update(array.tobytes())
    return {"dir": os.path.abspath(data_dir), "sha256": digest.hexdigest()}


def train_batches(data, batch_size, seed):
    """`data`'s training split in seeded, shuffled batches: every method of
    a seed sees the same order (`fit(..., shuffle=False)` leaves it)."""
    from keras_switch import data as switch_data

    (x, y), _ = data
    return switch_data.make_dataset(x, y, batch_size, training=True, seed=seed)
