"""`SparseDense`: a frozen Dense layer stored and computed in a sparse form
(and `SparseConv2D`, a frozen Conv2D whose kernel is stored the same way).

`keras_switch.export_sparse` replaces each switched layer of a stripped
model by one of these for inference. The layer has no weights: its kernel
is part of its definition, stored compactly, and enters the traced graph as
constants.

Storage (picked per layer, whichever takes fewer bytes):

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

Products (`representation`), all of `activation(x @ kernel + bias)`:

* ``"dense"``: `tf.matmul` with the kernel (rebuilt from the codes when
  stored as ``"delta"``).
* ``"sparse_matmul"``: `tf.sparse.sparse_dense_matmul(x, kernel)` with the
  kernel as a `tf.SparseTensor` (COO) in input-major order, the faster one
  at small batches (BENCHMARKS.md, "What the numbers say (issue 5)").
* ``"csr"``: `tf.raw_ops.SparseMatrixMatMul` of the transposed kernel as a
  CSR matrix (TensorFlow's CSR kernels).
* ``"gather"``: the input columns gathered at the nonzeros' input indices,
  scaled by the values, summed per output with `tf.math.segment_sum`.
* ``"hybrid"``: ``"dense"`` for batches below `HYBRID_MIN_BATCH` rows,
  ``"csr"`` from there on (a `tf.cond` on the run-time batch size): on CPU
  the CSR product only wins on large batches.
* a batch plan, ``"product@rows,product@rows,..."``: each product from the
  given number of rows on, the first from 1, in ascending order (nested
  `tf.cond`s on the run-time batch size). ``"hybrid"`` is
  ``"dense@1,csr@256"``. (`export_sparse`'s ``"auto"`` does not write
  other plans: see `keras_switch.export.auto_representation`.)

A layer with no nonzero left (100% sparse) skips the product for any
representation: its output is `activation(bias)`.
"""

import base64
import math

import keras
import numpy as np
import tensorflow as tf

PRODUCTS = ("dense", "sparse_matmul", "csr", "gather")
REPRESENTATIONS = PRODUCTS + ("hybrid",)
# "hybrid" uses the CSR product from this batch size on, the dense one below.
HYBRID_MIN_BATCH = 256
STORAGES = ("delta", "dense")
# Unsigned code types, smallest first; int32 never needs fillers below 2**31
# positions (larger kernels use int64).
_CODE_TYPES = ("uint8", "uint16", "int32")


def batch_plan(representation):
    """The products of `representation` by batch size.

    Returns:
        `((rows, product), ...)`: `product` (one of `PRODUCTS`) serves
        batches from `rows` rows up to the next entry's; the first `rows` is
        1, and `rows` ascend.

    Raises:
        ValueError: if `representation` is neither one of `REPRESENTATIONS`
            nor a valid plan string ``"product@rows,..."``.
    """
    if representation in PRODUCTS:
        return ((1, representation),)
    if representation == "hybrid":
        return ((1, "dense"), (HYBRID_MIN_BATCH, "csr"))
    plan = []
    if isinstance(representation, str):
        for part in representation.split(","):
            product, _, rows = part.partition("@")
            plan.append((int(rows) if rows.isdigit() else 0, product))
    rows = [r for r, _ in plan]
    if (
        not plan
        or rows[0] != 1
        or any(b <= a for a, b in zip(rows, rows[1:]))
        or any(product not in PRODUCTS for _, product in plan)
    ):
        raise ValueError(
            "Received an invalid value for `representation`, expected one of "
            f"{REPRESENTATIONS} or a batch plan of {PRODUCTS} such as "
            "'sparse_matmul@1,dense@2,csr@256' (each product from that many "
            "rows on, starting at 1, ascending). Received: "
            f"representation={representation!r}"
        )
    return tuple(plan)


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


def _array_to_config(array):
    if array is None:
        return None
    array = np.ascontiguousarray(array)
    return {
        "dtype": array.dtype.name,
        "shape": list(array.shape),
        "data": base64.b64encode(array.tobytes()).decode("ascii"),
    }


def _array_from_config(config):
    if config is None:
        return None
    data = base64.b64decode(config["data"])
    return np.frombuffer(data, config["dtype"]).reshape(config["shape"]).copy()


@keras.saving.register_keras_serializable(package="keras_switch")
class SparseDense(keras.layers.Layer):
    """Inference-only Dense layer whose fixed kernel is stored sparsely.

    `output = activation(dot(input, kernel) + bias)` as `keras.layers.Dense`,
    with `kernel` held in a compact form (see the module docstring) and the
    product computed by `representation`. It has no weights and cannot be
    trained: the arrays are part of the layer (and of its config, base64
    encoded), and enter the traced graph as constants. Build one from a
    kernel with `SparseDense.from_kernel`.

    Args:
        units: Positive integer, dimensionality of the output space.
        input_dim: Size of the last input axis.
        storage: ``"delta"`` or ``"dense"`` (see `encode_kernel`).
        codes: For ``"delta"``, the position gaps (1-D unsigned integers);
            `None` for ``"dense"``.
        values: For ``"delta"``, the values (1-D, one per code); for
            ``"dense"``, the kernel `[input_dim, units]`.
        bias: The bias `[units]`, or `None` for no bias.
        representation: One of `REPRESENTATIONS`, or a batch plan (see
            `batch_plan`).
        activation: Activation function to use (default: none).
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Input shape:
        N-D tensor with shape `(batch_size, ..., input_dim)`.

    Output shape:
        N-D tensor with shape `(batch_size, ..., units)`.
    """

    def __init__(
        self,
        units,
        input_dim,
        storage,
        codes,
        values,
        bias=None,
        representation="dense",
        activation=None,
        **kwargs,
    ):
        super().__init__(trainable=False, **kwargs)
        self._plan = batch_plan(representation)
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
        else:
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
        if bias is not None and np.shape(bias) != (units,):
            raise ValueError(
                f"Expected a bias of shape {(units,)}. Received: bias with "
                f"shape {np.shape(bias)}"
            )
        self.units = int(units)
        self.input_dim = int(input_dim)
        self.storage = storage
        self.codes = codes
        self.values = values
        self.bias = None if bias is None else np.asarray(bias)
        self.representation = representation
        self.activation = keras.activations.get(activation)
        self.input_spec = keras.layers.InputSpec(min_ndim=2, axes={-1: self.input_dim})

    @classmethod
    def from_kernel(cls, kernel, bias=None, representation="dense", **kwargs):
        """A `SparseDense` holding `kernel` `[input_dim, units]` in its
        smallest storage; other arguments as the constructor's."""
        kernel = np.asarray(kernel)
        storage, codes, values = encode_kernel(kernel)
        return cls(
            units=kernel.shape[1],
            input_dim=kernel.shape[0],
            storage=storage,
            codes=codes,
            values=values,
            bias=bias,
            representation=representation,
            **kwargs,
        )

    @property
    def nonzeros(self):
        """Number of nonzero kernel entries (fillers not counted)."""
        return int(np.count_nonzero(self.values))

    @property
    def stored_bytes(self):
        """Bytes of the kernel's storage (codes and values)."""
        return self.values.nbytes + (0 if self.codes is None else self.codes.nbytes)

    def dense_kernel(self):
        """The dense kernel `[input_dim, units]` as a NumPy array."""
        if self.storage == "dense":
            return self.values.copy()
        positions = np.cumsum(self.codes.astype("int64")) - 1
        transposed = np.zeros((self.units * self.input_dim,), self.values.dtype)
        transposed[positions] = self.values
        return transposed.reshape(self.units, self.input_dim).T.copy()

    def build(self, input_shape):
        pass

    # -- the kernel as graph tensors (constants: grappler folds all of it) --

    def _coordinates(self):
        """`(outputs, inputs, values)` of the stored entries, output-major
        (int64 indices)."""
        if self.storage == "dense":
            transposed = tf.transpose(tf.constant(self.values))
            where = tf.where(tf.not_equal(transposed, 0))
            return where[:, 0], where[:, 1], tf.gather_nd(transposed, where)
        positions = tf.cumsum(tf.cast(tf.constant(self.codes), tf.int64)) - 1
        return (
            positions // self.input_dim,
            positions % self.input_dim,
            tf.constant(self.values),
        )

    def _kernel_tensor(self, coordinates=None):
        """The dense kernel; from `coordinates` (`_coordinates()`) if given.

        The kernel reaches the matmul through a `PlaceholderWithDefault`, not
        as a constant: grappler still folds the decoding before it (it only
        depends on constants), but oneDNN no longer sees a constant weight,
        for which it takes a weight-caching path (`is_filter_const`) that is
        slow at small batches. The timings: BENCHMARKS.md, "Sparse
        inference", "What the numbers say (issue 5)".
        """
        if self.storage == "dense":
            kernel = tf.constant(self.values)
        else:
            outputs, inputs, values = coordinates or self._coordinates()
            kernel = tf.scatter_nd(
                tf.stack([inputs, outputs], axis=1), values, [self.input_dim, self.units]
            )
        return tf.raw_ops.PlaceholderWithDefault(input=kernel, shape=kernel.shape)

    # -- the products: x [n, input_dim] -> [n, units] ------------------------

    def _product(self, x):
        if self.nonzeros == 0:
            return tf.zeros(tf.stack([tf.shape(x)[0], self.units]), x.dtype)
        names = [name for _, name in self._plan]
        coordinates = None
        if self.storage != "dense" or set(names) != {"dense"}:
            coordinates = self._coordinates()  # shared by the products
        products = {name: self._product_fn(name, x, coordinates) for name in names}
        rows = tf.shape(x)[0]

        def tier(i):
            """The product of plan entry `i` and above, by batch size."""
            if i == len(self._plan) - 1:
                return products[self._plan[i][1]]
            return lambda: tf.cond(
                rows >= self._plan[i + 1][0], tier(i + 1), products[self._plan[i][1]]
            )

        return tier(0)()

    def _product_fn(self, name, x, coordinates):
        """A callable computing `x @ kernel` with product `name`, from
        `coordinates` (`_coordinates()`; `None` for a dense product of a
        kernel stored dense). Operands grappler can fold are built here,
        outside any `tf.cond` branch; the CSR matrix (a variant, never
        folded) is built in its call, so that it costs nothing when another
        branch runs."""
        if name == "dense":
            kernel = self._kernel_tensor(coordinates)
            return lambda: tf.matmul(x, kernel)
        outputs, inputs, values = coordinates
        if name == "sparse_matmul":
            # Input-major order: faster at small batches than the stored
            # output-major one (BENCHMARKS.md, issue 5).
            kernel = tf.sparse.reorder(
                tf.SparseTensor(
                    tf.stack([inputs, outputs], axis=1), values, [self.input_dim, self.units]
                )
            )
            return lambda: tf.sparse.sparse_dense_matmul(x, kernel)
        if name == "gather":

            def gather():
                # One row of x^T per stored entry, scaled, summed per output.
                terms = tf.gather(tf.transpose(x), inputs) * values[:, None]
                sums = tf.math.segment_sum(terms, outputs)  # up to the last output used
                sums = tf.pad(sums, [[0, self.units - tf.shape(sums)[0]], [0, 0]])
                return tf.transpose(sums)

            return gather

        def csr():
            kernel_t = tf.raw_ops.SparseTensorToCSRSparseMatrix(
                indices=tf.stack([outputs, inputs], axis=1),
                values=values,
                dense_shape=tf.constant([self.units, self.input_dim], tf.int64),
            )
            return tf.transpose(
                tf.raw_ops.SparseMatrixMatMul(a=kernel_t, b=x, adjoint_b=True)
            )

        return csr

    def call(self, inputs):
        dtype = self.values.dtype
        x = tf.convert_to_tensor(inputs)
        compute_dtype = x.dtype
        # The common rank-2 case gets no reshapes, and the bias is a BiasAdd:
        # grappler fuses MatMul + BiasAdd (+ Relu) into one kernel, as it does
        # for Keras' Dense (a plain add was slower: BENCHMARKS.md, issue 5).
        flat = x.shape.rank == 2
        if not flat:
            leading = tf.shape(x)[:-1]
            x = tf.reshape(x, [-1, self.input_dim])
        y = self._product(tf.cast(x, dtype))
        if self.bias is not None:
            y = tf.nn.bias_add(y, tf.constant(self.bias, dtype))
        y = tf.cast(y, compute_dtype)
        if not flat:
            y = tf.reshape(y, tf.concat([leading, [self.units]], axis=0))
        if self.activation is not None:
            y = self.activation(y)
        return y

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        config = super().get_config()
        config.pop("trainable", None)
        config.update(
            {
                "units": self.units,
                "input_dim": self.input_dim,
                "storage": self.storage,
                "codes": _array_to_config(self.codes),
                "values": _array_to_config(self.values),
                "bias": _array_to_config(self.bias),
                "representation": self.representation,
                "activation": keras.activations.serialize(self.activation),
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("codes", "values", "bias"):
            config[key] = _array_from_config(config.get(key))
        return cls(**config)


@keras.saving.register_keras_serializable(package="keras_switch")
class SparseConv2D(SparseDense):
    """Inference-only Conv2D whose fixed kernel is stored compactly.

    `output = activation(conv2d(input, kernel) + bias)` as
    `keras.layers.Conv2D`, with the kernel `[kh, kw, c_in, filters]` stored
    as `SparseDense` stores the matrix `[kh * kw * c_in, filters]` (the same
    ``"delta"`` or ``"dense"`` storage). The convolution itself is dense:
    the kernel is decoded from constants, which grappler folds once, so the
    export is small on disk and a call costs what Conv2D's does. Build one
    with `SparseConv2D.from_kernel`.

    Args:
        units: The number of filters.
        input_dim: `kh * kw * c_in` (`c_in` per group).
        storage, codes, values, bias, activation: as `SparseDense`, for the
            matrix view of the kernel.
        representation: ``"dense"`` (the only product of a convolution).
        kernel_size, strides, padding, data_format, dilation_rate, groups:
            as `keras.layers.Conv2D` (`kernel_size` and the tuples in full).
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.
    """

    def __init__(
        self,
        units,
        input_dim,
        storage,
        codes,
        values,
        bias=None,
        representation="dense",
        activation=None,
        kernel_size=(1, 1),
        strides=(1, 1),
        padding="valid",
        data_format="channels_last",
        dilation_rate=(1, 1),
        groups=1,
        **kwargs,
    ):
        if representation != "dense":
            raise ValueError(
                "SparseConv2D computes a dense convolution of its compactly "
                "stored kernel: `representation` must be 'dense'. Received: "
                f"representation={representation!r}"
            )
        super().__init__(units, input_dim, storage, codes, values, bias=bias,
                         representation=representation, activation=activation, **kwargs)
        # A Conv2D (never built, not kept as a sub-layer) normalises the
        # arguments as Conv2D does and raises its errors for bad ones.
        conv = keras.layers.Conv2D(
            units, kernel_size, strides=strides, padding=padding, data_format=data_format,
            dilation_rate=dilation_rate, groups=groups, use_bias=False,
        )
        self.conv_config = {
            "kernel_size": tuple(conv.kernel_size),
            "strides": tuple(conv.strides),
            "padding": conv.padding,
            "data_format": conv.data_format,
            "dilation_rate": tuple(conv.dilation_rate),
            "groups": conv.groups,
        }
        kernel_size = self.conv_config["kernel_size"]
        if input_dim % math.prod(kernel_size):
            raise ValueError(
                f"input_dim={input_dim} is not a multiple of kh * kw = "
                f"{math.prod(kernel_size)} (kernel_size={kernel_size})"
            )
        self.kernel_shape = kernel_size + (input_dim // math.prod(kernel_size), units)
        self.input_spec = keras.layers.InputSpec(ndim=4)

    @classmethod
    def from_kernel(cls, kernel, bias=None, representation="dense", **kwargs):
        """A `SparseConv2D` holding `kernel` `[kh, kw, c_in, filters]` in its
        smallest storage; the convolution's arguments as keywords."""
        kernel = np.asarray(kernel)
        if kernel.ndim != 4:
            raise ValueError(
                "SparseConv2D.from_kernel expects a kernel [kh, kw, c_in, "
                f"filters]. Received: kernel with shape {kernel.shape}"
            )
        matrix = kernel.reshape(-1, kernel.shape[-1])
        storage, codes, values = encode_kernel(matrix)
        return cls(
            units=kernel.shape[-1],
            input_dim=matrix.shape[0],
            storage=storage,
            codes=codes,
            values=values,
            bias=bias,
            representation=representation,
            kernel_size=kernel.shape[:2],
            **kwargs,
        )

    def dense_kernel(self):
        """The dense kernel `[kh, kw, c_in, filters]` as a NumPy array."""
        return super().dense_kernel().reshape(self.kernel_shape)

    def call(self, inputs):
        x = tf.convert_to_tensor(inputs)
        compute_dtype = x.dtype
        dtype = self.values.dtype
        kernel = tf.reshape(self._kernel_tensor(), self.kernel_shape)
        conv = self.conv_config
        y = keras.ops.conv(
            tf.cast(x, dtype), kernel, strides=conv["strides"], padding=conv["padding"],
            data_format=conv["data_format"], dilation_rate=conv["dilation_rate"],
        )
        if self.bias is not None:
            layout = "NHWC" if conv["data_format"] == "channels_last" else "NCHW"
            y = tf.nn.bias_add(y, tf.constant(self.bias, dtype), data_format=layout)
        y = tf.cast(y, compute_dtype)
        if self.activation is not None:
            y = self.activation(y)
        return y

    def compute_output_shape(self, input_shape):
        conv = keras.layers.Conv2D(self.units, use_bias=False, **self.conv_config)
        return conv.compute_output_shape(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({key: list(value) if isinstance(value, tuple) else value
                       for key, value in self.conv_config.items()})
        return config
