"""The held-out data an `AccuracyBudget` checks, from what `fit()` received:
`validation_data` arrays or a `tf.data.Dataset` of batches as numpy arrays,
and `validation_split` of array inputs split as Keras splits it."""

import keras
import numpy as np


def split(x, y, validation_split):
    """`(x, y)` arrays split as Keras' `validation_split` does (the last
    fraction is held out): `(train_x, train_y), (heldout_x, heldout_y)`."""
    count = len(keras.tree.flatten(x)[0])
    split_at = int(np.floor(count * (1.0 - validation_split)))
    if split_at in (0, count):
        raise ValueError(
            f"validation_split={validation_split} of {count} examples leaves "
            f"{count - split_at} held out and {split_at} to train on; the "
            "AccuracyBudget needs both.")
    head = keras.tree.map_structure(lambda a: a[:split_at], (x, y))
    tail = keras.tree.map_structure(lambda a: a[split_at:], (x, y))
    return head, tail


def is_dataset(value):
    """Whether `value` is a `tf.data.Dataset` (read without importing
    TensorFlow)."""
    return type(value).__module__.startswith("tensorflow") and hasattr(value, "element_spec")


def as_arrays(validation_data):
    """`validation_data` (an `(x, y)` or `(x, y, sample_weight)` tuple of
    arrays, or a `tf.data.Dataset` of `(x, y)` batches) as numpy `(x, y)`."""
    if is_dataset(validation_data):
        xs, ys = [], []
        for batch in validation_data:
            x, y, _ = keras.utils.unpack_x_y_sample_weight(batch)
            xs.append(keras.tree.map_structure(np.asarray, x))
            ys.append(np.asarray(y))
        if not xs:
            raise ValueError("The AccuracyBudget's validation_data is an empty dataset.")
        x = keras.tree.map_structure(lambda *parts: np.concatenate(parts), *xs)
        return x, np.concatenate(ys)
    if isinstance(validation_data, (tuple, list)) and len(validation_data) in (2, 3):
        x, y = validation_data[:2]
        return keras.tree.map_structure(np.asarray, x), np.asarray(y)
    raise TypeError(
        "AccuracyBudget takes its held-out data from fit(validation_data=...) "
        "as an (x, y) tuple of arrays or a tf.data.Dataset of (x, y) batches. "
        f"Received: validation_data={type(validation_data).__name__}")
