"""The TensorFlow side of the training step (see `keras_switch.backend`):
`tf.GradientTape`, `tf.function`, and what a step under `tf.distribute`
must do that Keras' own step does for its loss.

Keras scales the task loss by the global batch, so that the sum of the
replicas' gradients is the gradient of the mean; a term that every replica
computes in full (the sparsity penalty) must instead be divided by the
number of replicas, and a loss shown in the logs multiplied back.
"""

import tensorflow as tf
from keras import ops

from keras_switch import _keras_internals


def gradients(loss_fn, variables):
    """Runs `loss_fn()` -> `(loss, aux)` under a `tf.GradientTape`; returns
    `(aux, the gradients of loss with respect to variables)`."""
    with tf.GradientTape() as tape:
        loss, aux = loss_fn()
    return aux, tape.gradient(loss, variables)



def apply_gradients(optimizer, grads, variables):
    """`optimizer.apply(grads, variables)`."""
    optimizer.apply(grads, variables)
def step_function(model, step):
    """A function of fit()'s iterator running `step(data)` on one batch:
    Keras' own compiled, distributed step function (`tf.function`,
    `strategy.run`, replica reduction) around `step`."""
    return _keras_internals.make_step_function(model, step)


def train_function(model, function):
    """`function(iterator) -> logs` as it is: Keras' TensorFlow fit() calls
    its train function with the iterator alone."""
    return function


def compiled(fn, model):
    """`fn` as a `tf.function` (retraced only for new input shapes), which
    reads `model`'s variables when it runs."""
    return tf.function(fn, reduce_retracing=True)


def tracing():
    """Whether the caller runs inside a `tf.function` being traced."""
    return not tf.executing_eagerly()


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
