import gzip
import os

import numpy as np
import tensorflow as tf

from keras_switch.data import idx
from tests.test_case import TestCase


def _write_idx(path, array, type_code=0x08, compress=True):
    header = bytes([0, 0, type_code, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    data = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    with (gzip.open if compress else open)(path, "wb") as f:
        f.write(data)


def _write_split(directory, n_train=5, n_test=3, compress=True):
    rng = np.random.RandomState(0)
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images = rng.randint(0, 256, size=(n, 28, 28)).astype("uint8")
        labels = rng.randint(0, 10, size=(n,)).astype("uint8")
        image_stem, label_stem = idx._FILES[split]
        suffix = ".gz" if compress else ""
        _write_idx(os.path.join(directory, image_stem + suffix), images, compress=compress)
        _write_idx(os.path.join(directory, label_stem + suffix), labels, compress=compress)
        arrays[split] = (images, labels)
    return arrays


class IdxTest(TestCase):
    def test_reads_generated_mnist_format_files(self):
        for compress in (True, False):
            directory = self.create_tempdir().full_path
            arrays = _write_split(directory, compress=compress)
            (x, y), (xt, yt) = idx.load_fashion_mnist(directory)
            self.assertEqual(x.shape, (5, 28, 28))
            self.assertEqual(x.dtype, np.float32)
            self.assertAllClose(x, arrays["train"][0] / 255.0)
            self.assertAllEqual(y, arrays["train"][1])
            self.assertAllEqual(yt, arrays["test"][1])
            self.assertEqual(xt.shape, (3, 28, 28))

    def test_other_dtypes(self):
        path = os.path.join(self.create_tempdir().full_path, "f.gz")
        values = np.arange(6, dtype=">f4").reshape(2, 3)
        _write_idx(path, values, type_code=0x0D)
        self.assertAllEqual(idx.read_idx(path), values)

    def test_bad_files_name_the_problem(self):
        directory = self.create_tempdir().full_path
        path = os.path.join(directory, "x")
        with open(path, "wb") as f:
            f.write(b"PK\x03\x04junk")
        with self.assertRaisesRegex(ValueError, "not an IDX file"):
            idx.read_idx(path)
        _write_idx(path, np.zeros((2, 2), "uint8"), compress=False)
        with open(path, "ab") as f:
            f.write(b"extra")
        with self.assertRaisesRegex(ValueError, r"shape \(2, 2\)"):
            idx.read_idx(path)
        with self.assertRaisesRegex(FileNotFoundError, "dataset-fashion-mnist"):
            idx.load_fashion_mnist(self.create_tempdir().full_path)

    def test_mismatched_labels(self):
        directory = self.create_tempdir().full_path
        _write_split(directory)
        _write_idx(
            os.path.join(directory, "train-labels-idx1-ubyte.gz"), np.zeros(4, "uint8")
        )
        with self.assertRaisesRegex(ValueError, "labels"):
            idx.load_fashion_mnist(directory)


if __name__ == "__main__":
    tf.test.main()
