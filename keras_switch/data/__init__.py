"""Data loaders that work offline (no downloads)."""

from keras_switch.data.idx import load_fashion_mnist
from keras_switch.data.idx import read_idx

__all__ = ["load_fashion_mnist", "read_idx"]
