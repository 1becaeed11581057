"""The one place keras_switch touches Keras internals.

Keras exports no name for its `Functional` model class, and a `keras.Model`
subclass used functionally (`Sub(inputs, outputs)`) gets `Functional` injected
into its class hierarchy *for good*: afterwards `class Net(Sub)` with a plain
`__init__` fails with "Functional.__init__() missing ... 'inputs' and
'outputs'". `SwitchingModel` avoids that by building functional instances of
a dedicated subclass that inherits `Functional` directly, which needs the
class itself. Layers are also walked recursively, which Keras only offers as
`Layer._flatten_layers`, an optimizer's variable set is read to check it
was built over the right variables, the compiled loss tracker (which
Keras' own `train_step` updates) is updated by ours, and a fit() iterator's
dataset is read for its element spec (`symbolic_build`), a built model's
state lock is lifted to add the variables an `AccuracyBudget` compile needs
(`add_state_after_build`), and Keras' TensorFlow trainer builds the
compiled, distributed function around each phase's step
(`make_step_function`); the JAX step finds the active
`keras.StatelessScope` (`stateless_scope`) to nest its gradient's scope in
and builds metrics before its first trace (`build_for_step`); it moves
arrays in and out of variables at every step, which `raw_value` and
`set_raw_value` do without `assign`'s per-call checks. A layer that owns
sub-layers (MultiHeadAttention) has one swapped for its switched twin in
the same place of its tracked layers (`replace_sublayer`).

`tests/keras_internals_test.py` pins every assumption made here, so a Keras
release that moves them fails that test instead of failing users.
"""

from keras.src.backend.common.stateless_scope import get_stateless_scope
from keras.src.models.functional import Functional  # noqa: F401


def stateless_scope():
    """The innermost active `keras.StatelessScope`, or None (Keras exports
    the class, not the function that finds the active one)."""
    return get_stateless_scope()


def flatten_layers(layer):
    """`layer` and all its sub-layers, depth first in model order, each once."""
    seen, ordered = set(), []

    def visit(current):
        if id(current) in seen:
            return
        seen.add(id(current))
        ordered.append(current)
        for child in current._flatten_layers(include_self=False, recursive=False):
            visit(child)

    visit(layer)
    return ordered


def optimizer_variable_count(optimizer):
    """How many model variables `optimizer` was built over."""
    return len(optimizer._trainable_variables)


def loss_tracker(model):
    """The `keras.metrics.Mean` behind the "loss" entry of `model.metrics`."""
    return model._loss_tracker


def dataset_element_spec(epoch_iterator):
    """The `tf.data` element spec behind a Keras fit() `EpochIterator`, or
    None when its data is not a `tf.data.Dataset`."""
    adapter = getattr(epoch_iterator, "data_adapter", None)
    get_dataset = getattr(adapter, "get_tf_dataset", None)
    if get_dataset is None:
        return None
    dataset = get_dataset()
    return getattr(dataset, "element_spec", None)


def creation_strategy(model):
    """The tf.distribute strategy `model` was created under (Keras' TF
    trainer records it), or None outside any strategy scope."""
    return getattr(model, "_distribute_strategy", None)


def add_state_after_build(layer, name, value):
    """Sets attribute `name` of a built `layer` to `value` (a variable), which
    Keras then tracks (saved with the layer), past the lock `build()` puts
    on new state."""
    locked = layer._tracker.locked
    layer._tracker.unlock()
    try:
        setattr(layer, name, value)
    finally:
        if locked:
            layer._tracker.lock()


def replace_sublayer(owner, attribute, new):
    """Replaces the sub-layer `owner.<attribute>` with `new` where Keras
    tracks it: at the same position among `owner`'s layers (the order that
    walking, saving and stripping read), the old one no longer tracked."""
    from keras.src.utils.tracking import DotNotTrackScope

    old = getattr(owner, attribute)
    owner._tracker.replace_tracked_value("layers", old, new)
    locked = owner._tracker.locked
    owner._tracker.unlock()
    try:
        with DotNotTrackScope():
            setattr(owner, attribute, new)
    finally:
        if locked:
            owner._tracker.lock()


def raw_value(variable):
    """`variable`'s stored array as it is (`variable.value` also looks for a
    stateless scope and autocasts)."""
    return variable._value


def set_raw_value(variable, value):
    """Stores the array `value` (of `variable`'s shape and dtype, from a
    compiled step) in `variable`, placed as its layout asks, without
    `assign`'s conversions and checks."""
    variable._direct_assign(value)


def build_for_step(model, data):
    """Builds what Keras' fit() builds before its first step (the model, its
    compiled metrics and loss) from the shapes of the batch `data`, where
    not built yet."""
    model._symbolic_build(data_batch=data)


def make_step_function(model, step):
    """Keras' TensorFlow trainer's function of a fit() iterator around
    `step(data)` (what it builds around `train_step`: `tf.function`,
    `strategy.run`, the replicas' logs reduced)."""
    return model._make_function(step)


def symbolic_build(model, iterator, data_batch):
    """Builds `model` as Keras' TF trainer does before fit() (`_maybe_symbolic_build`),
    but from the shapes and dtypes of the fit() iterator's dataset where it
    has one. Keras pulls a batch for it and averages the replicas' copies
    with `strategy.reduce`, which fails in eager mode under
    MultiWorkerMirroredStrategy ("Attempt to convert a value
    (PerReplica...)"), and with `steps_per_epoch` that batch is lost to
    training (a resumed run would see other batches). Returns True when it
    built the model, False when Keras' own build should run."""
    if creation_strategy(model) is None:
        return True  # as Keras: built when the step function is traced
    if iterator is None or data_batch is not None:
        return False
    spec = dataset_element_spec(iterator)
    if spec is None:
        return False
    with model.distribute_strategy.scope():
        model._symbolic_build(data_batch=spec)
    return True
