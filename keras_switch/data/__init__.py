"""Data loaders that work offline (no downloads), and the tf.data pipeline."""

from keras_switch.data.cifar import load_cifar
from keras_switch.data.datasets import DATASETS
from keras_switch.data.datasets import load_arrays
from keras_switch.data.datasets import make_dataset
from keras_switch.data.idx import load_fashion_mnist
from keras_switch.data.idx import read_idx

__all__ = [
    "DATASETS",
    "load_arrays",
    "load_cifar",
    "load_fashion_mnist",
    "make_dataset",
    "read_idx",
]
