"""The PyTorch side of the training step (see `keras_switch.backend`).

Keras' torch trainer runs its `train_step` eagerly (`jit_compile` is off
by default on torch), so the step here is the alternation in
`keras_switch/model.py` called as it is, once per batch. Gradients are
`torch.autograd.grad` of the loss with respect to the tensors of one
variable set: unlike `loss.backward()`, which Keras' own step uses, it does
not accumulate into the `.grad` of the other set's parameters (the switch
phase's loss also depends on the kernels, through the switcher's inputs).
Optimizer updates run under `torch.no_grad()`, as Keras' step runs them.

Keras offers no distribution on torch (`keras.distribution` is JAX's), so
nothing is rescaled for replicas here.
"""

import torch

from keras_switch import _keras_internals
from keras_switch.backend._whole_batch import logs_for_strategy  # noqa: F401
from keras_switch.backend._whole_batch import scale_for_replicas  # noqa: F401
from keras_switch.backend._whole_batch import unscale_for_replicas  # noqa: F401


def gradients(loss_fn, variables):
    """Runs `loss_fn()` -> `(loss, aux)` with autograd recording; returns
    `(aux, the gradients of loss with respect to variables)`, `None` for a
    variable the loss does not depend on (as `tf.GradientTape` gives)."""
    variables = list(variables)
    with torch.enable_grad():
        loss, aux = loss_fn()
    tensors = [variable.value for variable in variables]
    if not loss.requires_grad:  # nothing it depends on is trainable
        return aux, [None] * len(tensors)
    return aux, list(torch.autograd.grad(loss, tensors, allow_unused=True))


def apply_gradients(optimizer, grads, variables):
    """`optimizer.apply(grads, variables)` outside autograd: the update
    writes the parameters in place, which autograd refuses on leaves that
    require gradients."""
    with torch.no_grad():
        optimizer.apply(grads, variables)


def step_function(model, step):
    """A function of fit()'s data iterator running `step(data)` on one
    batch, eagerly, as Keras' torch trainer runs its `train_step`."""

    built = []

    def function(iterator):
        data = next(iterator)
        if not built:  # as fit() does; a direct call of the train function may not have
            _keras_internals.build_for_step(model, data)
            built.append(True)
        with torch.no_grad():  # `gradients` records what it differentiates
            return step(data)

    return function


def train_function(model, function):
    """`function(iterator) -> logs` as Keras' torch fit() calls a train
    function: with the list of one step's batches."""

    def train(data):
        return function(iter(data))

    return train


def compiled(fn, model):
    """`fn` as it is, run without recording gradients (held-out checks
    only read the model)."""

    def call(x):
        with torch.no_grad():
            return fn(x)

    return call


def tracing():
    """Whether the caller runs inside a function `torch.compile` traces."""
    return torch.compiler.is_compiling()
