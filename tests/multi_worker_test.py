"""`trainers.train --strategy=multi_worker`: two worker processes on
127.0.0.1 (free ports chosen here), against one process with the same global
batch."""

import glob
import json
import os
import re
import socket
import subprocess
import sys
import tempfile

import tensorflow as tf

from tests.fault_tolerance_test import write_learnable_split
from tests.test_case import TestCase
from tests.trainer_test import ROOT

EPOCHS = 2
GLOBAL_BATCH = 64
N_TRAIN = 256


def free_ports(n):
    """`n` distinct free TCP ports on 127.0.0.1."""
    sockets = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        sockets.append(s)
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _command(data_dir, workdir, *extra):
    return [
        sys.executable, "-m", "trainers.train",
        "--config=configs/lenet300_fashion_mnist.py", f"--workdir={workdir}",
        f"--config.data_dir={data_dir}", f"--config.num_epochs={EPOCHS}",
        f"--config.batch_size={GLOBAL_BATCH}", "--config.schedule.ramp_epochs=1",
        "--config.schedule.freeze_epochs=1", "--config.schedule.switch_every=2",
        *extra,
    ]


def _env(tf_config=None):
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("TF_CONFIG", None)
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    return env


def _fingerprint(stdout):
    match = re.search(r"Weights fingerprint: ([0-9a-f]{16}) \((chief|worker)", stdout)
    return match and (match.group(1), match.group(2))


class MultiWorkerTest(TestCase):
    def test_two_workers_match_one_process(self):
        data_dir = self.create_tempdir().full_path
        write_learnable_split(data_dir, n_train=N_TRAIN, n_test=128)
        workdir = self.create_tempdir().full_path
        single_dir = self.create_tempdir().full_path
        ports = free_ports(2)
        cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
        workers = [
            subprocess.Popen(
                _command(data_dir, workdir, "--strategy=multi_worker"), cwd=ROOT,
                env=_env({"cluster": cluster, "task": {"type": "worker", "index": i}}),
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )
            for i in range(2)
        ]
        single = subprocess.run(
            _command(data_dir, single_dir, "--strategy=one_device"), cwd=ROOT,
            env=_env(), capture_output=True, text=True, timeout=600,
        )
        outputs = [w.communicate(timeout=600) for w in workers]
        for worker, (stdout, stderr) in zip(workers, outputs):
            self.assertEqual(worker.returncode, 0, stderr[-3000:])
            self.assertIn("Strategy: CollectiveAllReduceStrategy over 2 replica(s).", stdout)
        self.assertEqual(single.returncode, 0, single.stderr[-3000:])

        # Identical weights and masks on both workers (and the step counter).
        (chief_print, chief_role), (other_print, other_role) = (
            _fingerprint(stdout) for stdout, _ in outputs)
        self.assertEqual((chief_role, other_role), ("chief", "worker"))
        self.assertEqual(chief_print, other_print)

        # Only the chief wrote the run's files: one writer per TensorBoard
        # directory, one checkpoint, no worker leftovers in the workdir.
        for name in ("config.json", "report.json", "checkpoints/state.json",
                     "export/model.keras"):
            self.assertTrue(os.path.exists(os.path.join(workdir, name)), name)
        self.assertLen(glob.glob(os.path.join(workdir, "tensorboard/train/events.*")), 1)
        self.assertLen(glob.glob(os.path.join(workdir, "tensorboard/switches/events.*")), 1)
        self.assertEqual(sorted(os.listdir(workdir)),
                         ["checkpoints", "config.json", "export", "report.json", "tensorboard"])
        self.assertFalse(glob.glob(os.path.join(tempfile.gettempdir(), "ks-worker-*")))

        # Same global batch, same data, same init: the two-worker run matches
        # the single process up to the order of float sums in the all-reduce.
        # Tolerance: test accuracy within 1 pt, FC sparsity within 0.1 pt
        # (a mask entry may flip where two weights tie to float precision).
        with open(os.path.join(workdir, "report.json")) as f:
            multi = json.load(f)
        with open(os.path.join(single_dir, "report.json")) as f:
            one = json.load(f)
        self.assertEqual(multi["steps"], one["steps"])
        self.assertEqual(multi["steps"], EPOCHS * N_TRAIN // GLOBAL_BATCH)
        self.assertAlmostEqual(multi["test_accuracy"], one["test_accuracy"], delta=0.01)
        self.assertAlmostEqual(multi["fc_sparsity"], one["fc_sparsity"], delta=0.001)


if __name__ == "__main__":
    tf.test.main()
