"""What a training step under `tf.distribute` must do that Keras' own step
does for its loss: scale per-replica terms, and shape the logs so that
every strategy can reduce them.

Keras scales the task loss by the global batch, so that the sum of the
replicas' gradients is the gradient of the mean; a term that every replica
computes in full (the sparsity penalty) must instead be divided by the
number of replicas, and a loss shown in the logs multiplied back.
"""

import tensorflow as tf
from keras import ops


def logs_for_strategy(logs):
    """Under MultiWorkerMirroredStrategy, Keras 3 reduces each replica's logs
    with `strategy.reduce("MEAN", value, axis=0)`, which fails on scalars
    ("Invalid reduction dimension 0 for input with 0 dimensions", TF issue
    72388). Shape (1,) values reduce to the scalar mean over replicas, which
    is what the logs hold elsewhere."""
    strategy = tf.distribute.get_strategy()
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return logs
    return {
        key: ops.reshape(value, (1,)) if len(ops.shape(value)) == 0 else value
        for key, value in logs.items()
    }


def num_replicas():
    return tf.distribute.get_strategy().num_replicas_in_sync


def scale_for_replicas(value):
    """`value`, computed in full on every replica, divided by their number
    (gradients are summed over replicas)."""
    replicas = num_replicas()
    return value / replicas if replicas > 1 else value


def unscale_for_replicas(value):
    """The inverse of `scale_for_replicas`, for a loss shown in the logs."""
    replicas = num_replicas()
    return value * replicas if replicas > 1 else value
