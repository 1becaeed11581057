"""trainers/distributed.py: the chief, the worker's scratch directory and
the lost-worker message, on stand-in cluster resolvers (multi_worker_test.py
runs real workers)."""

import json
import os
import tempfile
import types
from unittest import mock

import tensorflow as tf

from tests.test_case import TestCase
from trainers import distributed
from trainers.checkpoints import Checkpoints


def _strategy(cluster, task_type, task_id):
    """A stand-in for MultiWorkerMirroredStrategy: only its cluster_resolver."""
    spec = types.SimpleNamespace(as_dict=lambda: cluster)
    return types.SimpleNamespace(cluster_resolver=types.SimpleNamespace(
        task_type=task_type, task_id=task_id, cluster_spec=lambda: spec))


class ChiefTest(TestCase):
    def test_single_process_is_chief(self):
        self.assertTrue(distributed.is_chief(tf.distribute.get_strategy()))
        self.assertTrue(distributed.is_chief(_strategy({}, "worker", 3)))

    def test_worker_zero_unless_the_cluster_names_a_chief(self):
        workers = {"worker": ["a:1", "b:1"]}
        self.assertTrue(distributed.is_chief(_strategy(workers, "worker", 0)))
        self.assertFalse(distributed.is_chief(_strategy(workers, "worker", 1)))
        with_chief = {"chief": ["c:1"], **workers}
        self.assertTrue(distributed.is_chief(_strategy(with_chief, "chief", 0)))
        self.assertFalse(distributed.is_chief(_strategy(with_chief, "worker", 0)))

    def test_output_directory(self):
        workdir = self.create_tempdir().full_path
        workers = {"worker": ["a:1", "b:1"]}
        with distributed.output_directory(_strategy(workers, "worker", 0), workdir) as out:
            self.assertEqual(out, workdir)
        tmp = self.create_tempdir().full_path
        with mock.patch.object(tempfile, "tempdir", tmp):
            worker = _strategy(workers, "worker", 1)
            with distributed.output_directory(worker, workdir) as out:
                self.assertStartsWith(out, os.path.join(tmp, "ks-worker-worker1-"))
                self.assertEqual(os.listdir(out), [])
                with open(os.path.join(out, "left.txt"), "w") as f:
                    f.write("a killed worker's leftover")
            self.assertFalse(os.path.exists(out))
            os.makedirs(out)  # as a killed worker leaves it
            with open(os.path.join(out, "left.txt"), "w") as f:
                f.write("a killed worker's leftover")
            with distributed.output_directory(worker, workdir) as again:
                self.assertEqual(again, out)  # one name per (workdir, task)...
                self.assertEqual(os.listdir(again), [])  # ...emptied first
        self.assertEqual(os.listdir(workdir), [])

    def test_peer_errors_of_a_single_process_pass_through(self):
        checkpoints = Checkpoints(self.create_tempdir().full_path)
        with self.assertRaises(tf.errors.UnavailableError):
            with distributed.stop_on_lost_worker(tf.distribute.get_strategy(), checkpoints):
                raise tf.errors.UnavailableError(None, None, "no peer here")


class WorkerLostMessageTest(TestCase):
    """The one-line message for the errors TensorFlow raises on a survivor."""

    def _message(self, text, task_id=0, checkpoint_epoch=None):
        workdir = self.create_tempdir().full_path
        if checkpoint_epoch is not None:
            os.makedirs(os.path.join(workdir, "checkpoints"))
            with open(os.path.join(workdir, "checkpoints", "state.json"), "w") as f:
                json.dump({"epochs_done": checkpoint_epoch, "train_seconds": 1.0,
                           "weights": "epoch-0002.weights.h5"}, f)
        me = _strategy({"worker": ["a:1", "b:1"]}, "worker", task_id)
        error = tf.errors.UnavailableError(None, None, text)
        checkpoints = Checkpoints(os.path.join(workdir, "checkpoints"))
        with self.assertRaises(distributed.WorkerLost) as raised:
            with distributed.stop_on_lost_worker(me, checkpoints):
                raise error
        self.assertIs(raised.exception.__cause__, error)
        return str(raised.exception), workdir

    def test_grpc_connection_dropped(self):
        message, workdir = self._message(
            "Collective ops is aborted by: recvmsg:Connection reset by peer\n"
            "Additional GRPC error information from remote target "
            "/job:worker/replica:0/task:1 while calling /tensorflow.WorkerService/RecvBuf:\n"
            ':UNKNOWN:Error received from peer  {grpc_status:14, grpc_message:"recvmsg:'
            'Connection reset by peer"}', checkpoint_epoch=2)
        self.assertEqual(
            message,
            "lost contact with worker 1 of the multi-worker run (UnavailableError: "
            "recvmsg:Connection reset by peer); stopped, the last complete checkpoint in "
            f"{workdir}/checkpoints (epoch 2) is kept. Restart every worker with the "
            "same command and TF_CONFIG to resume.")

    def test_heartbeat_timeout_names_the_other_task(self):
        text = ("Collective ops is aborted by: Error reported from /job:worker/task:0: The "
                "following tasks are unhealthy (stopped sending heartbeats):\nThe tasks have "
                "crashed.")
        message, _ = self._message(text, task_id=1)
        self.assertStartsWith(
            message, "lost contact with worker 0 of the multi-worker run (UnavailableError: "
            "Error reported from /job:worker/task:0: The following tasks are unhealthy "
            "(stopped sending heartbeats)); stopped, no checkpoint had been written yet, "
            "a restart starts afresh.")
        # Only this task named: the peer is unknown.
        message, _ = self._message(text, task_id=0)
        self.assertStartsWith(message, "lost contact with another worker of the")


if __name__ == "__main__":
    tf.test.main()
