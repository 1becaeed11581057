"""Where the switch thresholds go: the numerics the sparsity controls share.

A control (`keras_switch.sparsity`, `keras_switch.budget`) decides how many
connections each switcher's layers keep; these functions turn such counts
into thresholds on the switcher's scores:

* `threshold_keeping(scores, keep)`: a threshold with the `keep` highest
  scores above it (bisection on the count);
* `keep_in_layer(layer, logits, keep)`: moves one layer's `switch_offset`
  so that its `keep` highest-scoring connections are on;
* `magnitude_split(layers, logits, keep)`: global magnitude pruning's split
  of `keep` connections over layers;
* `erk_keep_counts(shapes, keep)`: the Erdős–Rényi-Kernel split;
* `keep_count(density, total)`: the number of connections a density keeps.

All compute with `keras.ops`, inside the traced switch step.
"""

import math

from keras import ops

# Halvings of the score range when placing a threshold: the 24 bits of a
# float32 mantissa, so past float32 resolution of the scores' range.
_BISECTION_STEPS = 24


def resolve_allocation(allocation, layers, budget=False):
    """`allocation` for `layers`, with `"auto"` read as the split chosen by
    measurement (BENCHMARKS.md): for a target, `"magnitude"` (global
    magnitude pruning's) when a kernel is a convolution's (rank above 2),
    else `"erk"`; for an accuracy budget (`budget=True`), `"magnitude"`.
    The magnitude split needs a switcher with a magnitude prior; without
    one `"auto"` is `"erk"`. Other values come back as they are."""
    if allocation != "auto":
        return allocation
    convolution = any(len(layer.kernel.shape) > 2 for layer in layers)
    magnitude = (budget or convolution) and layers[0].switcher.magnitude_prior
    return "magnitude" if magnitude else "erk"


def magnitude_split(layers, logits, keep):
    """Global magnitude pruning's split of `keep` connections over `layers`
    (one threshold over the switcher's magnitude priors), each layer keeping
    its share by its own scores; returns the logits after the move.

    Raises:
        ValueError: if the layers' switcher has no magnitude prior.
    """
    switcher = layers[0].switcher
    if not switcher.magnitude_prior:
        raise ValueError(
            "allocation='magnitude' needs a switcher with a magnitude prior. "
            f"Received: magnitude_prior={switcher.magnitude_prior} "
            f"(switcher '{switcher.name}')"
        )
    priors = [switcher.prior(layer.kernel) for layer in layers]
    cut = threshold_keeping(flat(priors), keep)
    return [keep_in_layer(layer, l, ops.sum(ops.cast(prior > cut, "int32")))
            for layer, l, prior in zip(layers, logits, priors)]


def keep_in_layer(layer, logits, keep):
    """Moves `layer.switch_offset` so that its `keep` highest-scoring
    connections are on; returns the logits after the move."""
    old = ops.copy(layer.switch_offset)  # read before the assign
    new = threshold_keeping(ops.reshape(logits, (-1,)) + old, keep)
    layer.switch_offset.assign(new)
    return logits + (old - new)


def erk_keep_counts(shapes, keep):
    """Connections each kernel keeps under Erdős–Rényi-Kernel allocation
    (Evci et al. 2020, RigL): `eps * sum(shape)` for one `eps` over all
    kernels, a kernel that would get more than all of its entries keeping
    all of them (and `eps` found again for the rest), the counts summing to
    `keep` up to rounding. Against global magnitude pruning it gives a large
    first layer more of a tiny budget (BENCHMARKS.md, "Accuracy vs FC sparsity").

    Returns int32 tensors, one per shape."""
    sizes = [float(math.prod(shape)) for shape in shapes]
    weights = [float(sum(shape)) for shape in shapes]
    keep = ops.cast(keep, "float32")

    def share(dense):  # eps once the `dense` kernels keep all their entries
        fixed = sum(ops.where(d, size, 0.0) for d, size in zip(dense, sizes))
        free = sum(ops.where(d, 0.0, w) for d, w in zip(dense, weights))
        return (keep - fixed) / ops.maximum(free, 1.0)

    dense = [ops.zeros((), "bool") for _ in shapes]
    for _ in shapes:  # each pass can only add dense kernels
        eps = share(dense)
        dense = [ops.logical_or(d, eps * w >= size)
                 for d, w, size in zip(dense, weights, sizes)]
    eps = share(dense)
    return [ops.cast(ops.round(ops.where(d, size, ops.minimum(eps * w, size))), "int32")
            for d, w, size in zip(dense, weights, sizes)]


def keep_count(density, total):
    """round(density * total), clipped to [1, total], as an int32 tensor."""
    keep = ops.cast(ops.round(density * total), "int32")
    return ops.clip(keep, 1, total)


def kernel_entries(layers):
    """The number of kernel entries (connections) over `layers`."""
    return sum(math.prod(layer.kernel.shape) for layer in layers)


def threshold_keeping(scores, keep):
    """A threshold with the `keep` highest of the 1-D `scores` above it (more
    only on exact ties; none when `keep` is 0), midway between the lowest
    score above it and the highest below.

    Found by bisection on the count above it (24 halvings of the score range,
    each a comparison and a sum): much cheaper than sorting the 266k scores
    of LeNet-300-100, which dominated the switch step (BENCHMARKS.md,
    "Cost").
    """
    # Invariant: count(scores > low) >= keep > count(scores > high).
    low = ops.min(scores) - 1.0
    high = ops.max(scores)
    keep = ops.cast(keep, "int32")
    for _ in range(_BISECTION_STEPS):
        middle = 0.5 * (low + high)
        enough = ops.sum(ops.cast(scores > middle, "int32")) >= keep
        low = ops.where(enough, middle, low)
        high = ops.where(enough, high, middle)
    # The same entries are above the midpoint of the scores on either side
    # of `low`, which leaves room for rounding: `low` may lie within a few
    # ulps of a kept score, which the same logits computed in another order
    # (a layer's hard mask) can then round to the other side.
    above = scores > low
    gap_middle = 0.5 * (ops.min(ops.where(above, scores, float("inf")))
                        + ops.max(ops.where(above, float("-inf"), scores)))
    low = ops.where(ops.isfinite(gap_middle), gap_middle, low)
    return ops.where(keep > 0, low, high)


def flat(tensors):
    """The tensors' entries in one 1-D tensor."""
    return ops.concatenate([ops.reshape(t, (-1,)) for t in tensors])
