import importlib.util
import os
import sys
import types
from unittest import mock

import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from keras_switch.data import DATASETS
from keras_switch.data import datasets
from keras_switch.data import idx
from keras_switch.data import load_arrays
from keras_switch.data import make_dataset
from tests.helpers import write_dataset_files
from tests.test_case import TestCase

_TFDS_INSTALLED = importlib.util.find_spec("tensorflow_datasets") is not None


def _images(n=10, shape=(32, 32, 3), seed=0):
    return np.random.RandomState(seed).rand(n, *shape).astype("float32")


def _collect(dataset):
    """All batches of one pass -> (list of batch sizes, images, labels)."""
    batches = [(x.numpy(), y.numpy()) for x, y in dataset]
    sizes = [len(y) for _, y in batches]
    images = np.concatenate([x for x, _ in batches])
    labels = np.concatenate([y for _, y in batches])
    return sizes, images, labels


class DatasetsTableTest(TestCase):
    def test_entries(self):
        self.assertEqual(
            sorted(DATASETS),
            ["cifar10", "cifar100", "digits", "fashion_mnist", "mnist"],
        )
        self.assertEqual(DATASETS["mnist"]["input_shape"], (28, 28))
        self.assertEqual(DATASETS["fashion_mnist"]["input_shape"], (28, 28))
        self.assertEqual(DATASETS["cifar10"]["input_shape"], (32, 32, 3))
        self.assertEqual(DATASETS["cifar100"]["input_shape"], (32, 32, 3))
        self.assertEqual(DATASETS["digits"]["input_shape"], (8, 8))
        self.assertEqual(DATASETS["cifar100"]["num_classes"], 100)
        for name in ("mnist", "fashion_mnist", "cifar10", "digits"):
            self.assertEqual(DATASETS[name]["num_classes"], 10)
        self.assertEqual(DATASETS["fashion_mnist"]["data_dir"], idx.FASHION_MNIST_DIR)
        for name in ("mnist", "cifar10", "cifar100", "digits"):
            self.assertIsNone(DATASETS[name]["data_dir"])

    def test_cifar_normalization_constants(self):
        for values in (
            datasets.CIFAR10_MEAN,
            datasets.CIFAR10_STD,
            datasets.CIFAR100_MEAN,
            datasets.CIFAR100_STD,
        ):
            self.assertLen(values, 3)
            self.assertTrue(all(0.2 < v < 0.6 for v in values))


class LoadArraysTest(TestCase, parameterized.TestCase):
    @parameterized.named_parameters(
        ("mnist_files", "mnist", "files"),
        ("fashion_mnist_files", "fashion_mnist", "files"),
        ("cifar10_files", "cifar10", "files"),
        ("cifar100_files", "cifar100", "files"),
        ("mnist_auto", "mnist", "auto"),
        ("cifar10_auto", "cifar10", "auto"),
    )
    def test_offline_files(self, dataset, source):
        directory = self.create_tempdir().full_path
        train, test = write_dataset_files(directory, dataset)
        (x, y), (xt, yt) = load_arrays(dataset, directory, source=source)
        shape = DATASETS[dataset]["input_shape"]
        for images, labels, expected in ((x, y, train), (xt, yt, test)):
            self.assertEqual(images.shape, (len(expected[0]),) + shape)
            self.assertEqual(images.dtype, np.float32)
            self.assertEqual(labels.dtype, np.int32)
            self.assertAllClose(images, expected[0] / 255.0)
            self.assertAllEqual(labels, expected[1])

    @parameterized.named_parameters(("sklearn", "sklearn"), ("auto", "auto"))
    def test_digits(self, source):
        from sklearn.datasets import load_digits

        (x, y), (xt, yt) = load_arrays("digits", source=source)
        self.assertEqual(x.shape, (1500, 8, 8))
        self.assertEqual(xt.shape, (297, 8, 8))
        self.assertEqual(x.dtype, np.float32)
        self.assertEqual(yt.dtype, np.int32)
        self.assertEqual(x.min(), 0.0)
        self.assertEqual(x.max(), 1.0)
        reference = load_digits()
        self.assertAllClose(xt, reference.images[-297:] / 16.0)
        self.assertAllEqual(yt, reference.target[-297:])
        self.assertAllEqual(y, reference.target[:1500])

    @parameterized.named_parameters(
        ("unknown", "imagenet"), ("case", "MNIST"), ("none", None)
    )
    def test_invalid_dataset(self, dataset):
        with self.assertRaisesRegex(
            ValueError,
            r"Received an invalid value for `dataset`, expected one of "
            r"\['mnist', 'fashion_mnist', 'cifar10', 'cifar100', 'digits'\]. "
            rf"Received: dataset={dataset!r}",
        ):
            load_arrays(dataset)

    @parameterized.named_parameters(("unknown", "web"), ("empty", ""))
    def test_invalid_source(self, source):
        with self.assertRaisesRegex(
            ValueError,
            r"Received an invalid value for `source`, expected one of "
            r"\['auto', 'files', 'tfds', 'sklearn'\]. "
            rf"Received: source={source!r}",
        ):
            load_arrays("mnist", source=source)

    @parameterized.named_parameters(
        ("digits_files", "digits", "files", r"\['auto', 'sklearn'\]"),
        ("digits_tfds", "digits", "tfds", r"\['auto', 'sklearn'\]"),
        ("cifar10_sklearn", "cifar10", "sklearn", r"\['auto', 'files', 'tfds'\]"),
    )
    def test_source_cannot_serve_dataset(self, dataset, source, allowed):
        with self.assertRaisesRegex(
            ValueError,
            rf"`source` for dataset='{dataset}', expected one of {allowed}. "
            rf"Received: source='{source}'",
        ):
            load_arrays(dataset, source=source)

    def test_files_need_a_directory(self):
        with self.assertRaisesRegex(ValueError, r"needs `data_dir`"):
            load_arrays("cifar10", source="files")

    def test_missing_files(self):
        directory = self.create_tempdir().full_path
        with self.assertRaisesRegex(FileNotFoundError, "'data_batch_1'"):
            load_arrays("cifar10", directory, source="files")
        with self.assertRaisesRegex(FileNotFoundError, "train-images-idx3-ubyte"):
            load_arrays("mnist", directory, source="auto")

    def test_tfds_not_installed(self):
        if _TFDS_INSTALLED:
            self.skipTest("tensorflow_datasets is installed (would download)")
        with self.assertRaisesRegex(ImportError, r"pip install tensorflow-datasets"):
            load_arrays("cifar10", source="tfds")
        # "auto" without a data directory falls back to tfds.
        missing = os.path.join(self.create_tempdir().full_path, "nowhere")
        with self.assertRaisesRegex(ImportError, r"source='files'"):
            load_arrays("mnist", missing)

    def test_tfds_import_error_when_blocked(self):
        # Runs whether or not tensorflow_datasets is installed: None in
        # sys.modules makes the import fail, and nothing is downloaded.
        with mock.patch.dict(sys.modules, {"tensorflow_datasets": None}):
            with self.assertRaisesRegex(
                ImportError,
                r"source='tfds' for dataset='fashion_mnist' needs TensorFlow "
                r"Datasets.*`pip install tensorflow-datasets`, or use offline "
                r"files",
            ):
                load_arrays("fashion_mnist", "/nonexistent", source="tfds")

    @parameterized.named_parameters(
        ("mnist", "mnist", (28, 28, 1)), ("cifar100", "cifar100", (32, 32, 3))
    )
    def test_tfds_arrays_are_converted(self, dataset, tfds_shape):
        rng = np.random.RandomState(0)
        splits = {
            "train": rng.randint(0, 256, (4,) + tfds_shape).astype("uint8"),
            "test": rng.randint(0, 256, (2,) + tfds_shape).astype("uint8"),
        }
        calls = []

        def fake_load(name, split, data_dir, as_supervised, batch_size):
            calls.append((name, split, data_dir, as_supervised, batch_size))
            return [
                (tf.constant(splits[s]), tf.range(len(splits[s]), dtype=tf.int64))
                for s in split
            ]

        fake_tfds = types.ModuleType("tensorflow_datasets")
        fake_tfds.load = fake_load
        with mock.patch.dict(sys.modules, {"tensorflow_datasets": fake_tfds}):
            (x, y), (xt, yt) = load_arrays(dataset, "/tfds", source="tfds")
        self.assertEqual(calls, [(dataset, ["train", "test"], "/tfds", True, -1)])
        shape = DATASETS[dataset]["input_shape"]
        self.assertEqual(x.shape, (4,) + shape)
        self.assertEqual(xt.shape, (2,) + shape)
        self.assertEqual(x.dtype, np.float32)
        self.assertEqual(y.dtype, np.int32)
        self.assertAllClose(x, splits["train"].reshape((4,) + shape) / 255.0)
        self.assertAllEqual(yt, [0, 1])


class MakeDatasetTest(TestCase, parameterized.TestCase):
    def test_evaluation_batches_in_order(self):
        x, y = _images(), np.arange(10, dtype="int32")
        dataset = make_dataset(x, y, batch_size=4, training=False, augment=True)
        self.assertEqual(
            dataset.element_spec[0], tf.TensorSpec((None, 32, 32, 3), tf.float32)
        )
        self.assertEqual(dataset.element_spec[1].dtype, tf.int32)
        sizes, images, labels = _collect(dataset)
        self.assertEqual(sizes, [4, 4, 2])
        self.assertAllEqual(labels, y)
        self.assertAllEqual(images, x)  # no augmentation when not training

    def test_training_shuffles_every_epoch(self):
        x, y = _images(), np.arange(10, dtype="int32")
        dataset = make_dataset(x, y, batch_size=4, training=True, seed=3)
        sizes, images, first = _collect(dataset)
        _, _, second = _collect(dataset)
        self.assertEqual(sizes, [4, 4, 2])
        self.assertAllEqual(sorted(first), y)
        self.assertAllEqual(sorted(second), y)
        self.assertNotAllEqual(first, y)
        self.assertNotAllEqual(first, second)
        self.assertAllEqual(images, x[first])  # images stay with their labels

    @parameterized.named_parameters(("plain", False), ("augmented", True))
    def test_deterministic_by_seed(self, augment):
        x, y = _images(), np.arange(10, dtype="int32")

        def epochs(seed):
            dataset = make_dataset(x, y, 4, True, seed=seed, augment=augment)
            return [_collect(dataset) for _ in range(2)]

        first, again, other = epochs(7), epochs(7), epochs(8)
        for epoch in range(2):
            self.assertAllEqual(first[epoch][1], again[epoch][1])
            self.assertAllEqual(first[epoch][2], again[epoch][2])
        self.assertNotAllEqual(first[0][2][:4], other[0][2][:4])
        if augment:
            self.assertNotAllClose(first[0][1], other[0][1])

    @parameterized.named_parameters(
        ("plain_from_1", False, 1), ("augmented_from_1", True, 1),
        ("augmented_from_2", True, 2),
    )
    def test_resumed_epochs_are_the_uninterrupted_runs_batches(self, augment, start):
        # What a resumed run relies on (docs/trainer.md, "Reliability"): the pipeline
        # built with initial_epoch=k yields byte for byte the batches of
        # epochs k.. of the pipeline built with initial_epoch=0.
        x, y = _images(), np.arange(10, dtype="int32")

        def batches(initial_epoch):
            dataset = make_dataset(
                x, y, 4, training=True, seed=5, augment=augment,
                normalize=(0.5, 0.25), epochs=3, initial_epoch=initial_epoch,
            )
            return [(images.numpy(), labels.numpy()) for images, labels in dataset]

        uninterrupted = batches(0)
        self.assertLen(uninterrupted, 3 * 3)  # 3 epochs of 3 batches (4, 4, 2)
        resumed = batches(start)
        self.assertLen(resumed, (3 - start) * 3)
        for (images, labels), (want_images, want_labels) in zip(
            resumed, uninterrupted[start * 3:]
        ):
            self.assertEqual(images.dtype, want_images.dtype)
            self.assertEqual(images.shape, want_images.shape)
            self.assertEqual(images.tobytes(), want_images.tobytes())
            self.assertEqual(labels.tobytes(), want_labels.tobytes())
        # Not vacuous: each epoch is shuffled anew (and augmented anew).
        orders = [np.concatenate([l for _, l in uninterrupted[e * 3:e * 3 + 3]])
                  for e in range(3)]
        self.assertNotAllEqual(orders[0], orders[1])
        self.assertNotAllEqual(orders[1], orders[2])
        if augment:
            first = np.concatenate([i for i, _ in uninterrupted[:3]])
            self.assertNotAllClose(first, (x[orders[0]] - 0.5) / 0.25)

    def test_augmentation_crops_and_flips(self):
        x, y = _images(n=8), np.arange(8, dtype="int32")
        dataset = make_dataset(x, y, batch_size=8, training=True, augment=True)
        _, images, labels = _collect(dataset)
        self.assertEqual(images.shape, (8, 32, 32, 3))
        self.assertEqual(images.dtype, np.float32)
        self.assertNotAllClose(images, x[labels])
        # Each output is a 32x32 window of its image padded by 4 zeros,
        # possibly mirrored left-right.
        padded = np.pad(x, [(0, 0), (4, 4), (4, 4), (0, 0)])
        for image, label in zip(images, labels):
            windows = [
                window
                for dy in range(9)
                for dx in range(9)
                for window in (
                    padded[label, dy : dy + 32, dx : dx + 32],
                    padded[label, dy : dy + 32, dx : dx + 32][:, ::-1],
                )
            ]
            self.assertTrue(any(np.array_equal(image, w) for w in windows))

    def test_augment_needs_channels(self):
        with self.assertRaisesRegex(
            ValueError, r"`augment=True` expects images of shape \(n, height"
        ):
            make_dataset(_images(shape=(28, 28)), np.zeros(10), 4, True, augment=True)

    def test_normalization_per_channel(self):
        x, y = _images(), np.arange(10, dtype="int32")
        mean, std = (0.1, 0.2, 0.3), (0.5, 0.25, 2.0)
        dataset = make_dataset(x, y, 4, training=False, normalize=(mean, std))
        _, images, _ = _collect(dataset)
        expected = (x - np.array(mean)) / np.array(std)
        self.assertAllClose(images, expected, atol=1e-6)
        self.assertAllClose(images[3, 5, 7], (x[3, 5, 7] - mean) / np.array(std))

    def test_normalization_scalar_for_grayscale(self):
        x, y = _images(shape=(28, 28)), np.arange(10)
        dataset = make_dataset(x, y, 10, training=True, normalize=(0.5, 0.25))
        _, images, labels = _collect(dataset)
        self.assertAllClose(images, (x[labels] - 0.5) / 0.25, atol=1e-6)

    def test_cifar_pipeline_from_files(self):
        directory = self.create_tempdir().full_path
        write_dataset_files(directory, "cifar10")
        (x, y), _ = load_arrays("cifar10", directory, source="files")
        normalize = (datasets.CIFAR10_MEAN, datasets.CIFAR10_STD)
        dataset = make_dataset(x, y, 8, True, augment=True, normalize=normalize)
        sizes, images, labels = _collect(dataset)
        self.assertEqual(sizes, [8, 8, 8, 6])
        self.assertEqual(images.shape, (30, 32, 32, 3))
        self.assertEqual(labels.dtype, np.int32)

    @parameterized.named_parameters(
        ("zero", 0), ("negative", -1), ("float", 2.5), ("string", "4"), ("bool", True)
    )
    def test_invalid_batch_size(self, batch_size):
        with self.assertRaisesRegex(
            ValueError,
            r"Received an invalid value for `batch_size`, expected a positive "
            rf"int. Received: batch_size={batch_size!r}",
        ):
            make_dataset(_images(), np.zeros(10), batch_size, training=True)

    @parameterized.named_parameters(
        ("short_y", 10, 9), ("short_x", 3, 4), ("empty", 0, 0)
    )
    def test_invalid_lengths(self, n_x, n_y):
        with self.assertRaisesRegex(ValueError, r"`x` and `y`"):
            make_dataset(_images(n=n_x), np.zeros(n_y), 4, training=False)

    @parameterized.named_parameters(
        ("not_a_pair", (0.5,), r"expected None or \(mean, std\)"),
        ("channels", ((0.5, 0.5), (1.0, 1.0)), r"3 per-channel values"),
        ("zero_std", (0.5, 0.0), r"std must be positive"),
    )
    def test_invalid_normalize(self, normalize, message):
        with self.assertRaisesRegex(ValueError, "`normalize`.*" + message):
            make_dataset(_images(), np.zeros(10), 4, False, normalize=normalize)


if __name__ == "__main__":
    tf.test.main()
