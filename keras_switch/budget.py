"""The held-out checks that drive an `AccuracyBudget` during `fit()`.

`SwitchingModel.fit()` adds `BudgetChecks` in front of the user's callbacks
when the model is compiled with an `AccuracyBudget`. It measures the
held-out accuracy of the network as it trains (each switched layer with the
mask it stores, the one the task steps use) after the steps the control
names (`AccuracyBudget.is_check`), hands it to the control's `update`, and
writes the new state into the model's state variable, which the next switch
step's `place_thresholds` reads and the checkpoints save. At each epoch's
end it adds to the epoch's logs (so Keras' TensorBoard callback writes
them), measuring again at the last epoch's end: `heldout_accuracy`, `budget_density`
(the density the controller asks for), `budget_reference` (the dense
reference) and `budget_best_accuracy` (the best smoothed held-out accuracy,
which the search is held to).

What the controller decides lives in `keras_switch.sparsity`; here is only
the measuring and the plumbing.
"""

import contextlib

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from keras_switch.layers import switched_layers
from keras_switch.sparsity import BUDGET_STATE

# Held-out examples per forward pass of a check.
_BATCH = 1024


def split_heldout(x, y, validation_split):
    """`(x, y)` arrays split as Keras' `validation_split` does (the last
    fraction is held out): `(train_x, train_y), (heldout_x, heldout_y)`."""
    count = len(keras.tree.flatten(x)[0])
    split_at = int(np.floor(count * (1.0 - validation_split)))
    if split_at in (0, count):
        raise ValueError(
            f"validation_split={validation_split} of {count} examples leaves "
            f"{count - split_at} held out and {split_at} to train on; the "
            "AccuracyBudget needs both.")
    head = keras.tree.map_structure(lambda a: a[:split_at], (x, y))
    tail = keras.tree.map_structure(lambda a: a[split_at:], (x, y))
    return head, tail


def heldout_arrays(validation_data):
    """`validation_data` (an `(x, y)` or `(x, y, sample_weight)` tuple of
    arrays, or a `tf.data.Dataset` of `(x, y)` batches) as numpy `(x, y)`."""
    if isinstance(validation_data, tf.data.Dataset):
        xs, ys = [], []
        for batch in validation_data:
            x, y, _ = keras.utils.unpack_x_y_sample_weight(batch)
            xs.append(keras.tree.map_structure(np.asarray, x))
            ys.append(np.asarray(y))
        if not xs:
            raise ValueError("The AccuracyBudget's validation_data is an empty dataset.")
        x = keras.tree.map_structure(lambda *parts: np.concatenate(parts), *xs)
        return x, np.concatenate(ys)
    if isinstance(validation_data, (tuple, list)) and len(validation_data) in (2, 3):
        x, y = validation_data[:2]
        return keras.tree.map_structure(np.asarray, x), np.asarray(y)
    raise TypeError(
        "AccuracyBudget takes its held-out data from fit(validation_data=...) "
        "as an (x, y) tuple of arrays or a tf.data.Dataset of (x, y) batches. "
        f"Received: validation_data={type(validation_data).__name__}")


class BudgetChecks(keras.callbacks.Callback):
    """Measures held-out accuracy for the model's `AccuracyBudget` and
    updates its state (see the module doc).

    Args:
        switching_model: The compiled `SwitchingModel`.
        heldout: `(x, y)` numpy arrays; `y` class indices (`[n]` or
            `[n, 1]`) or one-hot rows.
    """

    def __init__(self, switching_model, heldout):
        super().__init__()
        self._switching_model = switching_model
        x, y = heldout
        y = np.asarray(y)
        self._labels = np.argmax(y, axis=-1) if y.ndim == 2 and y.shape[-1] > 1 else y.reshape(-1)
        self._x = x
        self._count = len(self._labels)
        if not self._count:
            raise ValueError("The AccuracyBudget's held-out data has no examples.")
        self._forward = None

    def accuracy(self):
        """Held-out accuracy of the network with its stored masks."""
        model = self._switching_model
        if self._forward is None:
            layers = switched_layers(model)

            @tf.function(reduce_retracing=True)
            def forward(x):
                with contextlib.ExitStack() as stack:
                    for layer in layers:
                        stack.enter_context(layer.phase_mask(ops.convert_to_tensor(layer.mask)))
                    return model(x, training=False)

            self._forward = forward
        correct = 0
        for start in range(0, self._count, _BATCH):
            x = keras.tree.map_structure(lambda a: a[start:start + _BATCH], self._x)
            scores = np.asarray(self._forward(x))
            if scores.ndim != 2 or scores.shape[-1] < 2:
                raise ValueError(
                    "AccuracyBudget measures accuracy as the argmax of the "
                    "model's class scores, `[batch, classes]` with classes >= 2. "
                    f"Received: outputs of shape {scores.shape}")
            correct += int(np.sum(np.argmax(scores, axis=-1)
                                  == self._labels[start:start + _BATCH]))
        return correct / self._count

    def _state(self):
        return [float(v) for v in ops.convert_to_numpy(self._switching_model.budget_state)]

    def on_train_begin(self, logs=None):
        # A hook of the model's train function rather than on_train_batch_end,
        # which turns off Keras' asynchronous batch callbacks and copies every
        # step's logs to the host (not measured to matter on the LeNets,
        # BENCHMARKS.md "Cost"). SwitchingModel.fit() removes the hook.
        self._switching_model._step_hook = self._after_step

    def _after_step(self, step):
        model = self._switching_model
        if model.sparsity.is_check(step, model.schedule):
            state = model.sparsity.update(self._state(), self.accuracy(), step, model.schedule)
            model.budget_state.assign(np.asarray(state, np.float32))

    def on_epoch_end(self, epoch, logs=None):
        state = dict(zip(BUDGET_STATE, self._state()))
        # Measured again at the last epoch's end (the outcome) and before the
        # first check; otherwise the last check's accuracy stands (each pass
        # over the held-out data costs time: BENCHMARKS.md, "Cost").
        if state["accuracy"] < 0 or epoch + 1 >= self.params.get("epochs", epoch + 1):
            state["accuracy"] = self.accuracy()
            self._switching_model.budget_state.assign(
                np.asarray([state[name] for name in BUDGET_STATE], np.float32))
        if logs is not None:
            logs.update(heldout_accuracy=state["accuracy"], budget_density=state["density"],
                        budget_reference=state["reference"],
                        budget_best_accuracy=state["best_accuracy"])
