"""`SparseDense`: a frozen Dense layer stored and computed in a sparse form
(and `SparseConv2D`, a frozen Conv2D whose kernel is stored the same way;
`SparseKernel`, the same for a Conv1D, DepthwiseConv2D or EinsumDense).

`keras_switch.export_sparse` replaces each switched layer of a stripped
model by one of these for inference. The layer has no weights: its kernel
is part of its definition, stored compactly (`keras_switch.sparse.codec`),
enters the traced graph as constants, and is multiplied by the product its
`representation` names (`keras_switch.sparse.kernels`). A layer with no
nonzero left (100% sparse) outputs `activation(bias)`.
"""

import math

import keras
import numpy as np
import tensorflow as tf

from keras_switch.sparse import codec
from keras_switch.sparse import kernels


@keras.saving.register_keras_serializable(package="keras_switch")
class SparseDense(keras.layers.Layer):
    """Inference-only Dense layer whose fixed kernel is stored sparsely.

    `output = activation(dot(input, kernel) + bias)` as `keras.layers.Dense`,
    with `kernel` held in a compact form (`keras_switch.sparse.codec`) and
    the product computed by `representation` (`keras_switch.sparse.kernels`).
    It has no weights and cannot be trained: the arrays are part of the layer
    (and of its config, base64 encoded), and enter the traced graph as
    constants. Build one from a kernel with `SparseDense.from_kernel`.

    Args:
        units: Positive integer, dimensionality of the output space.
        input_dim: Size of the last input axis.
        storage: ``"delta"`` or ``"dense"`` (see `codec.encode_kernel`).
        codes: For ``"delta"``, the position gaps (1-D unsigned integers);
            `None` for ``"dense"``.
        values: For ``"delta"``, the values (1-D, one per code); for
            ``"dense"``, the kernel `[input_dim, units]`.
        bias: The bias `[units]`, or `None` for no bias.
        representation: One of `kernels.REPRESENTATIONS`, or a batch plan
            (see `kernels.batch_plan`).
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
        self._plan = kernels.batch_plan(representation)
        codes, values = codec.check_storage(storage, codes, values, input_dim, units)
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
        storage, codes, values = codec.encode_kernel(kernel)
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
        return codec.decode_kernel(
            self.storage, self.codes, self.values, self.input_dim, self.units
        )

    def build(self, input_shape):
        pass

    def call(self, inputs):
        dtype = self.values.dtype
        x = tf.convert_to_tensor(inputs)
        compute_dtype = x.dtype
        # The common rank-2 case gets no reshapes, and the bias is a BiasAdd:
        # grappler fuses MatMul + BiasAdd (+ Relu) into one kernel, as it does
        # for Keras' Dense (a plain add was slower: BENCHMARKS.md, "Sparse inference").
        flat = x.shape.rank == 2
        if not flat:
            leading = tf.shape(x)[:-1]
            x = tf.reshape(x, [-1, self.input_dim])
        y = kernels.product(
            tf.cast(x, dtype), self._plan, self.storage, self.codes, self.values,
            self.input_dim, self.units,
        )
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
                "codes": codec.array_to_config(self.codes),
                "values": codec.array_to_config(self.values),
                "bias": codec.array_to_config(self.bias),
                "representation": self.representation,
                "activation": keras.activations.serialize(self.activation),
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**_arrays_from_config(config))


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

    `storage`, `codes`, `values`, `bias` and `activation` are
    `SparseDense`'s, for the matrix view of the kernel; `kernel_size`,
    `strides`, `padding`, `data_format`, `dilation_rate` and `groups` are
    `keras.layers.Conv2D`'s (`kernel_size` and the tuples in full).

    Args:
        units: The number of filters.
        input_dim: `kh * kw * c_in` (`c_in` per group).
        representation: ``"dense"`` (the only product of a convolution).
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
        storage, codes, values = codec.encode_kernel(matrix)
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
        kernel = codec.kernel_tensor(
            self.storage, self.codes, self.values, self.input_dim, self.units
        )
        kernel = tf.reshape(kernel, self.kernel_shape)
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


@keras.saving.register_keras_serializable(package="keras_switch")
class SparseKernel(keras.layers.Layer):
    """Inference-only copy of a Conv1D, DepthwiseConv2D or EinsumDense
    layer whose fixed kernel is stored compactly.

    Computes what the plain layer `layer` (its serialized config) computes,
    with the kernel decoded from the compact storage of its matrix view
    `kernel.reshape(-1, kernel_shape[-1])` (`SparseDense`'s `storage`,
    `codes` and `values`) into graph constants, then a dense product: the
    export is small on disk and a call costs what the plain layer's does.
    Build one with `SparseKernel.from_layer`.

    Args:
        layer: `keras.layers.serialize` of the plain layer (its arguments;
            its weights are not used).
        kernel_shape: The kernel's shape.
        storage, codes, values: The stored matrix view of the kernel (see
            `keras_switch.sparse.codec`).
        bias: The bias (the plain layer's shape), or None.
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Raises:
        ValueError: for a layer class other than Conv1D, DepthwiseConv2D
            and EinsumDense, or storage that does not fit `kernel_shape`.
    """

    CLASSES = ("Conv1D", "DepthwiseConv2D", "EinsumDense")

    def __init__(self, layer, kernel_shape, storage, codes, values, bias=None, **kwargs):
        super().__init__(trainable=False, **kwargs)
        # Never built nor tracked: it normalises the arguments as the plain
        # class does, and holds its activation.
        layer = {key: value for key, value in layer.items() if key != "build_config"}
        plain = keras.layers.deserialize(layer)
        if type(plain).__name__ not in self.CLASSES:
            raise ValueError(
                f"SparseKernel stores the kernel of {list(self.CLASSES)}. Received: "
                f"a {type(plain).__name__} layer config"
            )
        self.layer_config = layer
        self.kernel_shape = tuple(int(d) for d in kernel_shape)
        rows, cols = math.prod(self.kernel_shape[:-1]), self.kernel_shape[-1]
        self.codes, self.values = codec.check_storage(storage, codes, values, rows, cols)
        self.storage = storage
        self.bias = None if bias is None else np.asarray(bias)
        self._plain = [plain]  # a list: kept out of Keras' tracking

    @classmethod
    def from_layer(cls, layer, **kwargs):
        """A `SparseKernel` computing what the built plain `layer` does, its
        kernel (and bias) stored compactly."""
        kernel = keras.ops.convert_to_numpy(layer.kernel)
        storage, codes, values = codec.encode_kernel(kernel.reshape(-1, kernel.shape[-1]))
        bias = None if layer.bias is None else keras.ops.convert_to_numpy(layer.bias)
        kwargs.setdefault("name", layer.name)
        kwargs.setdefault("dtype", layer.dtype_policy)
        return cls(keras.layers.serialize(layer), kernel.shape, storage, codes, values,
                   bias=bias, **kwargs)

    @property
    def nonzeros(self):
        """Number of nonzero kernel entries."""
        return int(np.count_nonzero(self.values))

    def dense_kernel(self):
        """The dense kernel, in `kernel_shape`, as a NumPy array."""
        rows, cols = math.prod(self.kernel_shape[:-1]), self.kernel_shape[-1]
        return codec.decode_kernel(self.storage, self.codes, self.values, rows,
                                   cols).reshape(self.kernel_shape)

    def build(self, input_shape):
        pass

    def call(self, inputs):
        plain = self._plain[0]
        x = tf.convert_to_tensor(inputs)
        compute_dtype = x.dtype
        dtype = self.values.dtype
        rows, cols = math.prod(self.kernel_shape[:-1]), self.kernel_shape[-1]
        kernel = tf.reshape(codec.kernel_tensor(self.storage, self.codes, self.values,
                                                rows, cols), self.kernel_shape)
        x = tf.cast(x, dtype)
        kind = type(plain).__name__
        if kind == "EinsumDense":
            y = tf.einsum(plain.equation, x, kernel)
        elif kind == "DepthwiseConv2D":
            y = keras.ops.depthwise_conv(x, kernel, strides=plain.strides,
                                         padding=plain.padding,
                                         dilation_rate=plain.dilation_rate,
                                         data_format=plain.data_format)
        else:  # Conv1D
            padding = plain.padding
            if padding == "causal":
                x = tf.pad(x, plain._compute_causal_padding())
                padding = "valid"
            y = keras.ops.conv(x, kernel, strides=plain.strides, padding=padding,
                               dilation_rate=plain.dilation_rate,
                               data_format=plain.data_format)
        if self.bias is not None:
            bias = tf.constant(self.bias, dtype)
            if kind != "EinsumDense" and plain.data_format == "channels_first":
                bias = tf.reshape(bias, (-1,) + (1,) * plain.rank)
            y = y + bias
        y = tf.cast(y, compute_dtype)
        if plain.activation is not None:
            y = plain.activation(y)
        return y

    def compute_output_shape(self, input_shape):
        return self._plain[0].compute_output_shape(input_shape)

    def get_config(self):
        config = super().get_config()
        config.pop("trainable", None)
        config.update({
            "layer": self.layer_config,
            "kernel_shape": list(self.kernel_shape),
            "storage": self.storage,
            "codes": codec.array_to_config(self.codes),
            "values": codec.array_to_config(self.values),
            "bias": codec.array_to_config(self.bias),
        })
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**_arrays_from_config(config))


def _arrays_from_config(config):
    """A copy of a sparse layer's `config` with its arrays (`codes`,
    `values`, `bias`) decoded."""
    config = dict(config)
    for key in ("codes", "values", "bias"):
        config[key] = codec.array_from_config(config.get(key))
    return config
