"""Helpers that several test files share: generated data files in the real
MNIST (IDX) and CIFAR (pickle) formats, the trainer's small config and
binary, and a subclassed SwitchingModel. Test files import them from here,
never from one another."""

import glob
import gzip
import os
import pickle
import subprocess
import sys
import tempfile

import keras
import numpy as np

from configs import lenet300_fashion_mnist
from keras_switch import SwitchedDense
from keras_switch import Switcher
from keras_switch import SwitchingModel
from keras_switch.data import DATASETS
from keras_switch.data import idx

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# -- MNIST-format IDX files ---------------------------------------------------


def write_idx(path, array, type_code=0x08, compress=True):
    header = bytes([0, 0, type_code, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    data = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    with (gzip.open if compress else open)(path, "wb") as f:
        f.write(data)


def write_split(directory, n_train=5, n_test=3, compress=True):
    """Random 28x28 images and labels as the four IDX files of a split;
    returns {"train": (images, labels), "test": (images, labels)}."""
    rng = np.random.RandomState(0)
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images = rng.randint(0, 256, size=(n, 28, 28)).astype("uint8")
        labels = rng.randint(0, 10, size=(n,)).astype("uint8")
        image_stem, label_stem = idx._FILES[split]
        suffix = ".gz" if compress else ""
        write_idx(os.path.join(directory, image_stem + suffix), images, compress=compress)
        write_idx(os.path.join(directory, label_stem + suffix), labels, compress=compress)
        arrays[split] = (images, labels)
    return arrays


def write_learnable_split(directory, n_train=1024, n_test=512, seed=0):
    """Ten prototype images; each example is its class's prototype plus
    noise, so a LeNet learns it in a few epochs (accuracy well above
    chance, below 1: a change of recipe shows)."""
    rng = np.random.RandomState(seed)
    prototypes = rng.randint(0, 256, size=(10, 28, 28))
    for split, n in (("train", n_train), ("test", n_test)):
        labels = rng.randint(0, 10, size=(n,)).astype("uint8")
        noise = rng.normal(0, 90, size=(n, 28, 28))
        images = np.clip(prototypes[labels] + noise, 0, 255).astype("uint8")
        image_stem, label_stem = idx._FILES[split]
        write_idx(os.path.join(directory, image_stem + ".gz"), images)
        write_idx(os.path.join(directory, label_stem + ".gz"), labels)


def idx_data_dir(test_class, n_train, n_test):
    """Generated MNIST-format files in a directory removed after the class."""
    directory = tempfile.TemporaryDirectory()
    test_class.addClassCleanup(directory.cleanup)
    write_split(directory.name, n_train=n_train, n_test=n_test)
    return directory.name


# -- CIFAR python pickles -----------------------------------------------------

CIFAR_FOLDERS = {10: "cifar-10-batches-py", 100: "cifar-100-python"}
CIFAR_LABEL_KEYS = {10: b"labels", 100: b"fine_labels"}


def cifar_row(image):
    """(32, 32, 3) HWC image -> the official 3072-byte row: all red values
    row by row, then all green, then all blue."""
    return np.concatenate([image[:, :, c].ravel() for c in range(3)])


def write_pickle(path, obj):
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def _cifar_batch(rng, n, num_classes):
    """A batch dict in the official format, and its HWC images and labels."""
    images = rng.randint(0, 256, size=(n, 32, 32, 3)).astype("uint8")
    labels = rng.randint(0, num_classes, size=n)
    rows = np.stack([cifar_row(image) for image in images]).astype("uint8")
    batch = {b"data": rows, CIFAR_LABEL_KEYS[num_classes]: [int(v) for v in labels]}
    if num_classes == 100:
        batch[b"coarse_labels"] = [int(v) // 5 for v in labels]
    return batch, images, labels


def write_cifar(directory, num_classes, n_train=6, n_test=4, nested=True):
    """Writes a tiny CIFAR-10 (5 train batches) or CIFAR-100 folder.

    Returns:
        `(folder, {"train": (images, labels), "test": (images, labels)})`
        with images as uint8 HWC arrays.
    """
    folder = directory
    if nested:
        folder = os.path.join(directory, CIFAR_FOLDERS[num_classes])
        os.makedirs(folder)
    rng = np.random.RandomState(num_classes)
    if num_classes == 10:
        train_names = [f"data_batch_{i}" for i in range(1, 6)]
        test_name = "test_batch"
    else:
        train_names = ["train"]
        test_name = "test"
    train_images, train_labels = [], []
    for name in train_names:
        batch, images, labels = _cifar_batch(rng, n_train, num_classes)
        write_pickle(os.path.join(folder, name), batch)
        train_images.append(images)
        train_labels.append(labels)
    batch, test_images, test_labels = _cifar_batch(rng, n_test, num_classes)
    write_pickle(os.path.join(folder, test_name), batch)
    return folder, {
        "train": (np.concatenate(train_images), np.concatenate(train_labels)),
        "test": (test_images, test_labels),
    }


def write_dataset_files(directory, dataset):
    """Tiny offline files for `dataset`; returns the expected uint8 arrays."""
    if dataset in ("mnist", "fashion_mnist"):
        arrays = write_split(directory, n_train=5, n_test=3)
        return arrays["train"], arrays["test"]
    _, arrays = write_cifar(directory, DATASETS[dataset]["num_classes"])
    return arrays["train"], arrays["test"]


# -- the training binary --------------------------------------------------------


def small_config(data_dir, **overrides):
    """The LeNet-300-100 config, cut to 3 epochs of batch 32 on `data_dir`."""
    config = lenet300_fashion_mnist.get_config()
    config.data_dir = data_dir
    config.num_epochs = 3
    config.batch_size = 32
    config.schedule.ramp_epochs = 1
    config.schedule.freeze_epochs = 1
    config.schedule.switch_every = 1
    for key, value in overrides.items():
        config[key] = value
    return config


def run_binary(args, timeout=300):
    """Runs `python -m trainers.train ARGS` from the checkout."""
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run(
        [sys.executable, "-m", "trainers.train", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout,
    )


def tree(directory):
    """{relative path: (size, mtime)} of every file under `directory`."""
    out = {}
    for path in glob.glob(os.path.join(directory, "**"), recursive=True):
        if os.path.isfile(path):
            stat = os.stat(path)
            out[os.path.relpath(path, directory)] = (stat.st_size, stat.st_mtime_ns)
    return out


# -- models -------------------------------------------------------------------


def save_dense_lenet300(path, fc1_units=300):
    """Saves a plain-Dense LeNet-300-100 (layers fc1, fc2, fc3, as the
    switched one names them) to the .keras file `path`; returns `path`."""
    inputs = keras.Input((28, 28))
    x = keras.layers.Flatten()(inputs)
    x = keras.layers.Dense(fc1_units, activation="relu", name="fc1")(x)
    x = keras.layers.Dense(100, activation="relu", name="fc2")(x)
    outputs = keras.layers.Dense(10, name="fc3")(x)
    keras.Model(inputs, outputs).save(path)
    return path


@keras.saving.register_keras_serializable(package="keras_switch_tests")
class SubclassedNet(SwitchingModel):
    """A subclassed SwitchingModel with a plain __init__."""

    def __init__(self, units=16, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.switcher = Switcher()
        self.hidden = SwitchedDense(units, activation="relu", switcher=self.switcher)
        self.head = SwitchedDense(10, switcher=self.switcher)

    def call(self, x):
        return self.head(self.hidden(x))

    def get_config(self):
        return {**super().get_config(), "units": self.units}
