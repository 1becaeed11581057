"""The products `x @ kernel` of a stored kernel (`keras_switch.sparse.codec`)
with an input `x` `[n, input_dim]`, and the batch plans that choose among
them by the run-time batch size.

Products (`representation`):

* ``"dense"``: `tf.matmul` with the kernel (rebuilt from the codes when
  stored as ``"delta"``).
* ``"sparse_matmul"``: `tf.sparse.sparse_dense_matmul(x, kernel)` with the
  kernel as a `tf.SparseTensor` (COO) in input-major order, the faster one
  at small batches (BENCHMARKS.md, "Sparse inference").
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

A kernel with no nonzero left (100% sparse) skips the product for any
representation: the result is zeros.
"""

import numpy as np
import tensorflow as tf

from keras_switch.sparse import codec

PRODUCTS = ("dense", "sparse_matmul", "csr", "gather")
REPRESENTATIONS = PRODUCTS + ("hybrid",)
# "hybrid" uses the CSR product from this batch size on, the dense one below.
HYBRID_MIN_BATCH = 256


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


def product(x, plan, storage, codes, values, input_dim, units):
    """`x @ kernel` for the stored kernel `[input_dim, units]`, by `plan`.

    Args:
        x: A tensor `[n, input_dim]` of the values' dtype.
        plan: What `batch_plan` returns.
        storage, codes, values: The stored kernel (see
            `keras_switch.sparse.codec.encode_kernel`).
        input_dim, units: The kernel's shape.

    Returns:
        A tensor `[n, units]`.
    """
    if np.count_nonzero(values) == 0:
        return tf.zeros(tf.stack([tf.shape(x)[0], units]), x.dtype)
    names = [name for _, name in plan]
    entries = None
    if storage != "dense" or set(names) != {"dense"}:
        entries = codec.coordinates(storage, codes, values, input_dim)  # shared

    def dense_kernel():
        return codec.kernel_tensor(storage, codes, values, input_dim, units, entries)

    products = {
        name: _product_fn(name, x, entries, dense_kernel, input_dim, units)
        for name in names
    }
    rows = tf.shape(x)[0]

    def tier(i):
        """The product of plan entry `i` and above, by batch size."""
        if i == len(plan) - 1:
            return products[plan[i][1]]
        return lambda: tf.cond(rows >= plan[i + 1][0], tier(i + 1), products[plan[i][1]])

    return tier(0)()


def _product_fn(name, x, entries, dense_kernel, input_dim, units):
    """A callable computing `x @ kernel` with product `name`, from `entries`
    (`codec.coordinates`; `None` for a dense product of a kernel stored
    dense) or `dense_kernel()`. Operands grappler can fold are built here,
    outside any `tf.cond` branch; the CSR matrix (a variant, never folded)
    is built in its call, so that it costs nothing when another branch
    runs."""
    if name == "dense":
        kernel = dense_kernel()
        return lambda: tf.matmul(x, kernel)
    outputs, inputs, values = entries
    if name == "sparse_matmul":
        # Input-major order: faster at small batches than the stored
        # output-major one (BENCHMARKS.md, "Sparse inference").
        kernel = tf.sparse.reorder(
            tf.SparseTensor(tf.stack([inputs, outputs], axis=1), values, [input_dim, units])
        )
        return lambda: tf.sparse.sparse_dense_matmul(x, kernel)
    if name == "gather":

        def gather():
            # One row of x^T per stored entry, scaled, summed per output.
            terms = tf.gather(tf.transpose(x), inputs) * values[:, None]
            sums = tf.math.segment_sum(terms, outputs)  # up to the last output used
            sums = tf.pad(sums, [[0, units - tf.shape(sums)[0]], [0, 0]])
            return tf.transpose(sums)

        return gather

    def csr():
        kernel_t = tf.raw_ops.SparseTensorToCSRSparseMatrix(
            indices=tf.stack([outputs, inputs], axis=1),
            values=values,
            dense_shape=tf.constant([units, input_dim], tf.int64),
        )
        return tf.transpose(tf.raw_ops.SparseMatrixMatMul(a=kernel_t, b=x, adjoint_b=True))

    return csr
