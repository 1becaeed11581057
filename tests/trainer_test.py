"""The training binary and train_and_evaluate, on small generated data."""

import glob
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from unittest import mock

import keras
import numpy as np
import tensorflow as tf
from absl.testing import parameterized

import keras_switch
from configs import lenet300_fashion_mnist
from keras_switch import export as switch_export
from tests.data_test import _write_idx
from tests.data_test import _write_split
from tests.test_case import TestCase
from trainers import train_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def small_config(data_dir, **overrides):
    config = lenet300_fashion_mnist.get_config()
    config.data_dir = data_dir
    config.num_epochs = 3
    config.batch_size = 32
    config.schedule.ramp_epochs = 1
    config.schedule.freeze_epochs = 1
    config.schedule.switch_every = 1
    for key, value in overrides.items():
        config[key] = value
    return config


def run_binary(args, timeout=300):
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run(
        [sys.executable, "-m", "trainers.train", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout,
    )


def idx_data_dir(test_class, n_train, n_test):
    """Generated MNIST-format files in a directory removed after the class."""
    directory = tempfile.TemporaryDirectory()
    test_class.addClassCleanup(directory.cleanup)
    _write_split(directory.name, n_train=n_train, n_test=n_test)
    return directory.name


def tree(directory):
    """{relative path: (size, mtime)} of every file under `directory`."""
    out = {}
    for path in glob.glob(os.path.join(directory, "**"), recursive=True):
        if os.path.isfile(path):
            stat = os.stat(path)
            out[os.path.relpath(path, directory)] = (stat.st_size, stat.st_mtime_ns)
    return out


class TrainAndEvaluateTest(TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.data_dir = idx_data_dir(cls, n_train=96, n_test=40)

    def test_writes_the_run_directory(self):
        workdir = self.create_tempdir().full_path
        report = train_lib.train_and_evaluate(small_config(self.data_dir), workdir)
        for name in ("config.json", "report.json", "checkpoints/latest.weights.h5",
                     "checkpoints/state.json", "export/model.keras",
                     "export/saved_model/saved_model.pb", "export/sparse/saved_model.pb",
                     "export/model.tflite"):
            self.assertTrue(os.path.exists(os.path.join(workdir, name)), name)
        self.assertEqual(glob.glob(os.path.join(workdir, ".export-*")), [])
        with open(os.path.join(workdir, "report.json")) as f:
            written = json.load(f)
        self.assertEqual(set(written), set(train_lib.REPORT_KEYS))
        self.assertEqual(written["steps"], 3 * 3)
        self.assertAlmostEqual(written["fc_sparsity"], 0.9, delta=0.01)
        # report.json says what sparsity_report says of the exported model.
        exported = keras.models.load_model(os.path.join(workdir, "export/model.keras"))
        kernels = [l.kernel.numpy() for l in exported.layers if isinstance(l, keras.layers.Dense)]
        zeros = sum(int(np.sum(k == 0)) for k in kernels)
        self.assertAlmostEqual(zeros / sum(k.size for k in kernels), written["fc_sparsity"])
        self.assertEqual([r["nonzeros"] for r in written["layers"]],
                         [int(np.count_nonzero(k)) for k in kernels])
        # Both exports reload and give the reported accuracy.
        (_, _), (x_test, y_test) = keras_switch.data.load_fashion_mnist(self.data_dir)
        accuracy = np.mean(np.argmax(exported.predict(x_test, verbose=0), -1) == y_test)
        self.assertAlmostEqual(accuracy, written["test_accuracy"])
        for name in ("saved_model", "sparse"):
            served = tf.saved_model.load(os.path.join(workdir, "export", name))
            logits = served.serve(tf.constant(x_test))
            self.assertAlmostEqual(np.mean(np.argmax(logits, -1) == y_test),
                                   written["test_accuracy"], msg=name)
        # Sizes of the exports, on disk and gzipped; the sparse layers.
        files = {"saved_model": "saved_model", "sparse": "sparse", "tflite": "model.tflite"}
        want = {}
        for key, name in files.items():
            path = os.path.join(workdir, "export", name)
            want[key] = switch_export.raw_size(path)
            want[key + "_gzip"] = switch_export.gzip_size(path)
        self.assertEqual(written["export_sizes"], want)
        self.assertLess(want["sparse_gzip"], want["saved_model_gzip"] / 2)
        self.assertEqual([(r["name"], r["shape"], r["nonzeros"]) for r in written["sparse_layers"]],
                         [(r["name"], r["shape"], r["nonzeros"]) for r in written["layers"]])
        self.assertEqual(written["sparse_layers"][0]["representation"], "hybrid")  # fc1, 784x300
        self.assertEqual(report, written)
        # TensorBoard event files: Keras' scalars and ours.
        self.assertTrue(glob.glob(os.path.join(workdir, "tensorboard/train/events.*")))
        self.assertTrue(glob.glob(os.path.join(workdir, "tensorboard/switches/events.*")))

    def test_same_workdir_resumes_and_other_config_is_refused(self):
        workdir = self.create_tempdir().full_path
        config = small_config(self.data_dir)
        train_lib.train_and_evaluate(config, workdir)
        before = tree(workdir)
        changed = small_config(self.data_dir, seed=7)
        with self.assertRaisesRegex(train_lib.ConfigError, r"different config \(keys \['seed'\]\)"):
            train_lib.train_and_evaluate(changed, workdir)
        self.assertEqual(tree(workdir), before)
        # Same config again: everything was done, nothing is retrained.
        report = train_lib.train_and_evaluate(config, workdir)
        self.assertEqual(report["steps"], 9)
        # An export that fails leaves the previous export and report as they were.
        before = tree(workdir)
        with mock.patch.object(keras_switch, "export_tflite", side_effect=OSError("disk full")):
            with self.assertRaisesRegex(OSError, "disk full"):
                train_lib.train_and_evaluate(config, workdir)
        self.assertEqual(tree(workdir), before)


class BinaryTest(TestCase, parameterized.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.data_dir = idx_data_dir(cls, n_train=64, n_test=16)

    def _args(self, workdir, *extra):
        return [
            "--config=configs/lenet300_fashion_mnist.py", f"--workdir={workdir}",
            f"--config.data_dir={self.data_dir}", "--config.num_epochs=2",
            "--config.batch_size=32", "--config.schedule.ramp_epochs=1",
            "--config.schedule.freeze_epochs=1", "--config.schedule.switch_every=1",
            *extra,
        ]

    @parameterized.named_parameters(
        ("unknown_key", ["--config.learning_rat=0.1"], "learning_rat"),
        ("negative_lr", ["--config.task_optimizer.learning_rate=-0.1"], "learning_rate must be > 0"),
        ("target_high", ["--config.target_sparsity=1.0"], r"target_sparsity must be None or in \[0, 1\)"),
        ("batch_zero", ["--config.batch_size=0"], "batch_size must be a positive integer"),
        ("model", ["--config.model=alexnet"], "config.model must be one of"),
        ("wrong_type", ["--config.num_epochs=two"], "num_epochs"),
        ("both_controls", ["--config.sparsity_penalty=0.5"], "not both"),
        ("schedule_mode", ["--config.schedule.mode=sometimes"], "schedule.mode must be one of"),
        ("switcher", ["--config.switcher.initial_logit=-1.0"], "initial_logit"),
        ("dataset", ["--config.dataset=imagenet"], "config.dataset must be one of"),
    )
    def test_bad_config_exits_nonzero_and_touches_nothing(self, extra, pattern):
        workdir = self.create_tempdir().full_path
        with open(os.path.join(workdir, "keep.txt"), "w") as f:
            f.write("existing output")
        before = tree(workdir)
        result = run_binary(self._args(workdir, *extra))
        self.assertNotEqual(result.returncode, 0)
        self.assertRegex(result.stderr, pattern)
        self.assertEqual(tree(workdir), before)

    @parameterized.named_parameters(
        ("wrong_magic", "magic", "not an IDX file"),
        ("truncated", "truncated", "IDX header says shape"),
        ("count_mismatch", "count", "labels"),
    )
    def test_malformed_data_exits_2_and_touches_nothing(self, damage, pattern):
        data_dir = self.create_tempdir().full_path
        _write_split(data_dir, n_train=8, n_test=4, compress=False)
        images = os.path.join(data_dir, "train-images-idx3-ubyte")
        labels = os.path.join(data_dir, "train-labels-idx1-ubyte")
        if damage == "magic":
            with open(images, "r+b") as f:
                f.write(b"\x1f\x8b\x08\x00")
        elif damage == "truncated":
            with open(images, "r+b") as f:
                f.truncate(os.path.getsize(images) - 100)
        else:
            _write_idx(labels, np.zeros(7, "uint8"), compress=False)
        workdir = self.create_tempdir().full_path
        result = run_binary(self._args(workdir, f"--config.data_dir={data_dir}"))
        self.assertEqual(result.returncode, 2, result.stderr)
        self.assertRegex(result.stderr, "error: .*" + pattern)
        self.assertEqual(tree(workdir), {})

    def test_missing_data_exits_2_and_touches_nothing(self):
        workdir = self.create_tempdir().full_path
        result = run_binary(self._args(workdir, f"--config.data_dir={workdir}/nope"))
        self.assertEqual(result.returncode, 2, result.stderr)
        self.assertIn("error:", result.stderr)
        self.assertEqual(tree(workdir), {})

    def test_mirrored_on_two_logical_cpus(self):
        workdir = self.create_tempdir().full_path
        result = run_binary(self._args(workdir, "--strategy=mirrored", "--cpu_devices=2"))
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("Strategy: MirroredStrategy over 2 replica(s).", result.stdout)
        with open(os.path.join(workdir, "report.json")) as f:
            report = json.load(f)
        self.assertEqual(report["steps"], 2 * 2)
        self.assertAlmostEqual(report["fc_sparsity"], 0.9, delta=0.01)

    def test_help_documents_the_flags(self):
        result = run_binary(["--helpfull"])
        for flag in ("--config", "--workdir", "--strategy", "--cpu_devices"):
            self.assertIn(flag, result.stdout)

    def test_killed_run_resumes(self):
        workdir = self.create_tempdir().full_path
        args = self._args(workdir, "--config.num_epochs=12", "--config.schedule.freeze_epochs=0")
        env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")
        process = subprocess.Popen(
            [sys.executable, "-m", "trainers.train", *args], cwd=ROOT, env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        state = os.path.join(workdir, "checkpoints", "state.json")
        deadline = time.time() + 240
        while time.time() < deadline and not os.path.exists(state):
            time.sleep(0.2)
        process.send_signal(signal.SIGKILL)
        process.wait()
        self.assertTrue(os.path.exists(state), "no checkpoint before the deadline")
        with open(state) as f:
            done = json.load(f)["epochs_done"]
        self.assertLess(done, 12)
        result = run_binary(args)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn(f"Resuming from {workdir}/checkpoints: {done} epochs done", result.stdout)
        with open(os.path.join(workdir, "report.json")) as f:
            report = json.load(f)
        self.assertEqual(report["steps"], 12 * 2)
        with open(state) as f:
            # Training time adds up over both processes.
            self.assertGreaterEqual(report["train_seconds"], json.load(f)["train_seconds"])


if __name__ == "__main__":
    tf.test.main()
