"""The training binary and train_and_evaluate, on small generated data."""

import contextlib
import glob
import io
import json
import os
from unittest import mock

import keras
import numpy as np
import tensorflow as tf
from absl.testing import parameterized

import keras_switch
from keras_switch import export as switch_export
from tests.helpers import idx_data_dir
from tests.helpers import run_binary
from tests.helpers import small_config
from tests.helpers import tree
from tests.helpers import write_learnable_split
from trainers import build
from tests.test_case import TestCase
from trainers import train_lib
from trainers.preflight import ConfigError


class TrainAndEvaluateTest(TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.data_dir = idx_data_dir(cls, n_train=96, n_test=40)

    def test_writes_the_run_directory(self):
        workdir = self.create_tempdir().full_path
        report = train_lib.train_and_evaluate(small_config(self.data_dir), workdir)
        for name in ("config.json", "report.json", "checkpoints/epoch-0003.weights.h5",
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
        self.assertEqual(written["target_sparsity"], 0.9)
        self.assertIsNone(written["target_shortfall"])
        # report.json says what sparsity_report says of the exported model.
        exported = keras.models.load_model(os.path.join(workdir, "export/model.keras"))
        kernels = [l.kernel.numpy() for l in exported.layers if isinstance(l, keras.layers.Dense)]
        zeros = sum(int(np.sum(k == 0)) for k in kernels)
        self.assertAlmostEqual(zeros / sum(k.size for k in kernels), written["fc_sparsity"])
        self.assertEqual([r["nonzeros"] for r in written["layers"]],
                         [int(np.count_nonzero(k)) for k in kernels])
        # Both exports reload and give the reported accuracy.
        (_, _), (x_test, y_test) = keras_switch.data.load_fashion_mnist(self.data_dir)
        # The exports take standardised pixels, as report.json says.
        self.assertEqual(written["input_standardization"], {"mean": 0.2860, "std": 0.3530})
        x_test = (x_test - 0.2860) / 0.3530
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

    def test_prunes_a_users_own_saved_model(self):
        # A model the zoo does not have: a residual by operator, a Conv1D over
        # the image's rows, a softmax output.
        inputs = keras.Input((28, 28))
        h = keras.layers.Conv1D(28, 3, padding="same", activation="relu", name="rows")(inputs)
        h = keras.layers.Flatten()(h + inputs)
        h = keras.layers.Dense(32, activation="relu", name="hidden")(h)
        outputs = keras.layers.Dense(10, activation="softmax", name="probabilities")(h)
        path = os.path.join(self.create_tempdir().full_path, "mine.keras")
        keras.Model(inputs, outputs).save(path)
        data_dir = self.create_tempdir().full_path
        write_learnable_split(data_dir, n_train=512, n_test=256)
        config = small_config(data_dir, model=path, switched_layers="all")
        workdir = self.create_tempdir().full_path
        with contextlib.redirect_stdout(io.StringIO()):
            report = train_lib.train_and_evaluate(config, workdir)
        self.assertEqual(report["model"], path)
        self.assertEqual([row["name"] for row in report["layers"]],
                         ["rows", "hidden", "probabilities"])
        self.assertAlmostEqual(report["sparsity"], 0.9, delta=0.01)
        self.assertIsNone(report["target_shortfall"])
        exported = keras.models.load_model(os.path.join(workdir, "export/model.keras"))
        self.assertEqual([type(layer).__name__ for layer in exported.layers[1:]],
                         ["Conv1D", "Flatten", "Dense", "Dense"])
        self.assertIs(exported.get_layer("probabilities").activation,
                      keras.activations.softmax)
        # A softmax output is trained as probabilities, not as logits.
        self.assertTrue(build.outputs_probabilities(exported))
        self.assertGreater(report["test_accuracy"], 0.5)

    def test_a_run_that_misses_its_target_says_so(self):
        # No frozen tail, and a ramp longer than the run (6 of 18 steps).
        config = small_config(self.data_dir, num_epochs=2)
        config.schedule.freeze_epochs = 0
        config.schedule.ramp_epochs = 6
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            report = train_lib.train_and_evaluate(config, self.create_tempdir().full_path)
        self.assertEqual(report["target_sparsity"], 0.9)
        self.assertLess(report["fc_sparsity"], 0.9 - 0.005)
        self.assertRegex(report["target_shortfall"],
                         r"below the target 0\.9 .*stopped at step 6, before the target "
                         r"ramp ends at step 18")
        self.assertEqual(out.getvalue().strip().splitlines()[-1],
                         f"warning: this run missed its target: {report['target_shortfall']}")

    def test_same_workdir_resumes_and_other_config_is_refused(self):
        workdir = self.create_tempdir().full_path
        config = small_config(self.data_dir)
        train_lib.train_and_evaluate(config, workdir)
        before = tree(workdir)
        changed = small_config(self.data_dir, seed=7)
        with self.assertRaisesRegex(ConfigError, r"different config \(keys \['seed'\]\)"):
            train_lib.train_and_evaluate(changed, workdir)
        self.assertEqual(tree(workdir), before)
        # Same config again: everything was done, nothing is retrained.
        report = train_lib.train_and_evaluate(config, workdir)
        self.assertEqual(report["steps"], 9)
        # A run written before `switch_estimator` existed resumes under its
        # default, and only under it.
        path = os.path.join(workdir, "config.json")
        with open(path) as f:
            older = json.load(f)
        del older["switch_estimator"]
        with open(path, "w") as f:
            json.dump(older, f)
        self.assertEqual(train_lib.train_and_evaluate(config, workdir)["steps"], 9)
        identity = small_config(self.data_dir)
        identity.switch_estimator = "identity"
        with self.assertRaisesRegex(ConfigError,
                                    r"different config \(keys \['switch_estimator'\]\)"):
            train_lib.train_and_evaluate(identity, workdir)
        # An export that fails leaves the previous export and report as they were.
        before = tree(workdir)
        with mock.patch.object(keras_switch, "export_tflite", side_effect=OSError("disk full")):
            with self.assertRaisesRegex(OSError, "disk full"):
                train_lib.train_and_evaluate(config, workdir)
        self.assertEqual(tree(workdir), before)


class AccuracyBudgetRunTest(TestCase):
    """A run with config.accuracy_budget on learnable MNIST-format data."""

    def test_holds_out_searches_and_reports(self):
        from tensorboard.backend.event_processing import event_accumulator

        from tests.helpers import write_learnable_split

        data_dir = self.create_tempdir().full_path
        write_learnable_split(data_dir)  # 1,024 training examples
        config = small_config(data_dir, num_epochs=4, batch_size=64, target_sparsity=None,
                              accuracy_budget=0.03)
        workdir = self.create_tempdir().full_path
        report = train_lib.train_and_evaluate(config, workdir)
        # 10% of the training split is held out: 922 train, 15 steps an epoch.
        self.assertEqual(report["validation_examples"], 102)
        self.assertEqual(report["steps"], 4 * 15)
        self.assertEqual(report["accuracy_budget"], 0.03)
        self.assertIsNone(report["target_sparsity"])
        self.assertIsNone(report["target_shortfall"])
        reference, final = report["reference_validation_accuracy"], report["validation_accuracy"]
        self.assertEqual(report["budget_met"], reference - final <= 0.03)
        self.assertTrue(report["budget_met"], report["budget_outcome"])
        self.assertGreater(report["fc_sparsity"], 0.3)  # it found a sparsity
        self.assertGreater(report["test_accuracy"], 0.5)
        # TensorBoard: the controller per epoch, and Keras' validation pass
        # on the held-out examples (not the test set).
        logs = os.path.join(workdir, "tensorboard")
        train = event_accumulator.EventAccumulator(os.path.join(logs, "train"),
                                                   size_guidance={"tensors": 0})
        train.Reload()
        for tag in ("epoch_heldout_accuracy", "epoch_budget_density", "epoch_budget_reference",
                    "epoch_budget_best_accuracy"):
            self.assertLen(train.Tensors(tag), 4, tag)
        validation = event_accumulator.EventAccumulator(os.path.join(logs, "validation"),
                                                        size_guidance={"tensors": 0})
        validation.Reload()
        last = validation.Tensors("epoch_accuracy")[-1]
        self.assertAlmostEqual(float(tf.make_ndarray(last.tensor_proto)), final, places=5)


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


if __name__ == "__main__":
    tf.test.main()
