"""The compact storage of a fixed kernel `[input_dim, units]`: encoding, and
decoding to NumPy, to graph tensors and to and from layer configs.

Storage (picked per kernel, whichever takes fewer bytes):

* ``"delta"``: the nonzero values in output-major order (the rows of the
  transposed kernel `[units, input_dim]`) and, per value, the gap to the
  previous nonzero's flat position, in the smallest unsigned type that
  keeps the codes fewest: `uint8`, `uint16`, or `int32`. A gap larger than
  the type's maximum is bridged by filler entries of value 0 (a few per
  thousand at 98% sparsity with `uint8`). At 95% sparsity the codes take 1
  byte per nonzero next to the value's 4.
* ``"dense"``: the full kernel (when the codes would not save anything,
  above ~80% density).

The graph widens the codes to positions with a cumulative sum. Because they
are constants, TensorFlow's graph optimizer (grappler's constant folding, on
by default for `tf.function`s and loaded SavedModels) runs that decoding once
when the function is first instantiated; each call then costs only the
product. (Grappler does not fold results above 10 MiB: a dense kernel of
more than ~2.6M entries, or more than ~650k nonzeros for the sparse
products' int64 indices. Those are decoded on every call: correct, slower.)
"""

import base64

import numpy as np
import tensorflow as tf

STORAGES = ("delta", "dense")
# Unsigned code types, smallest first; int32 never needs fillers below 2**31
# positions (larger kernels use int64).
_CODE_TYPES = ("uint8", "uint16", "int32")


def encode_kernel(kernel):
    """The compact storage of `kernel` `[input_dim, units]`.

    Returns:
        `(storage, codes, values)`: for ``"delta"``, `codes` (the positive
        gaps between flat positions in the transposed kernel, the first
        counted from -1, fillers included)
        and `values` (same length, 0 at fillers); for ``"dense"``, `codes`
        is `None` and `values` the kernel itself. Whichever is smaller.
    """
    kernel = np.asarray(kernel)
    transposed = kernel.T
    positions = np.flatnonzero(transposed)
    best = ("dense", None, kernel, kernel.nbytes)
    if positions.size == 0:
        empty = np.zeros((0,), _CODE_TYPES[0])
        return "delta", empty, np.zeros((0,), kernel.dtype)
    gaps = np.diff(positions, prepend=-1)
    values = transposed.ravel()[positions]
    for name in _CODE_TYPES:
        if name == "int32" and kernel.size >= 2**31:
            name = "int64"
        dtype = np.dtype(name)
        limit = np.iinfo(dtype).max
        steps = -(-gaps // limit)  # ceil: codes per gap
        count = int(steps.sum())
        size = count * (dtype.itemsize + values.itemsize)
        if size >= best[3]:
            continue
        codes = np.full((count,), limit, dtype)
        last = np.cumsum(steps) - 1  # where each real entry lands
        codes[last] = gaps - (steps - 1) * limit
        padded = np.zeros((count,), values.dtype)
        padded[last] = values
        best = ("delta", codes, padded, size)
    return best[:3]


def check_storage(storage, codes, values, input_dim, units):
    """Validates a stored kernel `[input_dim, units]` (as `encode_kernel`
    returns it).

    Returns:
        `(codes, values)` as NumPy arrays (`codes` stays `None` for
        ``"dense"``).

    Raises:
        ValueError: for a `storage` not in `STORAGES`, arrays of the wrong
            shape for it, or codes of a type the encoding does not use.
    """
    if storage not in STORAGES:
        raise ValueError(
            "Received an invalid value for `storage`, expected one of "
            f"{STORAGES}. Received: storage={storage!r}"
        )
    values = np.asarray(values)
    if storage == "dense":
        if codes is not None or values.shape != (input_dim, units):
            raise ValueError(
                f"Dense storage needs codes=None and values of shape "
                f"{(input_dim, units)}. Received: codes={codes!r}, values "
                f"with shape {values.shape}"
            )
        return codes, values
    codes = np.asarray(codes)
    if codes.ndim != 1 or values.shape != codes.shape:
        raise ValueError(
            "Delta storage needs 1-D codes and values of the same "
            f"length. Received: codes with shape {codes.shape}, values "
            f"with shape {values.shape}"
        )
    if codes.dtype.name not in _CODE_TYPES + ("int64",):
        raise ValueError(
            f"Codes must be one of {_CODE_TYPES + ('int64',)}. "
            f"Received: codes with dtype {codes.dtype.name}"
        )
    return codes, values


def decode_kernel(storage, codes, values, input_dim, units):
    """The dense kernel `[input_dim, units]` of a stored kernel, as a new
    NumPy array."""
    if storage == "dense":
        return values.copy()
    positions = np.cumsum(codes.astype("int64")) - 1
    transposed = np.zeros((units * input_dim,), values.dtype)
    transposed[positions] = values
    return transposed.reshape(units, input_dim).T.copy()


# -- the kernel as graph tensors (constants: grappler folds all of it) --------


def coordinates(storage, codes, values, input_dim):
    """`(outputs, inputs, values)` tensors of the stored kernel's entries,
    output-major, int64 indices (fillers included for ``"delta"``, as zero
    values; only the nonzeros for ``"dense"``)."""
    if storage == "dense":
        transposed = tf.transpose(tf.constant(values))
        where = tf.where(tf.not_equal(transposed, 0))
        return where[:, 0], where[:, 1], tf.gather_nd(transposed, where)
    positions = tf.cumsum(tf.cast(tf.constant(codes), tf.int64)) - 1
    return positions // input_dim, positions % input_dim, tf.constant(values)


def kernel_tensor(storage, codes, values, input_dim, units, entries=None):
    """The dense kernel `[input_dim, units]` as a graph tensor; built from
    `entries` (what `coordinates` returns) if given.

    The kernel comes out of a `PlaceholderWithDefault`, not as a constant:
    grappler still folds the decoding before it (it only depends on
    constants), but oneDNN no longer sees a constant weight, for which it
    takes a weight-caching path (`is_filter_const`) that is slow at small
    batches. The timings: BENCHMARKS.md, "Sparse inference".
    """
    if storage == "dense":
        kernel = tf.constant(values)
    else:
        outputs, inputs, entry_values = entries or coordinates(storage, codes, values, input_dim)
        kernel = tf.scatter_nd(
            tf.stack([inputs, outputs], axis=1), entry_values, [input_dim, units]
        )
    return tf.raw_ops.PlaceholderWithDefault(input=kernel, shape=kernel.shape)


# -- arrays in layer configs (JSON) -------------------------------------------


def array_to_config(array):
    """A JSON-able dict of `array` (dtype, shape, base64 bytes); `None` for
    `None`."""
    if array is None:
        return None
    array = np.ascontiguousarray(array)
    return {
        "dtype": array.dtype.name,
        "shape": list(array.shape),
        "data": base64.b64encode(array.tobytes()).decode("ascii"),
    }


def array_from_config(config):
    """The array `array_to_config` wrote (a writable copy); `None` for
    `None`."""
    if config is None:
        return None
    data = base64.b64decode(config["data"])
    return np.frombuffer(data, config["dtype"]).reshape(config["shape"]).copy()
