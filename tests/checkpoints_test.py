"""trainers/checkpoints.py in process: save and restore, what a kill leaves,
the NaN/Inf stop and the NaN-batch hook (fault_tolerance_test.py kills the
binary at each stage of a checkpoint write)."""

import json
import os
from unittest import mock

import numpy as np
import tensorflow as tf

from tests.test_case import TestCase
from tests.test_case import compile_for_classes
from tests.test_case import mlp
from tests.test_case import snapshot
from trainers.checkpoints import Checkpoints
from trainers.checkpoints import StopOnNonFiniteLoss
from trainers.checkpoints import TrainingDiverged
from trainers.checkpoints import inject_nan


def _model():
    return compile_for_classes(mlp(units=(8,), input_dim=4), target_sparsity=0.5)


def _data(n=32):
    rng = np.random.RandomState(0)
    return rng.normal(size=(n, 4)).astype("float32"), rng.randint(0, 10, size=n)


class CheckpointsTest(TestCase):
    def test_save_then_restore_into_a_fresh_model(self):
        directory = os.path.join(self.create_tempdir().full_path, "checkpoints")
        model = _model()
        x, y = _data()
        model.fit(x, y, batch_size=8, epochs=1, verbose=0)
        checkpoints = Checkpoints(directory)
        checkpoints.save(model, 1)
        model.fit(x, y, batch_size=8, epochs=1, verbose=0)
        checkpoints.save(model, 2)
        # state.json names the newest weights file; the older one is gone.
        self.assertEqual(sorted(os.listdir(directory)), ["epoch-0002.weights.h5", "state.json"])
        state = checkpoints.read_state()
        self.assertEqual((state["epochs_done"], state["weights"]), (2, "epoch-0002.weights.h5"))
        fresh = _model()
        epochs, seconds = Checkpoints(directory).restore(fresh)
        self.assertEqual((epochs, seconds), (2, state["train_seconds"]))
        for have, want in zip(fresh.weights, snapshot(model.weights)):
            self.assertAllEqual(have.numpy(), want)
        for optimizer in ("task_optimizer", "switch_optimizer"):
            self.assertEqual(int(getattr(fresh, optimizer).iterations.numpy()),
                             int(getattr(model, optimizer).iterations.numpy()))

    def test_no_checkpoint_and_a_stray_weights_file(self):
        directory = self.create_tempdir().full_path
        model = _model()
        checkpoints = Checkpoints(directory)
        self.assertIsNone(checkpoints.read_state())
        self.assertEqual(checkpoints.restore(model), (0, 0.0))
        # A kill while the weights were written leaves a file state.json does
        # not name: not a checkpoint, and removed by the next save.
        with open(os.path.join(directory, "epoch-0001.weights.h5"), "wb") as f:
            f.write(b"torn")
        self.assertEqual(checkpoints.restore(model), (0, 0.0))
        checkpoints.save(model, 2)
        self.assertEqual(sorted(os.listdir(directory)), ["epoch-0002.weights.h5", "state.json"])

    def test_a_state_json_of_someone_else_is_refused(self):
        directory = self.create_tempdir().full_path
        with open(os.path.join(directory, "state.json"), "w") as f:
            json.dump({"epochs": 3}, f)
        with self.assertRaisesRegex(ValueError, r"state\.json is not a checkpoint state "
                                                r"written by this trainer .* Move it away"):
            Checkpoints(directory).restore(_model())

    def test_a_non_chief_worker_writes_to_scratch_and_removes_it(self):
        directory = self.create_tempdir().full_path
        scratch = os.path.join(self.create_tempdir().full_path, "checkpoints")
        with self.assertRaisesRegex(ValueError, "need `scratch`"):
            Checkpoints(directory, chief=False)
        Checkpoints(directory, chief=False, scratch=scratch).save(_model(), 1)
        self.assertEqual(os.listdir(directory), [])
        self.assertFalse(os.path.exists(scratch))


class StopOnNonFiniteLossTest(TestCase):
    def test_nan_batch_stops_at_its_step(self):
        directory = self.create_tempdir().full_path
        model = _model()
        x, y = _data(64)
        dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
        self.assertIs(inject_nan(dataset, 0), dataset)  # the hook is unset
        with mock.patch.dict(os.environ, {"KERAS_SWITCH_FAULT": "nan_batch:11"}):
            # Epoch 2 (steps 9-16) alone: its third batch is step 11.
            poisoned = inject_nan(dataset, 8)
        checkpoints = Checkpoints(directory)
        with self.assertRaisesRegex(
            TrainingDiverged,
            r"^(Training loss is nan|Weights became NaN or infinite \(.+\)) at step 11 "
            r"\(epoch 2, batch 3\); stopped, no checkpoint had been written yet\. Lower "
            r"the learning rate or check the data\.$",
        ):
            model.fit(poisoned, epochs=2, initial_epoch=1, shuffle=False, verbose=0,
                      callbacks=[StopOnNonFiniteLoss(8, checkpoints)])
        self.assertEqual(os.listdir(directory), [])


if __name__ == "__main__":
    tf.test.main()
