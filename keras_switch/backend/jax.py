"""The JAX side of the training step (see `keras_switch.backend`).

JAX functions are pure, so the step is run the way Keras' JAX trainer runs
its own: every variable the step reads or writes (the model's trainable and
non-trainable variables, both optimizers' and the metrics') goes into one
`jax.jit`-compiled function as an array and comes out updated. Inside, the
alternation in `keras_switch/model.py` runs unchanged in a
`keras.StatelessScope` that maps each variable to its array, so that its
reads see the traced values and its `assign`s become outputs; gradients are
`jax.value_and_grad` over the arrays of one variable set, in a scope nested
inside the step's.

Under `keras.distribution.DataParallel` the step sees the global batch
(sharded by Keras' JAX data iterator), so its loss is already the mean over
every device's examples: nothing is rescaled for replicas here.
"""

import jax
import keras

from keras_switch import _keras_internals
from keras_switch.backend._whole_batch import logs_for_strategy  # noqa: F401
from keras_switch.backend._whole_batch import scale_for_replicas  # noqa: F401
from keras_switch.backend._whole_batch import unscale_for_replicas  # noqa: F401


def _current_scope():
    return _keras_internals.stateless_scope()


class _RecordingScope(keras.StatelessScope):
    """A `keras.StatelessScope` that also keeps the variables assigned in it
    (the base keeps their ids only)."""

    def __init__(self, state_mapping=None):
        super().__init__(state_mapping=state_mapping)
        self.assigned = {}

    def add_update(self, update):
        super().add_update(update)
        self.assigned[id(update[0])] = update[0]


def gradients(loss_fn, variables):
    """`jax.value_and_grad` of `loss_fn()` -> `(loss, aux)` over the values
    of `variables`; returns `(aux, gradients)`. What `loss_fn` assigns
    (metrics, batch statistics) is carried out of the differentiated
    function and assigned in the enclosing scope, or to the variables
    outside any scope."""
    variables = list(variables)
    outer = _current_scope()
    assigned = {}

    def pure(values):
        scope = _RecordingScope(list(zip(variables, values)))
        if outer is not None:  # a nested scope does not read through to its parent
            scope.state_mapping = {**outer.state_mapping, **scope.state_mapping}
        with scope:
            loss, aux = loss_fn()
        assigned.update(scope.assigned)
        return loss, (aux, {key: scope.state_mapping[key] for key in scope.assigned})

    values = [variable.value for variable in variables]
    (_, (aux, updates)), grads = jax.value_and_grad(pure, has_aux=True)(values)
    for key, value in updates.items():
        assigned[key].assign(value)  # into the enclosing scope, if any
    return aux, grads


def state_variables(model):
    """Every variable a training step of `model` may read or write, each
    once: the model's own (trainable first), its metrics' and both of its
    optimizers'."""
    groups = [model.trainable_variables, model.non_trainable_variables,
              model.metrics_variables]
    for optimizer in (model.task_optimizer, model.switch_optimizer):
        if optimizer is not None:
            groups.append(optimizer.variables)
    seen, ordered = set(), []
    for group in groups:
        for variable in group:
            if id(variable) not in seen:
                seen.add(id(variable))
                ordered.append(variable)
    return ordered


def _pure(fn, variables):
    """`fn(*args)` as a function of `(values, *args)` -> `(result, new
    values)`, with `variables` mapped to `values` in a stateless scope.

    Raises:
        RuntimeError: when `fn` assigns a variable outside `variables` (its
            new value would be lost).
    """
    def pure(values, *args):
        with keras.StatelessScope(state_mapping=list(zip(variables, values))) as scope:
            result = fn(*args)
        known = {id(variable) for variable in variables}
        lost = [key for key in scope.state_mapping if key not in known]
        if lost:
            raise RuntimeError(
                f"The training step assigned {len(lost)} variable(s) that are "
                "not among the model's, its metrics' or its optimizers' "
                "variables (created inside the step, or held outside the "
                "model); keras_switch cannot carry them between JAX steps.")
        new = [scope.get_current_value(variable) for variable in variables]
        return result, [value if value is not None else old for value, old in zip(new, values)]

    return pure


def _assign(variables, values):
    for variable, value in zip(variables, values):
        variable.assign(value)



def apply_gradients(optimizer, grads, variables):
    """`optimizer.apply(grads, variables)`."""
    optimizer.apply(grads, variables)
def step_function(model, step):
    """A function of fit()'s data iterator running `step(data)` (which
    returns the logs) on one batch, as one `jax.jit`-compiled pure function
    of every variable of the step (`state_variables`, read at its first
    call: a compiled model's variables are fixed)."""
    cache = {}

    def function(iterator):
        data = next(iterator)
        if model.run_eagerly:
            return step(data)
        if not cache:
            # Metrics and losses first built inside the trace would create
            # variables there; fit() and train_on_batch() build them first,
            # a direct call of the train function may not have.
            _keras_internals.build_for_step(model, data)
            cache["variables"] = state_variables(model)
            cache["jitted"] = jax.jit(_pure(step, cache["variables"]), donate_argnums=0)
        variables = cache["variables"]
        logs, values = cache["jitted"]([_keras_internals.raw_value(v) for v in variables], data)
        for variable, value in zip(variables, values):  # the inputs' buffers are donated
            _keras_internals.set_raw_value(variable, value)
        return logs

    return function


def train_function(model, function):
    """`function(iterator) -> logs` as Keras' JAX fit() calls a train
    function: `(state, iterator) -> (logs, state)`, the state being the
    values of the model's trainable, non-trainable, task optimizer and
    metrics variables. Keras' JAX fit() detaches them from the variables for
    the epoch; the switching step reads its phase, and its step hooks the
    weights, from the variables between steps: the state goes back into them
    first and is read from them after."""
    groups, returned = [], [None]

    def train(state, iterator):
        if not groups:
            groups.extend((model.trainable_variables, model.non_trainable_variables,
                           model.optimizer.variables, model.metrics_variables))
        if state is not returned[0]:  # not what the last step left in the variables
            for variables, values in zip(groups, state):
                _assign(variables, values)
        logs = function(iterator)
        returned[0] = tuple([_keras_internals.raw_value(v) for v in variables]
                            for variables in groups)
        return logs, returned[0]

    return train


def compiled(fn, model):
    """`fn(x)`, which reads `model`'s variables, as a `jax.jit`-compiled
    function that reads their current values at each call."""
    variables = [*model.trainable_variables, *model.non_trainable_variables]
    jitted = jax.jit(_pure(fn, variables))

    def call(x):
        return jitted([v.value for v in variables], x)[0]

    return call


def tracing():
    """Whether the caller runs inside the compiled step (its stateless
    scope is active)."""
    return _current_scope() is not None
