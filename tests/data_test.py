import os

import numpy as np
import tensorflow as tf

from keras_switch.data import idx
from tests.helpers import write_idx
from tests.helpers import write_split
from tests.test_case import TestCase


class IdxTest(TestCase):
    def test_reads_generated_mnist_format_files(self):
        for compress in (True, False):
            directory = self.create_tempdir().full_path
            arrays = write_split(directory, compress=compress)
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
        write_idx(path, values, type_code=0x0D)
        self.assertAllEqual(idx.read_idx(path), values)

    def test_bad_files_name_the_problem(self):
        directory = self.create_tempdir().full_path
        path = os.path.join(directory, "x")
        with open(path, "wb") as f:
            f.write(b"PK\x03\x04junk")
        with self.assertRaisesRegex(ValueError, "not an IDX file"):
            idx.read_idx(path)
        write_idx(path, np.zeros((2, 2), "uint8"), compress=False)
        with open(path, "ab") as f:
            f.write(b"extra")
        with self.assertRaisesRegex(ValueError, r"shape \(2, 2\)"):
            idx.read_idx(path)
        with self.assertRaisesRegex(FileNotFoundError, "dataset-fashion-mnist"):
            idx.load_fashion_mnist(self.create_tempdir().full_path)

    def test_mismatched_labels(self):
        directory = self.create_tempdir().full_path
        write_split(directory)
        write_idx(
            os.path.join(directory, "train-labels-idx1-ubyte.gz"), np.zeros(4, "uint8")
        )
        with self.assertRaisesRegex(ValueError, "labels"):
            idx.load_fashion_mnist(directory)


if __name__ == "__main__":
    tf.test.main()
