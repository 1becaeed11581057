"""Checkpoints that survive a kill at any instant, the NaN/Inf stop, and the
fault-injection hook the reliability tests kill the trainer with."""

import glob
import json
import math
import os
import shutil
import signal
import time

import keras
import numpy as np
import tensorflow as tf

from trainers.atomic_json import write_json


class Checkpoints:
    """Checkpoints that survive a kill at any instant.

    `save()` writes the weights (model, switcher, both optimizers, step
    counter) to a new file `epoch-NNNN.weights.h5`, flushed to disk, then
    replaces `state.json` atomically; `state.json` names the weights file
    that goes with it. So the latest complete checkpoint is always the one
    `state.json` names: a kill while the weights are written leaves a stray
    file that nothing refers to (removed by the next save), never a torn
    checkpoint.
    """

    def __init__(self, directory, chief=True, scratch=None):
        if not chief and scratch is None:
            raise ValueError("A non-chief worker's Checkpoints need `scratch`.")
        self.directory = directory
        self.state = os.path.join(directory, "state.json")
        self.chief = chief
        self.scratch = scratch  # where a non-chief worker's saves go
        self._clock = (time.time(), 0.0)

    def read_state(self):
        """state.json as a dict with "epochs_done" (int), "train_seconds"
        (float) and "weights" (the file name), or None when there is none.

        Raises:
            ValueError: if state.json is not one this trainer wrote.
        """
        if not os.path.exists(self.state):
            return None
        try:
            with open(self.state) as f:
                state = json.load(f)
            return {
                "epochs_done": int(state["epochs_done"]),
                "train_seconds": float(state["train_seconds"]),
                # Checkpoints of earlier versions: one fixed weights file.
                "weights": state.get("weights", "latest.weights.h5"),
            }
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise ValueError(
                f"{self.state} is not a checkpoint state written by this "
                f"trainer ({error}). Move it away to start afresh."
            ) from error

    def restore(self, model):
        """Loads the checkpoint into `model`: (epochs done, seconds spent)."""
        state = self.read_state()
        if state is None:
            return 0, 0.0
        model.build_optimizers()
        model.load_weights(os.path.join(self.directory, state["weights"]))
        return state["epochs_done"], state["train_seconds"]

    def start_clock(self, earlier_seconds):
        self._clock = (time.time(), earlier_seconds)

    def elapsed(self):
        started, earlier = self._clock
        return earlier + time.time() - started

    def save(self, model, epochs_done):
        """Writes the checkpoint of `epochs_done` epochs. Every worker of a
        multi-worker run calls it (saving may need all of them); only the
        chief's lands in `directory`, the others' go to `scratch`, removed
        afterwards."""
        directory = self.directory if self.chief else self.scratch
        try:
            os.makedirs(directory, exist_ok=True)
            name = f"epoch-{epochs_done:04d}.weights.h5"
            path = os.path.join(directory, name)
            fault_point("checkpoint_start")
            model.save_weights(path)
            _fsync(path)
            fault_point("checkpoint_weights_written")
            write_json(
                os.path.join(directory, "state.json"),
                {"epochs_done": epochs_done, "train_seconds": self.elapsed(),
                 "weights": name},
            )
            fault_point("checkpoint_state_written")
            for stale in glob.glob(os.path.join(directory, "*.weights.h5")):
                if os.path.basename(stale) != name:
                    os.remove(stale)
        finally:
            if not self.chief:
                shutil.rmtree(directory, ignore_errors=True)

    def callback(self, every_epochs):
        """A Keras callback that saves every `every_epochs` epochs."""
        checkpoints = self

        class _Save(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                if (epoch + 1) % every_epochs == 0:
                    checkpoints.save(self.model, epoch + 1)

        return _Save()


def _fsync(path):
    with open(path, "rb") as f:
        os.fsync(f.fileno())


class TrainingDiverged(RuntimeError):
    """The training loss or a weight became NaN or infinite."""


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Raises `TrainingDiverged` naming the step at the first batch after
    which a loss (task or switch) or a weight is NaN or infinite, before any
    later checkpoint is written: the last good checkpoint stays the latest.

    The weights are checked too because a NaN can poison them while the
    logged loss stays finite (a NaN batch gives NaN gradients). The check is
    one fused reduction per step.
    """

    def __init__(self, steps_per_epoch, checkpoints):
        super().__init__()
        self.steps_per_epoch = steps_per_epoch
        self.checkpoints = checkpoints
        self.epoch = 0
        self._all_finite = None

    def on_train_begin(self, logs=None):
        variables = list(self.model.trainable_variables)
        if keras.backend.backend() != "tensorflow":  # one small reduction per weight
            self._all_finite = lambda: all(
                bool(keras.ops.all(keras.ops.isfinite(v))) for v in variables)
            return

        @tf.function
        def all_finite():
            return tf.reduce_all(
                [tf.reduce_all(tf.math.is_finite(v)) for v in variables]
            )

        self._all_finite = all_finite

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        problem = None
        for key in ("loss", "switch_loss"):
            value = (logs or {}).get(key)
            if value is not None and not math.isfinite(float(value)):
                problem = f"Training {key.replace('_', ' ')} is {float(value)}"
                break
        if problem is None and not bool(self._all_finite()):
            bad = next(v.path for v in self.model.trainable_variables
                       if not np.all(np.isfinite(keras.ops.convert_to_numpy(v))))
            problem = f"Weights became NaN or infinite ({bad})"
        if problem is None:
            return
        step = self.epoch * self.steps_per_epoch + batch + 1
        kept = (
            f"the last good checkpoint in {self.checkpoints.directory} is kept"
            if os.path.exists(self.checkpoints.state)
            else "no checkpoint had been written yet"
        )
        raise TrainingDiverged(
            f"{problem} at step {step} (epoch {self.epoch + 1}, batch "
            f"{batch + 1}); stopped, {kept}. Lower the learning rate or check "
            "the data."
        )


# Fault injection for the reliability tests: KERAS_SWITCH_FAULT="NAME:N"
# kills the process (SIGKILL) the N-th time it passes the point NAME (see
# `Checkpoints.save`), or, for "nan_batch:N" / "inf_batch:N", poisons the N-th
# training batch (1-based global step) so that a NaN / an Inf arises in that
# step (see `inject_nan`). Unset in normal use.
_FAULT_COUNTS = {}


def _fault():
    spec = os.environ.get("KERAS_SWITCH_FAULT")
    if not spec:
        return None, 0
    name, _, count = spec.partition(":")
    return name, int(count or 1)


def fault_point(name):
    """Kills this process here if KERAS_SWITCH_FAULT asks for it."""
    wanted, count = _fault()
    if wanted != name:
        return
    _FAULT_COUNTS[name] = _FAULT_COUNTS.get(name, 0) + 1
    if _FAULT_COUNTS[name] == count:
        os.kill(os.getpid(), signal.SIGKILL)


def inject_nan(dataset, initial_step):
    """`dataset` (of (images, labels) batches, starting after global step
    `initial_step`) poisoned as KERAS_SWITCH_FAULT asks; `dataset` itself
    when the hook is unset. A test-only hook:

    * `nan_batch:N`: the images of global step N's batch become NaNs (NaN
      gradients: the weights turn NaN in that step).
    * `inf_batch:N`: global step N's batch gets wrong labels (`(y + 1) % 10`;
      every dataset here has at least 10 classes) and sample weights of
      float32's largest value (every other batch weighs 1, which changes
      nothing): its weighted loss overflows to +Inf (positive losses times a
      finite weight: an Inf, not a NaN), so the logged loss is `inf` at step N.
      (The wrong labels make the batch's losses large: a well-trained model's
      small losses times the weight could stay finite.)
    """
    wanted, step = _fault()
    if wanted not in ("nan_batch", "inf_batch"):
        return dataset
    index = step - 1 - initial_step

    def poison_images(i, batch):
        images, labels = batch
        bad = tf.fill(tf.shape(images), float("nan"))
        return tf.where(tf.equal(i, index), bad, images), labels

    def overweight(i, batch):
        images, labels = batch
        hit = tf.equal(i, index)
        labels = tf.where(hit, (labels + 1) % 10, labels)
        weight = tf.where(hit, np.finfo(np.float32).max, 1.0)
        return images, labels, tf.fill(tf.shape(labels)[:1], weight)

    poison = poison_images if wanted == "nan_batch" else overweight
    return dataset.enumerate().map(poison)
