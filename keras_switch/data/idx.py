"""MNIST-format IDX files (MNIST, Fashion-MNIST), plain or gzipped."""

import gzip
import os

import numpy as np

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
# IDX type codes -> numpy dtypes (big-endian on disk).
_DTYPES = {
    0x08: np.uint8,
    0x09: np.int8,
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path):
    """Reads one IDX file (gzipped if its name ends in .gz) into an array.

    Raises:
        ValueError: if the file is not a well-formed IDX file; the message
            names the file and what was expected.
    """
    opener = gzip.open if str(path).endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as error:
        raise ValueError(f"Cannot read IDX file {path}: {error}") from error
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(
            f"{path} is not an IDX file: expected the magic bytes 00 00 <type> "
            f"<ndim>. Received: {data[:4].hex(' ') or 'an empty file'}"
        )
    type_code, ndim = data[2], data[3]
    if type_code not in _DTYPES:
        raise ValueError(
            f"{path}: unknown IDX element type 0x{type_code:02x}, expected one "
            f"of {[hex(t) for t in _DTYPES]}"
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{path}: truncated IDX header ({len(data)} bytes)")
    shape = tuple(
        int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)
    )
    dtype = np.dtype(_DTYPES[type_code])
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(data) != expected:
        raise ValueError(
            f"{path}: IDX header says shape {shape} ({expected} bytes in all), "
            f"but the file has {len(data)} bytes"
        )
    return np.frombuffer(data, dtype, offset=header).reshape(shape).astype(
        dtype.newbyteorder("=")
    )


def _find(data_dir, stem):
    for name in (stem + ".gz", stem):
        path = os.path.join(data_dir, name)
        if os.path.exists(path):
            return path
    raise FileNotFoundError(
        f"Missing {stem}[.gz] in {data_dir}. Fashion-MNIST ships offline in "
        "Debian's package `dataset-fashion-mnist` (apt-get install "
        "dataset-fashion-mnist), which puts it in " + FASHION_MNIST_DIR
    )


def load_fashion_mnist(data_dir=FASHION_MNIST_DIR):
    """Loads MNIST-format IDX files from `data_dir`.

    Works for Fashion-MNIST and MNIST alike (same file names and format).

    Returns:
        `(x_train, y_train), (x_test, y_test)`: images as float32 in [0, 1]
        with shape `(n, 28, 28)`, labels as int32.

    Raises:
        FileNotFoundError: if a file is missing (the message says how to get
            the data offline).
        ValueError: if a file is malformed or images and labels disagree.
    """
    splits = []
    for split in ("train", "test"):
        image_stem, label_stem = _FILES[split]
        images = read_idx(_find(data_dir, image_stem))
        labels = read_idx(_find(data_dir, label_stem))
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise ValueError(
                f"{data_dir} ({split}): expected images (n, rows, cols) and n "
                f"labels. Received: images {images.shape}, labels {labels.shape}"
            )
        splits.append(
            (images.astype("float32") / 255.0, labels.astype("int32"))
        )
    return tuple(splits)
