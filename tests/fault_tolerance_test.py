"""Kill -9 at random points and at every stage of a checkpoint write, a NaN
or an Inf in a step (a task step, a switch step), and deterministic runs: the
training binary on small learnable MNIST-format data (each class a noisy
prototype image)."""

import concurrent.futures
import json
import os
import random
import re
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
import tensorflow as tf
from absl.testing import parameterized

from configs import lenet300_fashion_mnist
from tests.helpers import ROOT
from tests.helpers import write_learnable_split
from tests.test_case import TestCase
from trainers import build

EPOCHS = 4
STEPS_PER_EPOCH = 16  # 1024 examples, batch 64


def _args(data_dir, workdir):
    return [
        "--config=configs/lenet300_fashion_mnist.py", f"--workdir={workdir}",
        f"--config.data_dir={data_dir}", f"--config.num_epochs={EPOCHS}",
        "--config.batch_size=64", "--config.schedule.ramp_epochs=2",
        "--config.schedule.freeze_epochs=1", "--config.schedule.switch_every=4",
        "--deterministic",
    ]


def _config():
    """The config `_args` gives the trainer."""
    config = lenet300_fashion_mnist.get_config()
    config.num_epochs = EPOCHS
    config.batch_size = 64
    config.schedule.ramp_epochs = 2
    config.schedule.freeze_epochs = 1
    config.schedule.switch_every = 4
    return config


def _launch(args, fault=None):
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("KERAS_SWITCH_FAULT", None)
    if fault:
        env["KERAS_SWITCH_FAULT"] = fault
    return subprocess.Popen(
        [sys.executable, "-m", "trainers.train", *args], cwd=ROOT, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _run(args, fault=None, timeout=300):
    process = _launch(args, fault)
    stdout, stderr = process.communicate(timeout=timeout)
    return process.returncode, stdout, stderr


def _report(workdir):
    with open(os.path.join(workdir, "report.json")) as f:
        return json.load(f)


def _metrics(report):
    return {k: report[k] for k in ("test_accuracy", "fc_sparsity", "layers", "steps")}


class FaultToleranceTest(TestCase, parameterized.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.data_dir = cls.create_tempdir_class("data")
        write_learnable_split(cls.data_dir)

    @classmethod
    def create_tempdir_class(cls, name):
        import tempfile

        directory = tempfile.TemporaryDirectory(prefix=name)
        cls.addClassCleanup(directory.cleanup)
        return directory.name

    def _assert_checkpoint_consistent(self, workdir):
        """The latest checkpoint is complete: state.json parses and names a
        weights file that exists. Returns its epochs done (0: none yet)."""
        state = os.path.join(workdir, "checkpoints", "state.json")
        if not os.path.exists(state):
            return 0
        with open(state) as f:
            state = json.load(f)
        weights = os.path.join(workdir, "checkpoints", state["weights"])
        self.assertTrue(os.path.getsize(weights) > 0, weights)
        return state["epochs_done"]

    def test_killed_anywhere_resumes_to_the_same_result(self):
        uninterrupted = [self.create_tempdir().full_path for _ in range(2)]
        workdir = self.create_tempdir().full_path
        args = _args(self.data_dir, workdir)
        # The two uninterrupted runs (deterministic ops) go side by side with
        # the chain of killed runs.
        pool = concurrent.futures.ThreadPoolExecutor(2)
        baselines = pool.map(lambda w: _run(_args(self.data_dir, w)), uninterrupted)

        done = []
        # A kill at each stage of a checkpoint write: before anything, with
        # the weights written but not state.json, after state.json but before
        # the old weights are removed. The fault counter is per process.
        for fault in ("checkpoint_weights_written:1", "checkpoint_start:2",
                      "checkpoint_state_written:1"):
            code, _, stderr = _run(args, fault)
            self.assertEqual(code, -signal.SIGKILL, f"{fault}: {stderr[-2000:]}")
            done.append(self._assert_checkpoint_consistent(workdir))
        # After the first kill nothing is a checkpoint yet (only a stray file).
        self.assertEqual(done[0], 0)
        self.assertGreater(done[-1], done[0])
        # Then a kill at a random instant (seeded) of the next run's training:
        # once Keras prints the first "Epoch 3/4" (it flushes; the weights are
        # restored by then), within the following 2 s (measured on the 2-core
        # CPU: epoch 3 ends ~4.5 s after that line, epoch 4 ~3 s later).
        process = _launch(args)
        for line in process.stdout:
            if line.startswith("Epoch "):
                break
        time.sleep(random.Random(0).uniform(0.0, 2.0))
        # It landed mid-training: the run was still going when killed...
        self.assertIsNone(process.poll(), "the run ended before the kill")
        process.send_signal(signal.SIGKILL)
        stdout, stderr = process.communicate()
        self.assertEqual(process.returncode, -signal.SIGKILL, stderr[-2000:])
        self.assertTrue(line.startswith(f"Epoch {done[-1] + 1}/{EPOCHS}"), line + stdout)
        done.append(self._assert_checkpoint_consistent(workdir))
        # ...before the last epoch's checkpoint, and before the report/export.
        self.assertIn(done[-1], (done[-2], done[-2] + 1))
        self.assertLess(done[-1], EPOCHS)
        self.assertFalse(os.path.exists(os.path.join(workdir, "report.json")))
        self.assertFalse(os.path.exists(os.path.join(workdir, "export")))
        code, stdout, stderr = _run(args)
        self.assertEqual(code, 0, stderr[-3000:])
        if done[-1]:
            self.assertIn(f"{done[-1]} epochs done", stdout)
        resumed = _report(workdir)

        for code, _, stderr in baselines:
            self.assertEqual(code, 0, stderr[-3000:])
        first, second = (_report(w) for w in uninterrupted)
        # Deterministic ops and a fixed seed: identical metrics.
        self.assertEqual(_metrics(first), _metrics(second))
        self.assertEqual(resumed["steps"], EPOCHS * STEPS_PER_EPOCH)
        self.assertGreater(first["test_accuracy"], 0.5)  # it learned something
        self.assertAlmostEqual(resumed["test_accuracy"], first["test_accuracy"], delta=0.003)
        self.assertAlmostEqual(resumed["fc_sparsity"], first["fc_sparsity"], delta=0.005)
        # No stray weights files or staging directories are left.
        self.assertEqual(
            sorted(f for f in os.listdir(os.path.join(workdir, "checkpoints"))
                   if f.endswith(".h5")),
            [f"epoch-{EPOCHS:04d}.weights.h5"],
        )
        self.assertFalse([f for f in os.listdir(workdir) if f.startswith(".export-")])

    # Slow tier (docs/testing.md, "What is tested where"): ~35 s of training; the default
    # tier kills and resumes a fixed-target run above.
    @pytest.mark.slow
    def test_an_accuracy_budget_run_resumes_to_the_same_result(self):
        # The controller's state is a model variable: a kill after epoch 2's
        # checkpoint, mid-search, resumes to the uninterrupted run's result.
        budget = ["--config.target_sparsity=None", "--config.accuracy_budget=0.03"]
        uninterrupted = self.create_tempdir().full_path
        pool = concurrent.futures.ThreadPoolExecutor(1)
        baseline = pool.submit(_run, _args(self.data_dir, uninterrupted) + budget)
        workdir = self.create_tempdir().full_path
        args = _args(self.data_dir, workdir) + budget
        code, _, stderr = _run(args, "checkpoint_state_written:2")
        self.assertEqual(code, -signal.SIGKILL, stderr[-2000:])
        self.assertEqual(self._assert_checkpoint_consistent(workdir), 2)
        code, stdout, stderr = _run(args)
        self.assertEqual(code, 0, stderr[-3000:])
        self.assertIn("2 epochs done", stdout)
        code, _, stderr = baseline.result()
        self.assertEqual(code, 0, stderr[-3000:])
        first, resumed = _report(uninterrupted), _report(workdir)
        keys = ("reference_validation_accuracy", "validation_accuracy", "budget_met")
        self.assertEqual({k: resumed[k] for k in keys}, {k: first[k] for k in keys})
        self.assertEqual(_metrics(resumed), _metrics(first))
        self.assertGreater(first["fc_sparsity"], 0.3)  # the search ran

    @parameterized.named_parameters(
        # A NaN batch gives NaN gradients: the weights are caught at once,
        # even where the logged loss stays finite. Step 21 is a task-only step.
        ("nan", "nan_batch", STEPS_PER_EPOCH + 5,
         r"(Training loss is nan|Weights became NaN or infinite \(.+\))"),
        # Step 24 is a switch step (the switcher variables are updated too).
        ("nan_in_a_switch_step", "nan_batch", STEPS_PER_EPOCH + 8,
         r"(Training loss is nan|Training switch loss is nan|"
         r"Weights became NaN or infinite \(.+\))"),
        # An Inf that stays an Inf: the batch's weighted loss overflows.
        ("inf", "inf_batch", STEPS_PER_EPOCH + 5, r"Training loss is inf"),
    )
    def test_nan_or_inf_stops_naming_the_step_and_keeps_the_checkpoint(
            self, fault, step, problem):
        # The step is in epoch 2, after the first checkpoint (epoch 1).
        schedule, _ = build.schedule_and_sparsity(_config(), STEPS_PER_EPOCH)
        self.assertEqual(schedule(step - 1).switch, step % 4 == 0)  # 1-based step
        workdir = self.create_tempdir().full_path
        code, _, stderr = _run(_args(self.data_dir, workdir), f"{fault}:{step}")
        self.assertEqual(code, 3, stderr[-3000:])  # TRAINING_DIVERGED
        batch = step - STEPS_PER_EPOCH
        checkpoints = os.path.join(workdir, "checkpoints")
        self.assertRegex(stderr, rf"(?m)^error: {problem} at step {step} \(epoch 2, "
                                 rf"batch {batch}\); stopped, the last good checkpoint "
                                 rf"in {re.escape(checkpoints)} is kept\.")
        self.assertNotIn("Traceback", stderr)
        # The last good checkpoint is kept: epoch 1's, the only weights file,
        # all finite; nothing later was written (no checkpoint, export, report).
        self.assertEqual(self._assert_checkpoint_consistent(workdir), 1)
        self.assertEqual(sorted(os.listdir(checkpoints)),
                         ["epoch-0001.weights.h5", "state.json"])
        with h5py.File(os.path.join(checkpoints, "epoch-0001.weights.h5")) as f:
            arrays = []
            f.visititems(lambda _, item: arrays.append(item[()])
                         if isinstance(item, h5py.Dataset) else None)
        self.assertGreater(len(arrays), 10)
        for array in arrays:
            if np.issubdtype(np.asarray(array).dtype, np.floating):
                self.assertTrue(np.all(np.isfinite(array)))
        self.assertEqual(sorted(os.listdir(workdir)),
                         ["checkpoints", "config.json", "tensorboard"])


if __name__ == "__main__":
    tf.test.main()
