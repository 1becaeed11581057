"""CIFAR-10 and CIFAR-100 from the official python-pickle files (offline).

The archives `cifar-10-python.tar.gz` and `cifar-100-python.tar.gz` from
https://www.cs.toronto.edu/~kriz/cifar.html unpack into the folders
`cifar-10-batches-py/` (`data_batch_1` ... `data_batch_5`, `test_batch`) and
`cifar-100-python/` (`train`, `test`). Each file is a pickled dict whose
`b"data"` is a uint8 array `(n, 3072)`: the 1024 red values of a 32x32 image,
then the green, then the blue, each row-major.

Unpickling can run arbitrary code: load only files you trust.
"""

import os
import pickle

import numpy as np

_ALLOWED_NUM_CLASSES = (10, 100)
_ARCHIVE_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"
_IMAGE_SHAPE = (3, 32, 32)  # channel-major, as stored in the files
_ROW_SIZE = 3 * 32 * 32
# num_classes -> folder, archive, train files, test file, label key.
_LAYOUTS = {
    10: {
        "folder": "cifar-10-batches-py",
        "archive": "cifar-10-python.tar.gz",
        "train": tuple(f"data_batch_{i}" for i in range(1, 6)),
        "test": "test_batch",
        "label_key": b"labels",
    },
    100: {
        "folder": "cifar-100-python",
        "archive": "cifar-100-python.tar.gz",
        "train": ("train",),
        "test": "test",
        "label_key": b"fine_labels",
    },
}


def load_cifar(data_dir, num_classes=10):
    """Loads CIFAR-10 or CIFAR-100 from the official python-pickle files.

    Args:
        data_dir: the directory the official archive was unpacked in (holding
            `cifar-10-batches-py/` or `cifar-100-python/`), or that folder
            itself.
        num_classes: 10 for CIFAR-10, 100 for CIFAR-100 (its fine labels).

    Returns:
        `(x_train, y_train), (x_test, y_test)`: images as float32 in [0, 1]
        with shape `(n, 32, 32, 3)` (height, width, RGB), labels as int32.

    Raises:
        FileNotFoundError: if a file is missing; the message names it and
            says where the official archive unpacks.
        ValueError: if `num_classes` is not 10 or 100, or a file cannot be
            unpickled, lacks a key, holds data that is not `n x 3072`, or
            holds a number of labels other than `n` or labels out of range.
    """
    if num_classes not in _ALLOWED_NUM_CLASSES:
        raise ValueError(
            "Received an invalid value for `num_classes`, expected one of "
            f"{list(_ALLOWED_NUM_CLASSES)}. Received: num_classes={num_classes!r}"
        )
    layout = _LAYOUTS[num_classes]
    folder = _resolve_folder(os.fspath(data_dir), layout)
    train = [
        _read_batch(folder, name, layout, num_classes) for name in layout["train"]
    ]
    x_train = np.concatenate([images for images, _ in train])
    y_train = np.concatenate([labels for _, labels in train])
    x_test, y_test = _read_batch(folder, layout["test"], layout, num_classes)
    return (x_train, y_train), (x_test, y_test)


def _resolve_folder(data_dir, layout):
    """`data_dir/<folder>` if it exists, else `data_dir` itself."""
    nested = os.path.join(data_dir, layout["folder"])
    if os.path.isdir(nested):
        return nested
    return data_dir


def _read_batch(folder, name, layout, num_classes):
    """One pickle file -> (float32 images (n, 32, 32, 3), int32 labels (n,))."""
    path = os.path.join(folder, name)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"Missing CIFAR-{num_classes} file {name!r}: {path} does not exist. "
            f"The official archive {layout['archive']} ({_ARCHIVE_URL}) "
            f"unpacks into a folder {layout['folder']}/ holding it; pass that "
            "folder or the directory containing it as `data_dir`."
        )
    with open(path, "rb") as f:
        try:
            batch = pickle.load(f, encoding="bytes")
        except Exception as error:  # pickle raises many types on bad input
            reason = " ".join(str(error).split()).rstrip(".")
            raise ValueError(
                f"Cannot unpickle CIFAR-{num_classes} file {path}: "
                f"{type(error).__name__}: {reason}. Expected the official "
                "python-pickle batch (a dict with b'data' and "
                f"{layout['label_key']!r})."
            ) from error
    if not isinstance(batch, dict):
        raise ValueError(
            f"{path}: expected a pickled dict with b'data' and "
            f"{layout['label_key']!r}. Received: {type(batch).__name__}"
        )
    for key in (b"data", layout["label_key"]):
        if key not in batch:
            raise ValueError(
                f"{path}: missing key {key!r}, expected a dict with b'data' "
                f"and {layout['label_key']!r}. Received keys: "
                f"{sorted(batch, key=repr)}"
            )

    data = np.asarray(batch[b"data"])
    if data.ndim != 2 or data.shape[1] != _ROW_SIZE:
        raise ValueError(
            f"{path}: expected b'data' of shape (n, {_ROW_SIZE}) (n images of "
            f"3 x 32 x 32 bytes, channel-major). Received: shape {data.shape}"
        )
    if not np.issubdtype(data.dtype, np.integer) or (
        data.size and (data.min() < 0 or data.max() > 255)
    ):
        raise ValueError(
            f"{path}: expected b'data' to hold uint8 pixel values in [0, 255]. "
            f"Received: dtype {data.dtype}"
        )
    labels = np.asarray(batch[layout["label_key"]])
    if labels.ndim != 1 or len(labels) != len(data):
        raise ValueError(
            f"{path}: expected {len(data)} labels in {layout['label_key']!r}, "
            f"one per image in b'data'. Received: shape {labels.shape}"
        )
    if not np.issubdtype(labels.dtype, np.integer) and labels.size:
        raise ValueError(
            f"{path}: expected integer labels in {layout['label_key']!r}. "
            f"Received: dtype {labels.dtype}"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"{path}: expected labels in [0, {num_classes}) in "
            f"{layout['label_key']!r}. Received: values from {labels.min()} "
            f"to {labels.max()}"
        )
    images = data.reshape((-1,) + _IMAGE_SHAPE).transpose(0, 2, 3, 1)
    return images.astype("float32") / 255.0, labels.astype("int32")
