import os
import pickle

import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from keras_switch.data import load_cifar
from tests.helpers import CIFAR_FOLDERS
from tests.helpers import cifar_row
from tests.helpers import write_cifar
from tests.helpers import write_pickle
from tests.test_case import TestCase

def _drop(key):
    return lambda batch: {k: v for k, v in batch.items() if k != key}


def _replace(key, function):
    return lambda batch: {**batch, key: function(batch[key])}


class LoadCifarTest(TestCase, parameterized.TestCase):
    @parameterized.named_parameters(
        ("cifar10_parent_dir", 10, True),
        ("cifar10_folder_itself", 10, False),
        ("cifar100_parent_dir", 100, True),
        ("cifar100_folder_itself", 100, False),
    )
    def test_decodes_both_layouts(self, num_classes, nested):
        directory = self.create_tempdir().full_path
        folder, arrays = write_cifar(directory, num_classes, nested=nested)
        # Nested: pass the parent, as unpacked; otherwise the folder itself.
        (x, y), (xt, yt) = load_cifar(directory, num_classes)
        n_train = 30 if num_classes == 10 else 6
        self.assertEqual(x.shape, (n_train, 32, 32, 3))
        self.assertEqual(xt.shape, (4, 32, 32, 3))
        self.assertEqual(x.dtype, np.float32)
        self.assertEqual(y.dtype, np.int32)
        self.assertAllClose(x, arrays["train"][0] / 255.0)
        self.assertAllEqual(y, arrays["train"][1])
        self.assertAllClose(xt, arrays["test"][0] / 255.0)
        self.assertAllEqual(yt, arrays["test"][1])
        if nested:
            (x2, _), _ = load_cifar(folder, num_classes)
            self.assertAllEqual(x, x2)

    def test_pixel_layout(self):
        # A known image: red 255 in the top-left pixel only, green a
        # left-to-right ramp, blue a top-to-bottom ramp.
        image = np.zeros((32, 32, 3), "uint8")
        image[0, 0, 0] = 255
        image[:, :, 1] = np.arange(32)[None, :] * 8
        image[:, :, 2] = np.arange(32)[:, None] * 8
        row = np.zeros(3072, "uint8")
        row[0] = 255  # red plane first, row-major
        row[1024:2048] = np.tile(np.arange(32) * 8, 32)
        row[2048:] = np.repeat(np.arange(32) * 8, 32)
        self.assertAllEqual(cifar_row(image), row)

        directory = self.create_tempdir().full_path
        write_cifar(directory, 10)
        folder = os.path.join(directory, CIFAR_FOLDERS[10])
        write_pickle(
            os.path.join(folder, "test_batch"),
            {b"data": row[None], b"labels": [7], b"batch_label": b"testing"},
        )
        _, (xt, yt) = load_cifar(directory, 10)
        self.assertAllClose(xt[0], image / 255.0)
        self.assertEqual(xt[0, 0, 0, 0], 1.0)
        self.assertEqual(xt[0, 0, 1, 0], 0.0)
        self.assertAllClose(xt[0, 5, :, 1], np.arange(32) * 8 / 255.0)
        self.assertAllClose(xt[0, :, 5, 2], np.arange(32) * 8 / 255.0)
        self.assertAllEqual(yt, [7])

    @parameterized.named_parameters(
        ("cifar10", 10, "data_batch_3", "cifar-10-python.tar.gz"),
        ("cifar100", 100, "test", "cifar-100-python.tar.gz"),
    )
    def test_missing_file(self, num_classes, name, archive):
        directory = self.create_tempdir().full_path
        folder, _ = write_cifar(directory, num_classes)
        os.remove(os.path.join(folder, name))
        with self.assertRaisesRegex(
            FileNotFoundError,
            rf"'{name}'.*{CIFAR_FOLDERS[num_classes]}.*{archive}.*unpacks into a "
            rf"folder {CIFAR_FOLDERS[num_classes]}/",
        ):
            load_cifar(directory, num_classes)

    def test_empty_directory(self):
        directory = self.create_tempdir().full_path
        with self.assertRaisesRegex(FileNotFoundError, "'data_batch_1'"):
            load_cifar(directory, 10)
        with self.assertRaisesRegex(FileNotFoundError, "'train'"):
            load_cifar(os.path.join(directory, "nowhere"), 100)

    @parameterized.named_parameters(
        ("junk", b"PK\x03\x04 not a pickle"),
        ("empty", b""),
        ("truncated", pickle.dumps({b"data": np.zeros((2, 3072), "uint8")})[:40]),
    )
    def test_corrupt_file(self, content):
        directory = self.create_tempdir().full_path
        folder, _ = write_cifar(directory, 10)
        with open(os.path.join(folder, "test_batch"), "wb") as f:
            f.write(content)
        with self.assertRaisesRegex(
            ValueError, r"Cannot unpickle CIFAR-10 file .*test_batch.*Expected"
        ):
            load_cifar(directory, 10)

    @parameterized.named_parameters(
        ("not_a_dict", lambda batch: [batch], r"expected a pickled dict.*list"),
        ("missing_data", _drop(b"data"), r"missing key b'data'"),
        ("missing_labels", _drop(b"labels"), r"missing key b'labels'"),
        (
            "short_rows",
            _replace(b"data", lambda data: data[:, :3000]),
            r"shape \(n, 3072\).*Received: shape \(6, 3000\)",
        ),
        (
            "flat_data",
            _replace(b"data", lambda data: data.ravel()),
            r"shape \(n, 3072\).*Received: shape \(18432,\)",
        ),
        (
            "float_data",
            _replace(b"data", lambda data: data / 255.0),
            r"uint8 pixel values.*float64",
        ),
        (
            "too_few_labels",
            _replace(b"labels", lambda labels: labels[:-1]),
            r"expected 6 labels in b'labels'.*Received: shape \(5,\)",
        ),
        (
            "too_many_labels",
            _replace(b"labels", lambda labels: labels + [0]),
            r"expected 6 labels",
        ),
        (
            "label_out_of_range",
            _replace(b"labels", lambda labels: [10] + labels[1:]),
            r"labels in \[0, 10\).*to 10",
        ),
    )
    def test_bad_batch(self, mutate, message):
        directory = self.create_tempdir().full_path
        folder, _ = write_cifar(directory, 10)
        path = os.path.join(folder, "data_batch_2")
        with open(path, "rb") as f:
            batch = pickle.load(f, encoding="bytes")
        write_pickle(path, mutate(batch))
        with self.assertRaisesRegex(ValueError, "data_batch_2.*" + message):
            load_cifar(directory, 10)

    def test_cifar100_needs_fine_labels(self):
        directory = self.create_tempdir().full_path
        folder, _ = write_cifar(directory, 100)
        path = os.path.join(folder, "train")
        with open(path, "rb") as f:
            batch = pickle.load(f, encoding="bytes")
        batch[b"labels"] = batch.pop(b"fine_labels")
        write_pickle(path, batch)
        with self.assertRaisesRegex(ValueError, r"train: missing key b'fine_labels'"):
            load_cifar(directory, 100)

    @parameterized.named_parameters(("one", 1), ("twenty", 20), ("string", "10"))
    def test_invalid_num_classes(self, num_classes):
        with self.assertRaisesRegex(
            ValueError,
            r"Received an invalid value for `num_classes`, expected one of "
            r"\[10, 100\]. Received: num_classes=",
        ):
            load_cifar(self.create_tempdir().full_path, num_classes)


if __name__ == "__main__":
    tf.test.main()
